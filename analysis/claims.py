"""Every claim the harness measures, as data (CLAIMS): its source's words, the range it asserts, and how it is
measured, a Contrast of two arms of a study (metric, arms, the view that makes rows of the study's runs,
absolute or in % of the second arm) or a figure computed from the runs or the presets; the quantity's words
are written from the contrast, and the verdict comes from analysis/verdict.py. Adding a claim is one entry;
tests/analysis/test_claims.py plants an effect for every contrast claim and checks its verdict.

The claims are the brief's (../shared/brief-claims.md), Gemma 2's Tables 7-10, and the stability papers'
(reference-stability.md) that the instability and LR-sensitivity studies reproduce. Differences are one arm
minus the other over the seeds both finished (paired where the runs pair up, else Welch's), on the held-out
test split (`test/loss`) unless a claim says otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from gemmalab.model import Decoder, preset, training_flops_per_token
from gemmalab.model.config import kv_kind
from gemmalab.runs.store import RunDir
from gemmalab.train.engagement import ENGAGED, TEACHER_MARGIN
from gemmalab.tune import arm_key, choose

from . import scaling, studies
from .evaluate import evaluations
from .power import min_detectable_difference
from .robustness import LOSSES, fragile, one_seed_moved
from .sequential import seeds_needed
from .tables import difference, holm, mean_ci, paired_values, pairs_up, same_value
from .verdict import INCONCLUSIVE, NO_EFFECT, Gauge, Measured, claimed_range, directional, verdict

TEST = "test/loss"
INF = math.inf


@dataclass
class Evidence:
    """The paper's studies as the claims read them: a frame of runs per study, and the run store (for
    evaluation records and tuning choices)."""

    frames: dict[str, pd.DataFrame]
    run_root: Path

    def frame(self, study: str) -> pd.DataFrame | None:
        frame = self.frames.get(study)
        return None if frame is None or frame.empty else frame


def in_arm(frame: pd.DataFrame, where: dict[str, Any]) -> pd.Series:
    """Which runs belong to the arm: every key of `where` matching (text exactly, numbers as numbers)."""
    keep = pd.Series(True, index=frame.index)
    for key, value in where.items():
        if key not in frame:
            return ~keep
        keep &= frame[key].astype(str).eq(value) if isinstance(value, str) else frame[key].map(
            lambda v, value=value: same_value(v, value))  # fmt: skip
    return keep


def counted(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Runs whose `metric` is a result: finished ones, and diverged ones for blow-up counts (not their loss)."""
    status = frame["status"].astype(str)
    return status.eq("finished") | (status.str.startswith("diverged") & metric.startswith(("stability/", "attn/")))


def arm(frame: pd.DataFrame, where: dict[str, Any], metric: str) -> pd.DataFrame:
    """The arm's runs (in_arm) that count (counted) with a finite value of `metric`."""
    runs = frame[in_arm(frame, where) & counted(frame, metric)]
    return runs[np.isfinite(pd.to_numeric(runs[metric], errors="coerce").astype(float))] if metric in runs else runs[:0]


def why_no_value(frame: pd.DataFrame, where: dict[str, Any], metric: str) -> str:
    """Why an arm gives no value of `metric`: the study ran no such arm, none of its runs finished, or the
    metric is undefined in every one that did (a spike count in runs shorter than the rule's window)."""
    runs = frame[in_arm(frame, where)]
    if runs.empty:
        return f"the study ran no {where} arm"
    if not counted(runs, metric).any():
        return f"no finished run of {where} ({', '.join(sorted(set(runs['status'].astype(str))))})"
    why = "the runs are shorter than the spike rule's window" if metric.startswith("stability/") else "not logged"
    return f"{metric} is undefined in every finished run of {where} ({why})"


def contrast(frame: pd.DataFrame | None, metric: str, a: dict, b: dict, relative: bool = False,
             labels: tuple[str, str] | None = None) -> Measured:  # fmt: skip
    """metric(a) - metric(b), paired over common seeds where the runs pair up, else Welch's; relative: in %
    of b's mean. With the smallest difference detectable with 80% power by the same test, and every value
    read, each under its arm's label (default: its switches)."""
    if frame is None:
        return Measured(math.nan, math.nan, 0, reason="the study has no runs")
    x, y = arm(frame, a, metric), arm(frame, b, metric)
    if x.empty or y.empty:
        return Measured(math.nan, math.nan, 0, reason=why_no_value(frame, a if x.empty else b, metric))
    xv, yv = x[metric].to_numpy(float), y[metric].to_numpy(float)
    d = difference(xv, x["seed"].to_numpy(), yv, y["seed"].to_numpy(), pairs_up(frame))
    if d.test == "paired":
        p, q = paired_values(xv, x["seed"].to_numpy(), yv, y["seed"].to_numpy())
        mde = min_detectable_difference(float(np.std(p - q, ddof=1)), len(p), len(p), "paired")
    else:
        mde = min_detectable_difference(float(np.std(xv, ddof=1)) if len(xv) > 1 else math.nan, len(xv), len(yv),
                                        "Welch", float(np.std(yv, ddof=1)) if len(yv) > 1 else math.nan)  # fmt: skip
    scale = 100 / abs(float(yv.mean())) if relative and yv.mean() != 0 else 1.0
    labels = labels or (str(a), str(b))
    per_seed = tuple({"arm": label, "where": where, "seed": int(r.seed), "value": float(value),
                      "run_id": getattr(r, "run_id", None)}  # none: a per-seed figure of several runs (an LR grid's)
                     for label, where, runs in ((labels[0], a, x.sort_values("seed")),
                                                (labels[1], b, y.sort_values("seed")))
                     for r, value in zip(runs.itertuples(), runs[metric], strict=True))  # fmt: skip
    return Measured(d.delta * scale, d.ci * scale, d.n, d.test, mde * scale, p=d.p, per_seed=per_seed, df=d.df)


def exact(value: float) -> Measured:
    return Measured(float(value), 0.0, None)


def not_measured(reason: str) -> Measured:
    return Measured(math.nan, math.nan, None, reason=reason)


class NotMeasured(Exception):
    """A view that cannot give the rows a claim reads (a best LR at its grid's edge, no evaluation records)."""


# ---- the views: how a study's logged runs become the rows a claim's arms select from -----------------------
def capped(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if frame is None else studies.with_capping(frame)


def mitigated(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if frame is None else frame.assign(mitigation=[studies.mitigation_of(r) for _, r in frame.iterrows()])


def largest_rung(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """A ladder's runs at its largest size: where its claims are read, and their gauges."""
    return None if frame is None else frame[frame["scale.rung"] == frame["scale.rung"].max()]


def kv_kinds(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each run's kind: MHA (a KV head per query head), MQA (one), GQA (between)."""
    if frame is None:
        return None
    kinds = [kv_kind(k, h) for k, h in zip(frame["attn.kv_heads"].astype(int), frame["model.n_heads"].astype(int),
                                               strict=True)]  # fmt: skip
    return frame.assign(kv=kinds)


def shapes(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Deep vs wide at equal parameters: the runs with the most layers are `deep`, the fewest `wide`."""
    if frame is None:
        return None
    layers = frame["model.n_layers"].astype(int)
    return frame.assign(shape=np.select([layers == layers.max(), layers == layers.min()], ["deep", "wide"], "other"))


def lr_sensitivities(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per seed and capping arm: Wortsman et al.'s LR sensitivity (studies.sensitivity_per_seed)."""
    frame = capped(frame)
    if frame is None:
        return None
    rows = [{"capping": capping, "seed": seed, "status": "finished", "sensitivity": value,
             "model.init": runs["model.init"].iloc[0], **{k: runs[k].max() for k in CAP_SHARES if k in runs}}
            for capping, runs in frame.groupby("capping")
            for seed, (value, _) in studies.sensitivity_per_seed(runs).items()]  # fmt: skip
    return pd.DataFrame(rows)


def at_the_edge(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """An LR grid's runs at the edge of stability: its largest LR at which every run finished (none diverged
    or failed) and a cap bends (either cap's share beyond cap/2 at its threshold in some run); else its largest
    LR, where the gauge then says the caps did not bend. Where a capping stability claim can be read."""
    frame = capped(frame)
    if frame is None:
        return None
    lrs = sorted(frame["optim.lr"].unique())
    edge = [lr for lr in lrs if (runs := frame[frame["optim.lr"] == lr])["status"].eq("finished").all()
            and (g := caps_gauge(runs)) is not None and g.engaged]  # fmt: skip
    return frame[frame["optim.lr"] == (edge[-1] if edge else lrs[-1])]


BEST_LR = "each at its best LR"
WINDOWS = "evaluated at fractions of W"


def at_best_lr(e: Evidence, study: str) -> pd.DataFrame | None:
    """Each arm's runs at its own best LR (the tuned study's comparison runs); an arm whose best LR lies at its
    grid's edge has no best LR to compare at."""
    frame = e.frame(study)
    if frame is None:
        return None
    choices = choose(e.run_root, frame["tune.selection"].dropna().iloc[0])
    keys = [arm_key(yaml.safe_load(RunDir(e.run_root, i).config_path.read_text())) for i in frame["run_id"]]
    best = [choices[k].lr if k in choices else math.nan for k in keys]
    edge = [k in choices and choices[k].edge for k in keys]
    at = [same_value(lr, b) for lr, b in zip(frame["optim.lr"], best, strict=True)]
    return frame.assign(**{WHY_NOT: np.where(edge, "its best LR is at its grid's edge", "")})[at]


def evaluated_windows(e: Evidence, study: str) -> pd.DataFrame | None:
    """The runs trained at the smallest window, evaluated at fractions of it (`eval/fraction`, 1 = as trained):
    the same checkpoints, so the arms pair by seed."""
    frame = e.frame(study)
    if frame is None:
        return None
    evals = evaluations(frame, e.run_root)
    if evals.empty:
        raise NotMeasured("no evaluation records: python analysis/evaluate.py --group G attn.window=32,16,8")
    trained = int(frame["attn.window"].min())
    evals = evals[evals["attn.window"] == trained]
    return evals.assign(**{"eval/fraction": evals["eval/window"].fillna(trained) / trained})


VIEWS: dict[str, Callable[[Evidence, str], pd.DataFrame | None]] = {
    "runs": lambda e, study: e.frame(study),
    "capping": lambda e, study: capped(e.frame(study)),
    "capping, largest rung": lambda e, study: capped(largest_rung(e.frame(study))),
    "capping, at the edge of stability": lambda e, study: at_the_edge(e.frame(study)),
    "mitigation": lambda e, study: mitigated(e.frame(study)),
    "kv kind": lambda e, study: kv_kinds(e.frame(study)),
    "shape": lambda e, study: shapes(e.frame(study)),
    "shape, largest rung": lambda e, study: shapes(largest_rung(e.frame(study))),
    "LR sensitivity per seed": lambda e, study: lr_sensitivities(e.frame(study)),
    BEST_LR: at_best_lr,
    WINDOWS: evaluated_windows,
}
WHY_NOT = "why not measured"  # a view's column: a reason its row cannot be compared (empty: it can)


# ---- the gauges: how far the mechanism bit in the runs a claim reads (the largest over them) ---------------
CAP_SHARES = ("softcap/attn/beyond_half", "softcap/final/beyond_half")


def caps_gauge(rows: pd.DataFrame, keys: tuple[str, ...] = ("attn", "final")) -> Gauge | None:
    shares = [f"softcap/{k}/beyond_half" for k in keys if f"softcap/{k}/beyond_half" in rows]
    if not shares or not any(rows[s].notna().any() for s in shares):
        return None
    value = max(float(rows[s].max()) for s in shares if rows[s].notna().any())
    return Gauge(f"largest share of {' / '.join(keys)} cap inputs beyond cap/2", value, min(ENGAGED[s] for s in shares))


def mass_gauge(rows: pd.DataFrame, figure: str, what: str) -> Gauge | None:
    if figure not in rows or not rows[figure].notna().any():
        return None
    return Gauge(what, float(rows[figure].max()), ENGAGED[figure])


def teacher_gauge(rows: pd.DataFrame) -> Gauge | None:
    """What the teacher had left to teach: the student trained from scratch minus its teacher (val/loss; the
    teacher's own loss is the distilled student's minus its logged gap)."""
    if "distill/gap_final" not in rows:
        return None
    scratch = rows[rows["cascade.training"].eq("scratch") & rows["status"].eq("finished")]
    distilled = rows[rows["cascade.training"].eq("distilled") & rows["distill/gap_final"].notna()]
    if scratch.empty or distilled.empty:
        return None
    teacher = float((distilled["val/loss"] - distilled["distill/gap_final"]).mean())
    return Gauge("student from scratch minus its teacher, val/loss (nats)", float(scratch["val/loss"].mean()) - teacher,
                 TEACHER_MARGIN)  # fmt: skip


GAUGES: dict[str, Callable[[pd.DataFrame], Gauge | None]] = {
    "caps": caps_gauge,
    "final cap": lambda rows: caps_gauge(rows, ("final",)),
    "attention cap": lambda rows: caps_gauge(rows, ("attn",)),
    "local layers beyond W/2": lambda rows: mass_gauge(
        rows, "window/local_beyond_half", "largest share of the local layers' attention at offsets >= W/2"
    ),
    "local layers beyond W/4": lambda rows: mass_gauge(
        rows, "window/local_beyond_quarter", "largest share of the local layers' attention at offsets >= W/4"
    ),
    "teacher": teacher_gauge,
}


# ---- the claims: declarative contrasts of two arms, or a figure ---------------------------------------------
LOWER, HIGHER = (-INF, 0.0), (0.0, INF)  # the claimed range of a - b: a lower than b, a higher
METRICS = {  # what each metric a claim reads is called in a quantity, and its unit
    TEST: (TEST, "nats"),
    "stability/loss_spikes": ("loss spikes", "count"),
    "stability/grad_norm_var": ("grad-norm variance after warmup", "norm²"),
    "output/log_z_peak": ("peak |log Z| of the output softmax", "nats"),
    "attn/max_logit": ("largest attention logit, before any cap", "logit"),
    "sensitivity": ("LR sensitivity", "nats"),
    "val/loss": ("val/loss", "nats"),
}


@dataclass(frozen=True)
class Arm:
    label: str  # how the quantity names it
    where: dict[str, Any]  # the switches (view columns) that select its runs


@dataclass(frozen=True)
class Contrast:
    """metric(a) - metric(b) over the rows `view` makes of the study's runs; both arms also match `fixed`."""

    metric: str
    a: Arm
    b: Arm
    view: str = "runs"
    relative: bool = False  # in % of b's mean
    fixed: tuple[tuple[str, Any], ...] = ()  # switches both arms share (an LR of the grid)
    runs: tuple[str, ...] = ()  # the sweep overrides that train just the two arms (empty: the study's sweep)

    def arm(self, arm: Arm) -> dict[str, Any]:
        return {**arm.where, **dict(self.fixed)}

    def quantity(self) -> str:
        name, unit = METRICS[self.metric]
        at = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in self.fixed)
        return f"{name}{at}, {self.a.label} - {self.b.label} ({f'% of {self.b.label}' if self.relative else unit})"


@dataclass(frozen=True)
class Claim:
    """One claim: its source's words, the range of the quantity it asserts and how the quantity is measured:
    a Contrast of two arms of a study (`lower`: the arm the source says has the lower value, checked against
    the range so that swapped arms cannot pass), or a `figure` computed from the runs or the presets."""

    id: str
    family: str  # the idea it belongs to: its p-value is Holm-adjusted within the family
    source: str
    statement: str  # the claim as its source states it
    claimed: tuple[float, float]  # the range of the quantity the claim asserts
    study: str | None  # the paper study that measures it; None: analytic, from the presets
    contrast: Contrast | None = None
    lower: str | None = None
    margin: float | None = None  # a direction claim's smallest effect of interest d: "equivalent within ±d"
    gauge: str | None = None  # GAUGES
    figure: Callable[[Evidence], Measured] | None = None
    what: str = ""  # a figure's quantity in words
    note: Callable[[Evidence], str] | None = None

    def __post_init__(self) -> None:
        if (self.contrast is None) == (self.figure is None):
            raise ValueError(f"claim {self.id}: give either a contrast or a figure")
        low, high = self.claimed
        if self.contrast is not None and math.isinf(low) != math.isinf(high):  # one-sided: a says which arm is lower
            said = self.contrast.a.label if math.isinf(low) else self.contrast.b.label
            if self.lower != said:
                raise ValueError(
                    f"claim {self.id}: its range {claimed_range(low, high)} for {self.contrast.a.label} - "
                    f"{self.contrast.b.label} says {said} is lower, its source says {self.lower} (swapped arms?)"
                )

    @property
    def quantity(self) -> str:
        return self.contrast.quantity() if self.contrast else self.what

    def rows(self, evidence: Evidence) -> pd.DataFrame | None:
        """The rows the contrast's arms are selected from."""
        return VIEWS[self.contrast.view](evidence, self.study)

    def read(self, rows: pd.DataFrame | None) -> tuple[Measured, Gauge | None]:
        """The contrast measured on `rows`, and the gauge over the runs of its two arms."""
        c = self.contrast
        both = None if rows is None else rows[in_arm(rows, c.arm(c.a)) | in_arm(rows, c.arm(c.b))]
        if both is not None and WHY_NOT in both and (reasons := sorted({r for r in both[WHY_NOT] if r})):
            return not_measured("; ".join(reasons)), None
        measured = contrast(rows, c.metric, c.arm(c.a), c.arm(c.b), c.relative, (c.a.label, c.b.label))
        return measured, None if both is None or self.gauge is None else GAUGES[self.gauge](both)

    def measure(self, evidence: Evidence) -> tuple[Measured, Gauge | None, str]:
        """(the measurement, its gauge, a note) from the paper's evidence."""
        if self.figure is not None:
            return self.figure(evidence), None, self.note(evidence) if self.note else ""
        try:
            measured, gauge = self.read(self.rows(evidence))
        except NotMeasured as why:
            return not_measured(str(why)), None, ""
        return measured, gauge, self.note(evidence) if self.note else ""


NOT_EXTENDED = {  # views whose claims take no later look, and why
    BEST_LR: "a tuned comparison: more seeds would need the LR selection again",
    "capping, largest rung": "a ladder's largest rung: its runs are the paper's longest",
    "shape, largest rung": "a ladder's largest rung: its runs are the paper's longest",
}


def one_arm_moves(c: Contrast) -> bool:
    """Whether the machine's noise can move one arm's value alone (analysis/robustness.py): a loss, and not both
    arms one run (windows evaluated at fractions of W: the machine moves both together)."""
    return c.metric in LOSSES and c.view != WINDOWS


def still_open(claim: Claim, row: dict[str, Any], seeds: int) -> bool:
    """Whether a later look with `seeds` seeds can decide the claim: measured, engaged, undecided or fragile,
    fewer seeds so far, and a contrast whose arms more seeds can be run for."""
    undecided = row["verdict"].startswith(NO_EFFECT) or row["verdict"] == INCONCLUSIVE or fragile(row)
    return (undecided and claim.contrast is not None and claim.contrast.view not in NOT_EXTENDED
            and row["n"] is not None and row["n"] < seeds)  # fmt: skip


def extension(claims: list[Claim]) -> dict[str, tuple[str, ...]]:
    """Per study, the sweep overrides that train the arms of `claims` (several claims: each key's values
    joined; a claim without its own overrides: the study's whole sweep, ())."""
    out: dict[str, tuple[str, ...]] = {}
    for study in dict.fromkeys(c.study for c in claims):
        runs = [c.contrast.runs for c in claims if c.study == study]
        if not all(runs):
            out[study] = ()
            continue
        values: dict[str, list[str]] = {}
        for override in (o for r in runs for o in r):
            key, value = override.split("=", 1)
            values.setdefault(key, [])
            values[key] += [v for v in value.split(",") if v not in values[key]]
        everywhere = [k for k in values if all(any(o.startswith(f"{k}=") for o in r) for r in runs)]
        out[study] = tuple(f"{k}={','.join(values[k])}" for k in everywhere)  # a key some arms leave free: all
    return out


def seeds_for(row: dict[str, Any], claim: Claim) -> int | None:
    """The paired seeds 80% power would need at the claim's margin (else the measured effect), from the
    spread of its per-seed differences."""
    values = pd.DataFrame(row["per_seed"])
    if values.empty or claim.contrast is None:
        return None
    a, b = (values[values["arm"] == arm.label].set_index("seed")["value"]
            for arm in (claim.contrast.a, claim.contrast.b))  # fmt: skip
    diff = (a - b).dropna()
    if len(diff) < 2:
        return None
    scale = 100 / abs(float(b.mean())) if claim.contrast.relative and b.mean() != 0 else 1.0
    effect = claim.margin if claim.margin is not None else abs(row["value"] or 0.0)
    return seeds_needed(effect, float(diff.std(ddof=1)) * scale)


def ladder_note(study: str, minuend: str) -> Callable[[Evidence], str]:
    """The ladder's fit as a note: its slope and extrapolation to 9B, signed as the claim's a - b, whose `a`
    begins the label of the arm the ladder subtracts from (scaling.ladder's `other`) when it is `minuend`."""

    def note(e: Evidence) -> str:
        frame = e.frame(study)
        if frame is None:
            return ""
        _, _, drawn = scaling.ladder(frame)
        if not drawn["points"]:
            return "no rung with an effect CI"
        sign = 1 if drawn["other"].startswith(minuend) else -1  # the ladder's effect is other minus base
        text = f"{len(drawn['points'])} rungs, largest {10 ** drawn['points'][-1][0]:,.0f} non-embedding parameters"
        if (fit := drawn["fit"]) is not None:
            mean, half = fit.predict(math.log10(scaling.gemma2_parameters()["gemma2-9b"]))
            text += (f"; slope {sign * fit.slope:+.4f} ± {fit.slope_ci():.4f} nats per decade; extrapolated "
                     f"to 9B {sign * mean:+.3f} ± {half:.3f} nats (a straight line over many decades)")  # fmt: skip
        return text

    return note


@functools.cache
def real_scale() -> pd.DataFrame:
    return studies.real_scale().set_index("model")


def kv_cache(id: str, statement: str, model: str, column: str, stated_gb: float) -> Claim:
    """A KV-cache size the brief states, against the one computed from the preset (within 5%)."""
    return Claim(id, "grouped-query attention", "brief", statement, (stated_gb * 0.95, stated_gb * 1.05), None,
                 figure=lambda e: exact(real_scale().loc[model, column]),
                 what=f"computed from the {model} preset (GB)")  # fmt: skip


def post_norm_share(name: str, context: int) -> float:
    """The FLOPs the post-norms add per training token, in % of the model's (model/accounting.py): two more
    RMSNorms per layer, ~4 FLOPs per element each (square, mean, scale, gain), forward + backward = 3 x."""
    config = preset(name)
    with torch.device("meta"):
        total = training_flops_per_token(Decoder(config), context)
    return 100 * 3 * 2 * config.n_layers * 4 * config.d_model / total


def tokens_to_match(e: Evidence) -> Measured:
    """k: the tokens (in multiples of the distilled middle student's N) at which the same model trained from
    scratch reaches the student's test/loss, per seed: log-linear between the scratch budgets that bracket it.
    A seed whose scratch run at N already matches its student counts as k = 1 (distillation saved nothing); one
    whose longest scratch run does not reach it counts as the largest budget, a lower bound: its `test` names
    both kinds of censored seed, so a k at the largest budget is read as "at least"."""
    frame = e.frame("cascade")
    if frame is None:
        return not_measured("the study has no runs")
    middle = frame[frame["cascade.size"].eq("middle") & frame["status"].eq("finished")]
    distilled = middle[middle["cascade.training"].eq("distilled")]
    scratch = middle[middle["cascade.training"].astype(str).str.startswith("scratch")]
    if distilled.empty or scratch["trainer.max_steps"].nunique() < 2:
        return not_measured(
            "tokens-to-match needs the middle model from scratch at several token budgets "
            "(+cascade=middle_scratch,middle_scratch_x2,middle_scratch_x4,middle_scratch_x8)"
        )
    n = float(distilled["trainer.max_steps"].iloc[0])
    ks, at_most_one, beyond = [], 0, 0
    for seed, student in distilled.groupby("seed"):
        runs = scratch[scratch["seed"] == seed].sort_values("trainer.max_steps")
        budgets, losses = runs["trainer.max_steps"].to_numpy(float) / n, runs[TEST].to_numpy(float)
        target = float(student[TEST].iloc[0])
        if losses[0] <= target:  # from scratch on the same tokens is already as good
            ks.append(budgets[0])
            at_most_one += 1
            continue
        crossed = [i for i in range(len(losses) - 1) if losses[i] >= target >= losses[i + 1]]
        if not crossed:
            ks.append(budgets[-1])
            beyond += 1
            continue
        i = crossed[0]
        w = (losses[i] - target) / (losses[i] - losses[i + 1]) if losses[i] != losses[i + 1] else 0.0
        ks.append(math.exp(math.log(budgets[i]) + w * (math.log(budgets[i + 1]) - math.log(budgets[i]))))
    mean, ci, count = mean_ci(np.array(ks))
    censored = (
        f"; {at_most_one} seed(s) at k <= 1, {beyond} beyond {budgets.max():g} x N" if at_most_one + beyond else ""
    )
    return Measured(mean, ci, count, f"one-sample t{censored}", df=count - 1)


def cascade_compute_note(e: Evidence) -> str:
    frame = e.frame("cascade")
    flops = {} if frame is None else studies.production_flops(frame)
    if "small" not in flops:
        return ""
    own, produced = flops["small"]
    return (
        f"beside it, not folded in: the small student's FLOPs with its teachers' training and forward passes "
        f"are {produced / own:.3g} x its own training from scratch"
    )


def shape_claim(id: str, study: str, view: str, at: str, margin: float | None, note=None) -> Claim:
    paper = studies.STATED["table9"]
    return Claim(id, "deep vs wide", "Gemma 2 Table 9", f"at equal parameters a deeper, narrower model is better "
                 f"(9B: {paper['deep']} vs {paper['wide']} average score){at}", LOWER, study,
                 Contrast(TEST, Arm("deep", {"shape": "deep"}), Arm("wide", {"shape": "wide"}), view, relative=True),
                 lower="deep", margin=margin, note=note)  # fmt: skip


def cascade_claim(size: str) -> Claim:
    where = {"cascade.size": size}
    return Claim(f"table7-{size}", "distillation", "Gemma 2 Table 7", f"a distilled student beats the same model "
                 f"trained from scratch on the same tokens ({size} model)", LOWER, "cascade",
                 Contrast(TEST, Arm("distilled", {**where, "cascade.training": "distilled"}),
                          Arm("scratch", {**where, "cascade.training": "scratch"})),
                 lower="distilled", gauge="teacher")  # fmt: skip


EDGE = "capping, at the edge of stability"


def read_at_lr(study: str, view: str) -> Callable[[Evidence], str]:
    def note(e: Evidence) -> str:
        rows = VIEWS[view](e, study)
        return (
            ""
            if rows is None or rows.empty
            else f"read at optim.lr={rows['optim.lr'].iloc[0]:g} of the grid "
            f"{', '.join(f'{v:g}' for v in sorted(e.frame(study)['optim.lr'].unique()))}"
        )

    return note


def on_off(metric: str, relative: bool = False, view: str = "capping") -> Contrast:
    return Contrast(metric, Arm("on", {"capping": "on"}), Arm("off", {"capping": "off"}), view, relative)


def mitigation(name: str, metric: str, lr: float) -> Contrast:
    """A mitigation against none at one LR of the instability study, in % of none."""
    return Contrast(
        metric,
        Arm(name, {"mitigation": name}),
        Arm("none", {"mitigation": "none"}),
        "mitigation",
        relative=True,
        fixed=(("optim.lr", lr),),
        runs=(f"+mitigation={name},none", f"optim.lr={lr:g}"),
    )


def placement(a: str, b: str, metric: str = TEST, relative: bool = True, view: str = "runs", **where) -> Contrast:
    runs = (f"norm={a},{b}", *(f"{k}={v:g}" for k, v in where.items()))
    return Contrast(metric, Arm(a, {"norm": a, **where}), Arm(b, {"norm": b}), view, relative, runs=runs)


def kinds(a: str, b: str) -> Contrast:
    return Contrast(TEST, Arm(a, {"kv": a}), Arm(b, {"kv": b}), "kv kind", relative=True)


def window_at(fraction: float, label: str) -> Contrast:
    return Contrast("val/loss", Arm(label, {"eval/fraction": fraction}), Arm("W", {"eval/fraction": 1.0}),
                    WINDOWS)  # fmt: skip


NO_GPU = "needs a GPU: benchmarks/inference.py measures decode at laptop scale on this machine"
PREVENTS = (-INF, -50.0)  # "prevents" read as: removes at least half of what the bare model shows
CLAIMS: tuple[Claim, ...] = (
    Claim("softcap-spikes", "soft-capping", "brief", "training loss spikes > 0.5: ~15 without capping, 2 with (-87%)",
          LOWER, "softcap_stability", on_off("stability/loss_spikes", view=EDGE), lower="on", margin=13, gauge="caps",
          note=read_at_lr("softcap_stability", EDGE)),
    Claim("softcap-gradvar", "soft-capping", "brief", "gradient-norm variance 2.4 without capping, 0.8 with (-67%)",
          LOWER, "softcap_stability", on_off("stability/grad_norm_var", relative=True, view=EDGE), lower="on",
          margin=67, gauge="caps", note=read_at_lr("softcap_stability", EDGE)),
    Claim("softcap-quality", "soft-capping", "brief", "final model quality +1.2% average with capping", LOWER,
          "softcap", on_off(TEST, relative=True), lower="on", margin=1.2, gauge="caps"),
    Claim("softcap-ladder", "soft-capping", "brief", "final model quality +1.2% average with capping (across scale, "
          "read at the ladder's largest rung)", LOWER, "softcap_ladder",
          on_off(TEST, relative=True, view="capping, largest rung"), lower="on", margin=1.2, gauge="caps",
          note=ladder_note("softcap_ladder", "softcap.attn=50")),
    Claim("softcap-divergence", "soft-capping", "Rybakov et al. 2024 (caps); measure: Wortsman et al. 2023",
          "soft-capping (attention 50, final 30) prevents output-logit divergence (tiny model, LR 1.0, no warmup or "
          "clipping)", PREVENTS, "instability", mitigation("softcap", "output/log_z_peak", 1.0), lower="softcap",
          gauge="final cap"),
    Claim("final-cap-divergence", "soft-capping", "Rybakov et al. 2024 (caps); measure: Wortsman et al. 2023",
          "a final-logit cap (30) alone prevents output-logit divergence (LR 1.0)", PREVENTS, "instability",
          mitigation("final_cap", "output/log_z_peak", 1.0), lower="final_cap", gauge="final cap"),
    Claim("attn-cap-logits", "soft-capping", "Rybakov et al. 2024 (cap 50 with QK-norm; here alone)",
          "an attention-logit cap (50) alone stops attention-logit growth (LR 0.3)", LOWER, "instability",
          mitigation("attn_cap", "attn/max_logit", 0.3), lower="attn_cap", gauge="attention cap"),
    Claim("softcap-lr-sensitivity", "soft-capping", "Wortsman et al. 2023", "capping logits lowers the sensitivity "
          "of the final loss to the learning rate", LOWER, "lr_sensitivity",
          on_off("sensitivity", view="LR sensitivity per seed"), lower="on", gauge="caps"),
    Claim("qknorm-logits", "stability", "Wortsman et al. 2023", "QK-layernorm stops attention-logit growth (LR 0.3)",
          LOWER, "instability", mitigation("qk_norm", "attn/max_logit", 0.3), lower="qk_norm"),
    Claim("zloss-divergence", "stability", "Wortsman et al. 2023", "z-loss prevents output-logit divergence (LR 1.0)",
          PREVENTS, "instability", mitigation("z_loss", "output/log_z_peak", 1.0), lower="z_loss"),
    Claim("norm-dual-vs-pre", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs pre-only)",
          LOWER, "norm", placement("dual", "pre"), lower="dual", margin=1.2),
    Claim("norm-dual-vs-pre-gain", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs "
          "pre-only), the post-norms' gains starting at 0.1", LOWER, "norm_init",
          placement("dual", "pre", **{"model.post_norm_init_gain": 0.1}), lower="dual", margin=1.2),
    Claim("norm-dual-vs-pre-long", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs "
          "pre-only), trained 3 x longer (600 steps)", LOWER, "norm_horizon",
          placement("dual", "pre", **{"model.post_norm_init_gain": 1.0}), lower="dual", margin=1.2),
    Claim("norm-dual-vs-pre-gain-long", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs "
          "pre-only), the post-norms' gains starting at 0.1, trained 3 x longer (600 steps)", LOWER, "norm_horizon",
          placement("dual", "pre", **{"model.post_norm_init_gain": 0.1}), lower="dual", margin=1.2),
    Claim("norm-dual-vs-post", "norm placement", "brief", "dual norm beats post-norm only (+1.2% vs +0.5%)", LOWER,
          "norm", placement("dual", "post"), lower="dual", margin=0.7),
    Claim("norm-post-quality", "norm placement", "brief", "post-norm only: +0.5% quality over pre-norm (read on "
          "post: x + norm(f(x)))", LOWER, "norm", placement("post", "pre"), lower="post", margin=0.5),
    Claim("norm-postln-quality", "norm placement", "brief", "post-norm only: +0.5% quality over pre-norm (read on "
          "postln: norm(x + f(x)))", LOWER, "norm", placement("postln", "pre"), lower="postln", margin=0.5),
    Claim("norm-post-spikes", "norm placement", "brief", "post-norm only: poor stability (loss spikes; read on post, "
          "no warmup or clipping)", HIGHER, "norm_stability",
          placement("post", "pre", "stability/loss_spikes", relative=False), lower="pre"),
    Claim("norm-postln-spikes", "norm placement", "brief", "post-norm only: poor stability (loss spikes; read on "
          "postln, no warmup or clipping)", HIGHER, "norm_stability",
          placement("postln", "pre", "stability/loss_spikes", relative=False), lower="pre"),
    Claim("norm-dual-tuned", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs pre-only), "
          "each at its own best LR", LOWER, "norm_tuned_gain",
          placement("dual", "pre", view=BEST_LR, **{"model.post_norm_init_gain": 1.0}), lower="dual", margin=1.2),
    Claim("norm-dual-tuned-gain", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs "
          "pre-only), each at its own best LR, the post-norms' gains starting at 0.1", LOWER, "norm_tuned_gain",
          placement("dual", "pre", view=BEST_LR, **{"model.post_norm_init_gain": 0.1}), lower="dual", margin=1.2),
    Claim("norm-compute", "norm placement", "brief", "post-norm adds < 1% compute", (0, 1), None,
          figure=lambda e: exact(post_norm_share("gemma2-9b", 8192)),
          what="9B at 8K: the two post-norms' FLOPs per training token / all training FLOPs per token (%)"),
    Claim("attn-work", "attention pattern", "brief", "alternating local (4096) / global (8192): ~50% less attention "
          "work than full attention in every layer", (40, 60), None,
          figure=lambda e: exact(float(real_scale().loc["gemma2-9b", "attention saving"].rstrip("%"))),
          what="9B at 8K: score entries saved vs full (%, causal)"),
    Claim("attn-memory", "attention pattern", "brief", "~50% memory reduction vs full attention in every layer",
          (40, 60), None, figure=lambda e: exact(float(
              real_scale().loc["gemma2-9b", "KV cache saving, alt + rolling local"].rstrip("%"))),
          what="9B at 8K: KV cache saved, local layers keeping their last W (%)"),
    Claim("table10-half", "attention pattern", "Gemma 2 Table 10", "a model trained with window W evaluated at W/2 "
          "loses almost nothing (ppl 1.63 -> 1.63; ±0.01 nats = ±1% ppl)", (-0.01, 0.01), "window_at_inference",
          window_at(0.5, "W/2"), gauge="local layers beyond W/2"),
    Claim("table10-quarter", "attention pattern", "Gemma 2 Table 10", "evaluated at W/4: ppl 1.63 -> 1.64",
          (-0.01, 0.01), "window_at_inference", window_at(0.25, "W/4"), gauge="local layers beyond W/4"),
    kv_cache("gqa-cache-mha", "9B KV cache at 8K, bf16, MHA (16 KV heads): 5.5 GB", "gemma2-9b",
             "KV cache 8K, MHA (GB)", 5.5),
    kv_cache("gqa-cache-gqa", "9B KV cache at 8K, bf16, GQA (8 KV heads): 2.75 GB", "gemma2-9b",
             "KV cache 8K, as built (GB)", 2.75),
    kv_cache("gqa-cache-2b", "KV cache at 8K: Gemma 2 2B (GQA) 842 MB", "gemma2-2b", "KV cache 8K, as built (GB)",
             0.842),
    kv_cache("mqa-cache-2b", "KV cache at 8K: Gemma 1 2B (MQA) 421 MB", "gemma1-2b", "KV cache 8K, as built (GB)",
             0.421),
    Claim("gqa-vs-mha", "grouped-query attention", "brief", "quality ordering MQA < GQA < MHA: MHA beats GQA",
          HIGHER, "kv_heads", kinds("GQA", "MHA"), lower="MHA", margin=2),
    Claim("mqa-vs-gqa", "grouped-query attention", "brief", "quality ordering MQA < GQA < MHA: GQA beats MQA",
          HIGHER, "kv_heads", kinds("MQA", "GQA"), lower="GQA"),
    Claim("gqa-keeps", "grouped-query attention", "brief", "GQA is 2-5% worse than MHA (keeps ~95-98% of its "
          "quality)", (2, 5), "kv_heads", kinds("GQA", "MHA")),
    Claim("table8-gqa", "grouped-query attention", "Gemma 2 Table 8", "GQA matches MHA (9B: "
          f"{studies.STATED['table8']['GQA']} vs {studies.STATED['table8']['MHA']} average score; ±1%)", (-1, 1),
          "kv_heads", kinds("GQA", "MHA")),
    cascade_claim("middle"),
    cascade_claim("small"),
    Claim("distill-compute", "distillation", "brief", "comparable quality at ~50x less compute per distilled model",
          (50, INF), "cascade", figure=tokens_to_match, note=cascade_compute_note,
          what="tokens the middle model needs from scratch to match its distilled self trained on N, in N "
               "(the teachers' cost in the note, not folded in)"),
    Claim("distill-recipe", "distillation", "brief", "typically T = 2-4, alpha = 0.7-0.9", (-INF, INF), None,
          figure=lambda e: not_measured("a stated recipe, not an effect; the cascade uses Gemma 2's alpha 1, T 1"),
          what="a recipe's range, not an effect"),
    shape_claim("table9", "deep_wide", "shape", "", 2.4),
    shape_claim("table9-ladder", "deep_wide_ladder", "shape, largest rung", " (across scale, read at the ladder's "
                "largest rung)", 2.4, ladder_note("deep_wide_ladder", "scale.depth=1.5")),
    Claim("inference-speed", "inference", "brief", "Gemma 2 2B decodes 187 / 1,024 / 2,456 tokens/s at batch 1 / 8 / "
          "32 (A100 40GB), Gemma 1 2B 156 / 891 / 2,103", (-INF, INF), None, figure=lambda e: not_measured(NO_GPU),
          what="tokens/s on an A100"),
    Claim("inference-memory", "inference", "brief", "peak memory 6.2 GB (Gemma 1 2B) vs 6.8 GB (Gemma 2 2B)",
          (-INF, INF), None, figure=lambda e: not_measured(NO_GPU), what="peak GPU memory while decoding"),
)  # fmt: skip


def scale_of(frame: pd.DataFrame | None) -> str:
    """What a study was measured at: parameters and tokens per run (ranges where they vary)."""
    if frame is None:
        return "–"
    tokens = frame["trainer.max_steps"].astype(int) * frame.apply(studies.tokens_per_step, axis=1)
    params = frame["parameters"].dropna().astype(int) if "parameters" in frame else pd.Series(dtype=int)

    def span(values: pd.Series) -> str:
        lo, hi = human(values.min()), human(values.max())
        return lo if lo == hi else f"{lo}-{hi}"

    return f"{span(params) if len(params) else '?'} parameters, {span(tokens)} tokens/run"


def human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def findings(claims: tuple[Claim, ...], evidence: Evidence, alpha: float = 0.05) -> list[dict[str, Any]]:
    """Every claim's row of findings.json, the directional claims' p-values Holm-adjusted within their family
    (verdict.RULE), each verdict at level `alpha` (a sequential look's: analysis/sequential.py)."""
    measured = {c.id: c.measure(evidence) for c in claims}
    adjusted: dict[str, float] = {}
    for family in dict.fromkeys(c.family for c in claims):
        ids = [c.id for c in claims
               if c.family == family and directional(*c.claimed) and np.isfinite(measured[c.id][0].p)]  # fmt: skip
        adjusted.update(zip(ids, holm([measured[i][0].p for i in ids]), strict=True))
    return [finding(c, evidence, measured[c.id], adjusted.get(c.id, math.nan), alpha) for c in claims]


def finding(claim: Claim, evidence: Evidence, measured: tuple[Measured, Gauge | None, str] | None = None,
            p_adjusted: float = math.nan, alpha: float = 0.05) -> dict[str, Any]:  # fmt: skip
    """One row of findings.json: the claim, the measurement (with each seed's value), the gauge, p raw and
    adjusted within the claim's family, the margin it is judged at, and the verdict (NaN as null)."""
    measured, gauge, note = claim.measure(evidence) if measured is None else measured
    frame = evidence.frame(claim.study) if claim.study else None
    c = claim.contrast
    moved = (one_seed_moved(claim.claimed, measured, gauge, p_adjusted, claim.margin, alpha, c.relative)
             if c is not None and one_arm_moves(c) else None)  # fmt: skip
    return clean({
        "id": claim.id, "topic": claim.family, "source": claim.source, "claim": claim.statement,
        "quantity": claim.quantity, "claimed": claimed_range(*claim.claimed), "margin": claim.margin,
        "study": claim.study or "analytic (presets)", "scale": scale_of(frame) if claim.study else "real size",
        "value": measured.value, "ci": measured.ci, "ci90": measured.ci90, "n": measured.n, "test": measured.test,
        "detectable": measured.detectable,
        "gauge": None if gauge is None else {"what": gauge.what, "value": gauge.value, "threshold": gauge.threshold,
                                              "engaged": gauge.engaged},
        "p": measured.p, "p_holm": p_adjusted, "family": claim.family, "per_seed": list(measured.per_seed),
        "judged_by": "95% CI and Holm-adjusted p" if directional(*claim.claimed) else "90% CI (two one-sided tests)",
        "level": alpha, "verdict": verdict(*claim.claimed, measured, gauge, p_adjusted, claim.margin, alpha),
        "one_seed_moved": moved, "note": note,
    })  # fmt: skip


def clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null, numpy scalars as Python numbers, floats to 6 significant digits."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value
