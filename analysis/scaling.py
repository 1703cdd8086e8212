"""A study across model scale (+scale=cpu | gpu): per rung the effect (one arm minus the other) with its
95% CI, a fit of the effect against log10(non-embedding parameters), and the effect extrapolated to
Gemma 2's sizes with a prediction interval.

The fit is a weighted least-squares line through the per-rung effects, weights 1 / (se² + tau²): se from
each rung's CI, tau² the spread between rungs beyond it (the DerSimonian-Laird moment estimate for a
meta-regression), so a ladder whose rungs disagree more than their CIs allow gets wider intervals.
The slope's CI and the prediction interval use Student t with rungs - 2 degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from gemmalab.model import Decoder, count_parameters, preset
from gemmalab.runs.identity import is_identity_key

from .tables import QUALITY, aggregate, difference, fmt, varying_switches, without_ignored

SIZE_KEYS = ("model.d_model", "model.n_layers", "model.d_ff", "trainer.max_steps")  # what the rung sets
SHAPE_KEYS = ("scale.depth", "scale.match_params")  # arms a ladder can compare besides the switches
GEMMA2 = ("gemma2-2b", "gemma2-9b", "gemma2-27b")


@dataclass
class Fit:
    intercept: float
    slope: float
    cov: np.ndarray  # of (intercept, slope)
    tau2: float  # the between-rung variance beyond the rungs' own noise
    df: int

    def slope_ci(self) -> float:
        return float(stats.t.ppf(0.975, self.df) * math.sqrt(self.cov[1, 1]))

    def predict(self, x: float) -> tuple[float, float]:
        """The effect at log10(parameters) = x and its 95% prediction interval's half-width."""
        v = np.array([1.0, x])
        half = stats.t.ppf(0.975, self.df) * math.sqrt(v @ self.cov @ v + self.tau2)
        return self.intercept + self.slope * x, float(half)


def fit_effect(x: np.ndarray, effect: np.ndarray, se: np.ndarray) -> Fit:
    """The weighted line effect = a + b x (see the module's docstring); needs three rungs or more."""
    x, y, se = (np.asarray(v, dtype=np.float64) for v in (x, effect, se))
    if len(x) < 3:
        raise ValueError(f"a fit across scale needs at least 3 rungs with an effect (given: {len(x)})")
    design = np.column_stack([np.ones_like(x), x])

    def wls(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cov = np.linalg.inv(design.T @ (weights[:, None] * design))
        return cov @ design.T @ (weights * y), cov

    w = 1.0 / se**2
    beta, cov = wls(w)
    q = float(np.sum(w * (y - design @ beta) ** 2))
    projection = np.diag(w) - (w[:, None] * design) @ cov @ (design.T * w)
    tau2 = max(0.0, (q - (len(x) - 2)) / float(np.trace(projection)))
    beta, cov = wls(1.0 / (se**2 + tau2))
    return Fit(float(beta[0]), float(beta[1]), cov, tau2, len(x) - 2)


def arms_of(frame: pd.DataFrame) -> list[str]:
    """The keys that tell the arms apart on a ladder: switches and shapes that vary, not the rung's sizes."""
    switches = [k for k in varying_switches(frame) if k not in SIZE_KEYS and is_identity_key(k)]  # not cascade.*
    return [*switches, *(k for k in SHAPE_KEYS if k in frame and frame[k].map(str).nunique() > 1)]


def metric_of(frame: pd.DataFrame) -> str:
    """test/loss where every finished run has one (the held-out split), else val/loss."""
    finished = frame[frame["status"].astype(str) == "finished"]
    return "test/loss" if "test/loss" in finished and finished["test/loss"].notna().all() else QUALITY


def gemma2_parameters() -> dict[str, int]:
    out = {}
    for name in GEMMA2:
        with torch.device("meta"):
            out[name] = count_parameters(Decoder(preset(name)), include_embedding=False)
    return out


def ladder(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(per-rung table, fit and extrapolation table, what the figure draws)."""
    from gemmalab.analysis.studies import model_of

    keys = arms_of(frame)
    shown = without_ignored(frame[keys]).astype(str)
    labels = shown.apply(lambda r: " ".join(f"{k}={v}" for k, v in r.items()), axis=1)
    if not keys or labels.nunique() != 2:
        raise ValueError(f"a ladder compares two arms (varying besides the sizes: {', '.join(keys) or 'nothing'})")
    arm = " ".join(keys)
    metric = metric_of(frame)
    frame = frame.assign(_arm=labels)
    base, other = sorted(frame["_arm"].unique())
    rows, points = [], []
    for rung, runs in frame.groupby("scale.rung", sort=True):
        agg = aggregate(runs, ["_arm"], [metric])
        t = agg.frame.set_index("_arm")
        if not {base, other} <= set(t.index):
            continue
        firsts = runs.groupby("_arm").head(1).set_index("_arm")
        params = {a: count_parameters(model_of(firsts.loc[a]), include_embedding=False) for a in (base, other)}
        d = difference(t.loc[other, f"{metric}_values"], t.loc[other, f"{metric}_seeds"],
                       t.loc[base, f"{metric}_values"], t.loc[base, f"{metric}_seeds"], agg.paired)  # fmt: skip
        shown = f"{params[base]:,}" + (f" / {params[other]:,}" if params[other] != params[base] else "")
        row = {"rung": int(rung), "d_model": int(firsts["model.d_model"].iloc[0]), "non-embedding parameters": shown,
               "steps": int(firsts.loc[base, "trainer.max_steps"])}  # fmt: skip
        for a in (base, other):
            row[a] = fmt(t.loc[a, f"{metric}_mean"], t.loc[a, f"{metric}_ci"], t.loc[a, f"{metric}_n"])
        row[f"effect ({other} - {base})"] = (f"{d.delta:+.4f} ± {d.ci:.4f} (n={d.n}, {d.test}, p={d.p:.2g})"
                                            if np.isfinite(d.ci) else "–")  # fmt: skip
        rows.append(row)
        if np.isfinite(d.ci) and d.ci > 0:
            se = d.ci / stats.t.ppf(0.975, max(d.n - 1, 1))
            points.append((math.log10(params[base]), d.delta, se, d.ci))
    per_rung = pd.DataFrame(rows)
    drawn = {"arm": arm, "base": base, "other": other, "metric": metric, "points": points, "fit": None}
    if len(points) < 3:
        missing = f"needs 3 rungs with an effect CI, has {len(points)}"
        return per_rung, pd.DataFrame([{"quantity": "fit", "value": missing}]), drawn
    x, y, se, _ = (np.array(v) for v in zip(*points, strict=True))
    fit = fit_effect(x, y, se)
    drawn["fit"] = fit
    top = float(x.max())
    slope = f"{fit.slope:+.4f} ± {fit.slope_ci():.4f} (95% CI, {len(x)} rungs, tau² {fit.tau2:.2g})"
    out = [{"quantity": "slope per decade of parameters", "value": slope}]
    for name, p in gemma2_parameters().items():
        mean, half = fit.predict(math.log10(p))
        decades = math.log10(p) - top
        out.append({"quantity": f"effect at {name} ({p / 1e9:.2f}B non-embedding)",
                    "value": f"{mean:+.4f} ± {half:.4f} (95% prediction interval; WARNING: {decades:.1f} decades "
                             f"beyond the largest rung, a straight-line extrapolation)"})  # fmt: skip
    return per_rung, pd.DataFrame(out), drawn
