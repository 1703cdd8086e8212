"""Aggregation over seeds and the paper-style tables.

A cell is mean ± 95% CI half-width (Student t over seeds) with n; diverged and failed
runs are never averaged in: they are counted in their own column. A comparison with a
declared baseline row gives the difference, the relative change and Welch's t-test
(markers: * p<0.05, ** p<0.01, *** p<0.001).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from gemmalab.runs.identity import IGNORED_BY_PATTERN
from gemmalab.switches import KEYS as SWITCHES

QUALITY = "val/loss"
STABILITY = ("stability/loss_spikes", "stability/grad_norm_var", "stability/grad_norm_cv", "attn/max_logit")


def varying_switches(frame: pd.DataFrame) -> list[str]:
    # map(str): a switch that is off (None / NaN) is a value of its own, not a missing one
    return [c for c in SWITCHES if c in frame and frame[c].map(str).nunique() > 1]


def without_ignored(frame: pd.DataFrame) -> pd.DataFrame:
    """Switch columns as a reader should see them: a setting the run's attention pattern never reads
    (the window of `full`, the ratio of `local`) shown as `–`; a switch set to null as `off`."""
    out = frame.map(off_if_null).astype(object)
    if "attn.pattern" in out:
        for pattern, keys in IGNORED_BY_PATTERN.items():
            columns = [c for c in (f"attn.{k}" for k in keys) if c in out]
            out.loc[out["attn.pattern"] == pattern, columns] = "–"
    return out


def off_if_null(value: object) -> object:
    """A switch set to null (None, or NaN once in pandas) is off: shown as `off`, never `nan` or a dash."""
    return "off" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def mean_ci(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, 95% CI half-width (t distribution), n; the half-width is nan below two values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return float(v.mean()), float(half), n


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    a, b = (np.asarray(x, dtype=np.float64) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):  # no spread: no test
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def marker(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else ""


@dataclass
class Aggregate:
    """One table row per setting of `by`: per metric the mean, CI and n over finished seeds."""

    frame: pd.DataFrame  # columns: by..., runs, finished, diverged, failed, <metric>_mean/_ci/_n
    by: list[str]
    metrics: list[str]


def aggregate(frame: pd.DataFrame, by: list[str], metrics: list[str]) -> Aggregate:
    rows = []
    for key, runs in frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]:
        key = key if isinstance(key, tuple) else (key,)
        status = runs["status"].astype(str)
        finished = runs[status == "finished"]
        row = dict(zip(by, key, strict=True))
        row.update(
            runs=len(runs),
            finished=len(finished),
            diverged=int(status.str.startswith("diverged").sum()),
            failed=int(status.str.startswith("failed").sum()),
        )
        for m in metrics:
            values = finished[m].to_numpy(dtype=np.float64) if m in finished else np.array([])
            row[f"{m}_mean"], row[f"{m}_ci"], row[f"{m}_n"] = mean_ci(values)
            row[f"{m}_values"] = values
        rows.append(row)
    return Aggregate(pd.DataFrame(rows), by, metrics)


def compare_to_baseline(agg: Aggregate, baseline: dict[str, object], metric: str) -> pd.DataFrame:
    """Per row: difference to the baseline row's mean, relative change (%), Welch p and marker."""
    table = agg.frame
    mask = np.ones(len(table), dtype=bool)
    for key, value in baseline.items():
        mask &= np.array([same_value(stored, value) for stored in table[key]], dtype=bool)
    if mask.sum() != 1:
        options = sorted(table[list(baseline)].map(str).agg(" ".join, axis=1))
        raise ValueError(f"baseline {baseline} matches {int(mask.sum())} rows (allowed: one of {options})")
    base = table[mask].iloc[0]
    out = pd.DataFrame(index=table.index)
    out["delta"] = table[f"{metric}_mean"] - base[f"{metric}_mean"]
    out["relative_%"] = 100.0 * out["delta"] / base[f"{metric}_mean"]
    out["p_welch"] = [welch_p(v, base[f"{metric}_values"]) for v in table[f"{metric}_values"]]
    out["sig"] = [marker(p) for p in out["p_welch"]]
    out.loc[mask, ["sig"]] = "(baseline)"
    return out


def same_value(stored: object, given: object) -> bool:
    """A stored switch value against one typed on the command line: numbers as numbers (3e-3 is 0.003),
    null / off for a switch that is off, anything else as text."""
    if isinstance(given, str) and given.lower() in ("null", "none", "off"):
        return off_if_null(stored) == "off"
    if isinstance(stored, (int, float, np.number)) and not isinstance(stored, bool):
        try:
            return math.isclose(float(stored), float(given), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return str(stored) == str(given)


HIGHER_IS_BETTER = ("val/accuracy",)


def best_row(agg: Aggregate, metric: str) -> int | None:
    """The row whose mean is best (lowest; highest for accuracies) when Welch's t-test puts it ahead of
    every other row at p < 0.05; None when no row is significantly best."""
    t = agg.frame
    means = t[f"{metric}_mean"].to_numpy(dtype=np.float64)
    if len(t) < 2 or not np.isfinite(means).any():
        return None
    sign = -1.0 if metric.startswith(HIGHER_IS_BETTER) else 1.0
    best = int(np.nanargmin(sign * means))
    others = [welch_p(t[f"{metric}_values"].iloc[best], v) for i, v in enumerate(t[f"{metric}_values"]) if i != best]
    return best if all(np.isfinite(p) and p < 0.05 for p in others) else None


# A stability figure every finished run has as NaN: the run was shorter than its rule's window.
NOT_EVALUABLE = "not evaluable"


def fmt(mean: float, ci: float, n: int, digits: int = 3) -> str:
    if n == 0 or not np.isfinite(mean):
        return "–"
    if not np.isfinite(ci):
        return f"{mean:.{digits}f} (n={n})"
    return f"{mean:.{digits}f} ± {ci:.{digits}f} (n={n})"


def display(agg: Aggregate, baseline: dict[str, object] | None = None, digits: int = 3) -> pd.DataFrame:
    """The human table: switches, run counts, mean ± CI per metric, and the comparison with the baseline."""
    t = agg.frame
    out = without_ignored(t[agg.by]) if agg.by else pd.DataFrame(index=t.index)
    out["runs"] = [
        f"{r.runs}"
        + (f" ({r.diverged} diverged)" if r.diverged else "")
        + (f" ({r.failed} failed)" if r.failed else "")
        for r in t.itertuples()
    ]
    for m in agg.metrics:
        out[m] = [
            NOT_EVALUABLE if n == 0 and done and m.startswith("stability/") else fmt(mean, ci, n, digits)
            for mean, ci, n, done in zip(t[f"{m}_mean"], t[f"{m}_ci"], t[f"{m}_n"], t["finished"], strict=True)
        ]
    out.attrs["best"] = {(i, m) for m in agg.metrics if (i := best_row(agg, m)) is not None}
    if baseline:
        cmp = compare_to_baseline(agg, baseline, QUALITY if QUALITY in agg.metrics else agg.metrics[0])
        out["Δ vs baseline"] = [
            "" if s == "(baseline)" else f"{d:+.{digits}f} ({r:+.1f}%) {s}".strip()
            for d, r, s in zip(cmp["delta"], cmp["relative_%"], cmp["sig"], strict=True)
        ]
    return out


def to_markdown(table: pd.DataFrame) -> str:
    cells = [[str(c) for c in table.columns]] + [[cell_text(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def cell_text(value: object) -> str:
    if isinstance(value, float):
        return "–" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)
