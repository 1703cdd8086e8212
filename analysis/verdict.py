"""The verdict on a claim, computed from what was measured by one stated rule (RULE), never typed by hand.

A claim names a quantity (a difference between two arms of a study, a relative change in %, an analytic
figure computed from the presets) and the range of it that the claim asserts: `< 0` for "capping lowers the
loss", `40 .. 60` for "~50%". The measurement is the quantity's value with its 95% CI and n (an analytic
figure is exact: CI 0), the smallest difference the seeds could detect, and where the mechanism has a
gauge, how far it was engaged (the caps' share of inputs beyond cap/2, the global layers' attention beyond
the window, what the teacher had left to teach).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import stats

from gemmalab.train.engagement import ENGAGED, TEACHER_MARGIN

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NO_EFFECT = "no detectable effect"  # the CI holds 0 (a claim of a direction)
INCONCLUSIVE = "inconclusive"  # the CI straddles an edge of a claimed range that does not end at 0
NOT_ENGAGED = "not engaged at this scale"
NOT_MEASURED = "not measured"

EQUIVALENT = "equivalent within"  # a direction claim whose 90% CI lies inside ±(its smallest effect of interest)

RULE = (
    "Verdict rule (analysis/verdict.py), applied in this order: (1) `not measured` when the harness has no "
    "value for the quantity (no finished runs of one arm, fewer than two seeds, a best LR at its grid's edge, "
    "or a figure that needs hardware this machine lacks); (2) `not engaged at this scale` when the "
    "mechanism's gauge stayed below its threshold in every run the claim reads (a cap that bent "
    f"< {ENGAGED['softcap/attn/beyond_half']:.0%} of its inputs, local layers with "
    f"< {ENGAGED['window/local_beyond_half']:.0%} of their attention where a shrunk window cuts, a teacher less "
    f"than {TEACHER_MARGIN} nats better than the student trained from scratch): the runs say nothing about the "
    "claim. Then by the kind of claim. "
    "A claim of a direction (its range ends at 0; two-sided test at 5%): (3) `supported` when the 95% CI lies "
    "inside the range and (4) `contradicted` when it lies wholly outside, each only when the claim's p, "
    "Holm-adjusted within its family (one per idea: soft-capping, stability mitigations, norm placement, "
    "attention pattern, grouped-query attention, distillation, deep vs wide, inference), is < 0.05 too; "
    "(5) otherwise `equivalent within ±d` when the claim states a smallest effect of interest d (the source's "
    "own effect size) and the 90% CI lies inside (-d, d), else `no detectable effect (could detect ±x)`, x the "
    "smallest difference the seeds detect with 80% power. A claim of a range or a threshold away from 0 "
    '("~50%", "2-5% worse", "within ±1%", "removes at least half"): two one-sided tests at 5%, i.e. the '
    "90% CI: (3) `supported` when it lies inside the range, (4) `contradicted` when wholly outside, "
    "(5) otherwise `inconclusive`. Analytic figures are exact (CI 0)."
)


@dataclass(frozen=True)
class Measured:
    value: float  # the quantity (a difference of means, a relative change in %, an analytic figure)
    ci: float  # 95% CI half-width; 0 for an exact figure, nan when it cannot be computed
    n: int | None  # seeds (pairs for a paired test); None for an analytic figure
    test: str = "exact"  # paired | Welch | exact
    detectable: float = math.nan  # the smallest difference detectable with 80% power (same units)
    reason: str = ""  # why there is no value (not measured)
    p: float = math.nan  # the test's two-sided p (paired or Welch); nan for an exact figure
    df: float = math.inf  # the test's degrees of freedom (CIs at other levels)

    def half_width(self, alpha: float) -> float:
        """The (1 - alpha) CI's half-width (a sequential look's level); 90% at alpha 0.1."""
        if self.ci == 0 or not math.isfinite(self.ci):
            return self.ci
        return self.ci * float(stats.t.isf(alpha / 2, self.df) / stats.t.isf(0.025, self.df))

    @property
    def ci90(self) -> float:
        """The 90% CI's half-width: two one-sided tests at 5%, a range's or an equivalence's test."""
        return self.half_width(0.10)

    # every value the measurement read, {"arm": the arm's switches, "seed", "run_id", "value"}: findings.json
    per_seed: tuple = field(default=(), compare=False)


@dataclass(frozen=True)
class Gauge:
    """How far the mechanism bit: its figure over the study's runs (the largest) against its threshold."""

    what: str
    value: float
    threshold: float

    @property
    def engaged(self) -> bool:
        return bool(self.value >= self.threshold)


def directional(low: float, high: float) -> bool:
    """A claim of a direction (the range ends at 0), whose p-value joins its family's Holm adjustment."""
    return 0.0 in (low, high)


def verdict(low: float, high: float, measured: Measured, gauge: Gauge | None = None,
            p_adjusted: float = math.nan, margin: float | None = None, alpha: float = 0.05) -> str:  # fmt: skip
    """RULE for the claimed range [low, high] (either end may be infinite); `p_adjusted`: the claim's p, Holm-
    adjusted within its family (nan: not adjusted); `margin`: a direction claim's smallest effect of interest;
    `alpha`: the level tested at (below 0.05 at a sequential look: analysis/sequential.py)."""
    if not math.isfinite(measured.value) or not math.isfinite(measured.ci) or measured.reason:
        return f"{NOT_MEASURED} ({measured.reason or 'fewer than two seeds to give a CI'})"
    if gauge is not None and not gauge.engaged:
        return NOT_ENGAGED
    if not directional(low, high):  # two one-sided tests at alpha: the (1 - 2 alpha) CI against the range
        half = measured.half_width(2 * alpha)
        lo, hi = measured.value - half, measured.value + half
        return SUPPORTED if low < lo and hi < high else CONTRADICTED if hi < low or lo > high else INCONCLUSIVE
    lo, hi = measured.value - measured.ci, measured.value + measured.ci
    family_passes = not (math.isfinite(p_adjusted) and p_adjusted >= alpha)
    if low < lo and hi < high and family_passes:  # strictly: a CI that touches 0 does not show a direction
        return SUPPORTED
    if (hi < low or lo > high) and family_passes:
        return CONTRADICTED
    if margin is not None and abs(measured.value) + measured.half_width(2 * alpha) < margin:
        return f"{EQUIVALENT} ±{margin:g}"
    if not family_passes:
        return (f"{NO_EFFECT} (Holm-adjusted p={p_adjusted:.2g} in its family, tested at {alpha:.3g}; could detect "
                f"±{measured.detectable:.3g})")  # fmt: skip
    if not math.isfinite(measured.detectable):  # every seed gave the same value: no variance to test against
        return f"{NO_EFFECT} (every seed gave the same value: no spread to size an effect by)"
    return f"{NO_EFFECT} (could detect ±{measured.detectable:.3g})"


def estimate(value: float, ci: float) -> str:
    """`value ± ci` in one format: both to the CI's second significant digit (`+12.1 ± 7.6`, `-44 ± 240`), in
    a shared power of ten when that digit lies below 1e-4 (`(-0.63 ± 3.1)e-4`); an exact figure to 4 digits."""
    if not math.isfinite(ci) or ci == 0:
        return f"{value:+.4g}"
    digits = 1 - math.floor(math.log10(ci))  # decimals that keep two significant digits of the CI
    if digits <= 4:
        digits = max(digits, 0)
        return f"{value:+.{digits}f} ± {ci:.{digits}f}"
    power = math.floor(math.log10(max(abs(value), ci)))
    scaled = 10.0**power
    digits = max(1 - math.floor(math.log10(ci / scaled)), 0)
    return f"({value / scaled:+.{digits}f} ± {ci / scaled:.{digits}f})e{power}"


def claimed_range(low: float, high: float) -> str:
    """The range as a reader writes it: < 0, > 0, 40 .. 60."""
    if math.isinf(low) and not math.isinf(high):
        return f"< {high:g}"
    if math.isinf(high) and not math.isinf(low):
        return f"> {low:g}"
    return f"{low:g} .. {high:g}"
