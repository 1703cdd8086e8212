"""Seeds spent where a verdict is still open: a group-sequential rule over looks at a growing number of seeds.

The paper takes a first look at every study's own seeds (3); a claim still undecided there (no direction
shown, not equivalent within its margin, a range inconclusive) while its mechanism engaged gets more seeds
for the two arms it reads, up to LOOKS[-1]. Looking repeatedly at a growing sample inflates the chance of a
false positive, so every look tests at one constant nominal level (Pocock's boundary), set for the looks
actually planned and for the paired t-test the claims use: the level c at which, with no effect, the chance
that some look's p falls below c is 0.05. (Pocock's normal-theory constant, 0.0221 for looks at 3, 5 and 8
seeds, lets t-tests at 2-7 degrees of freedom reach 5.5%; c is computed for t instead.) The rule's
false-positive rate is checked on fresh simulations (simulate_false_positives, tests/analysis/test_sequential.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

from .power import paired_power

ALPHA = 0.05
LOOKS = (3, 5, 8)  # seeds at each look: the studies' own 3, then 2 and 3 more


def rule(looks: tuple[int, ...]) -> str:
    """The sequential rule as the paper prints it, for the looks it takes."""
    if len(looks) == 1:
        return f"Seeds: one look at {looks[0]} seeds per study, at 5%."
    return (
        f"Seeds (analysis/sequential.py): every study is first looked at with its own seeds ({looks[0]}); a claim "
        "still open there (no direction shown and not equivalent within its margin, or a range inconclusive) "
        "while measured and engaged, or decided but fragile (one seed moved by the machine's noise would change "
        "it: analysis/robustness.py), gets more seeds for the two arms it reads, at looks of "
        f"{', '.join(map(str, looks[1:]))} seeds, until decided. Every look, the first included, tests at one "
        f"constant level, {pocock_level(looks):.4f} in place of 5% above (Pocock's boundary, computed for the "
        "paired t-test at these looks), so that over all looks the chance of a false positive stays at 5%; each "
        "claim lists its looks and why it stopped. Looking again at a fragile verdict and keeping the last look's "
        "cannot raise that chance (simulated: simulate_with_fragile_looks)."
    )


@functools.cache
def pocock_level(looks: tuple[int, ...], alpha: float = ALPHA, simulations: int = 400_000) -> float:
    """The two-sided nominal level every look tests at so that the overall false-positive rate is alpha: the
    alpha-quantile of the smallest p over the looks under no effect. The paired t statistics' joint law does not
    depend on the seeds' SD, so one simulation of N(0, 1) differences gives it (to ~1e-4 at 400,000)."""
    if len(looks) == 1:
        return alpha
    return float(np.quantile(smallest_p(looks, simulations, np.random.default_rng(20261207)), alpha))


def smallest_p(looks: tuple[int, ...], studies: int, rng: np.random.Generator) -> np.ndarray:
    """Per simulated study with no effect (per-seed differences ~ N(0, 1)), the smallest paired-t p over the
    looks (each look's first n seeds)."""
    diffs = rng.standard_normal((studies, looks[-1]))
    smallest = np.ones(studies)
    for n in looks:
        smallest = np.minimum(smallest, _p(diffs[:, :n]))
    return smallest


def looks_up_to(max_seeds: int, first: int = LOOKS[0]) -> tuple[int, ...]:
    """The looks the paper takes when a claim may have at most max_seeds seeds (the first at the studies' own)."""
    return tuple(sorted({first, *(n for n in LOOKS if first < n <= max_seeds)}))


def simulate_false_positives(looks: tuple[int, ...], studies: int, seed: int = 0) -> float:
    """The share of `studies` fresh simulated comparisons with no effect that the rule calls significant at
    some look: the observed false-positive rate (another draw than the one that set the level)."""
    return float((smallest_p(looks, studies, np.random.default_rng(seed)) < pocock_level(looks)).mean())


def simulate_with_fragile_looks(looks: tuple[int, ...], studies: int, shift: float, seed: int = 0) -> float:
    """The false-positive rate of the rule as the paper runs it: a look's significant result that one seed moved
    by `shift` (in SDs of the per-seed differences; analysis/robustness.py) would undo is fragile and takes the
    next look, and the verdict is the last look's. It cannot exceed simulate_false_positives: a study called at
    its last look was significant at some look."""
    diffs = np.random.default_rng(seed).standard_normal((studies, looks[-1]))
    level, called, open_ = pocock_level(looks), np.zeros(studies, bool), np.ones(studies, bool)
    for index, n in enumerate(looks):
        significant = _p(diffs[:, :n]) < level
        moved = diffs[:, None, None, :n] + shift * np.eye(n)[None, :, None, :] * np.array([1, -1])[None, None, :, None]
        robust = significant & (_p(moved) < level).all(axis=(1, 2))  # every one-seed move keeps it significant
        last = index == len(looks) - 1
        called[open_] = (significant if last else robust)[open_]
        open_ &= ~robust
    return float(called.mean())


def _p(d: np.ndarray) -> np.ndarray:
    """The paired t-test's two-sided p over the last axis (the seeds' differences)."""
    n = d.shape[-1]
    return 2 * stats.t.sf(np.abs(d.mean(axis=-1) / (d.std(axis=-1, ddof=1) / math.sqrt(n))), n - 1)


def seeds_needed(effect: float, sd_diff: float, limit: int = 1000) -> int | None:
    """Paired seeds for 80% power at `effect` (two-sided, 5%), given the per-seed differences' SD; None when
    not computable or beyond `limit`."""
    if not (math.isfinite(effect) and math.isfinite(sd_diff)) or effect == 0 or sd_diff <= 0:
        return None
    for n in range(2, limit + 1):
        if paired_power(abs(effect), sd_diff, n) >= 0.8:
            return n
    return None
