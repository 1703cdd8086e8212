"""Whether one seed moving could flip a verdict.

A run is bitwise reproducible on one machine, not across machines: one seed of a ladder rung moved 0.086 nats
between two machines of the same kind, about the seed SD. So a verdict on losses is recomputed with one seed's
value in one arm moved by that much, either way, seed by seed (2n recomputations, the claim's own rule, level
and Holm multiplier); a verdict that any such move changes is fragile. The paper's looks treat a fragile
verdict as still open (analysis/claims.py still_open), and the published per-seed values reproduce the check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .tables import difference
from .verdict import CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NO_EFFECT, SUPPORTED, Gauge, Measured, verdict

MACHINE_NOISE = 0.086  # nats: the largest move of one seed's loss between two machines of one kind seen
LOSSES = ("test/loss", "val/loss")
KINDS = (SUPPORTED, CONTRADICTED, EQUIVALENT, NO_EFFECT, INCONCLUSIVE)


def kind(text: str) -> str:
    """A verdict without its numbers: `no detectable effect (could detect ±0.1)` -> `no detectable effect`."""
    return next((k for k in KINDS if text.startswith(k)), text)


def one_seed_moved(claimed: tuple[float, float], measured: Measured, gauge: Gauge | None, p_adjusted: float,
                   margin: float | None, alpha: float, relative: bool) -> dict[str, Any] | None:  # fmt: skip
    """{"shift", "holds", "flip"} for a paired verdict on a loss: whether moving any one seed of either arm by
    MACHINE_NOISE nats keeps its kind (the first move that changes it, if one does); None where the check does
    not apply (not paired, not a loss, not decided by a CI: not measured or not engaged)."""
    before = kind(verdict(*claimed, measured, gauge, p_adjusted, margin, alpha))
    if measured.test != "paired" or before not in KINDS:
        return None
    labels = list(dict.fromkeys(v["arm"] for v in measured.per_seed))
    if len(labels) != 2:
        return None
    a, b = ({v["seed"]: v["value"] for v in measured.per_seed if v["arm"] == label} for label in labels)
    seeds = sorted(s for s in set(a) & set(b) if math.isfinite(a[s]) and math.isfinite(b[s]))
    x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    scale = 100 / abs(float(np.mean(list(b.values())))) if relative else 1.0
    multiplier = p_adjusted / measured.p if math.isfinite(p_adjusted) and measured.p > 0 else math.nan
    at = np.array(seeds)
    for index, seed in enumerate(seeds):
        for shift in (MACHINE_NOISE, -MACHINE_NOISE):
            moved = x.copy()
            moved[index] += shift
            d = difference(moved, at, y, at, paired=True)
            again = Measured(d.delta * scale, d.ci * scale, d.n, d.test, p=d.p, df=d.df)
            adjusted = min(1.0, d.p * multiplier) if math.isfinite(multiplier) else math.nan
            after = kind(verdict(*claimed, again, gauge, adjusted, margin, alpha))
            if after != before:
                return {"shift": MACHINE_NOISE, "holds": False,
                        "flip": f"{labels[0]} at seed {seed} {shift:+g} nats: {after}"}  # fmt: skip
    return {"shift": MACHINE_NOISE, "holds": True, "flip": None}


def fragile(finding: dict[str, Any]) -> bool:
    """A decided verdict (findings.json's row) that one seed moving by the machine's noise would change."""
    moved = finding.get("one_seed_moved") or {}
    return moved.get("holds") is False and kind(finding["verdict"]) in (SUPPORTED, CONTRADICTED, EQUIVALENT)


def shown(finding: dict[str, Any]) -> str:
    """The verdict as the paper's tables print it: a fragile one says so."""
    return finding["verdict"] + (f" (fragile: {finding['one_seed_moved']['flip']})" if fragile(finding) else "")
