"""Aggregation over seeds and the paper-style tables.

A cell is mean ± 95% CI half-width (Student t over seeds) with n; diverged and failed
runs are never averaged in: they are counted in their own column. A comparison with a
declared baseline row gives the difference, the relative change and a t-test: paired over the
seeds both rows finished where the runs pair up (model.init=paired: the same seed gives the
same batches and, where shapes agree, the same initial weights), Welch's where they do not;
with more than one comparison in a table the p-values are Holm-adjusted
(markers: * p<0.05, ** p<0.01, *** p<0.001).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from gemmalab.runs.identity import IGNORED_BY
from gemmalab.switches import KEYS as SWITCHES

QUALITY = "val/loss"
STABILITY = ("stability/loss_spikes", "stability/grad_norm_var", "stability/grad_norm_cv", "attn/max_logit")


def varying_switches(frame: pd.DataFrame) -> list[str]:
    # map(str): a switch that is off (None / NaN) is a value of its own, not a missing one
    return [c for c in SWITCHES if c in frame and frame[c].map(str).nunique() > 1]


def without_ignored(frame: pd.DataFrame) -> pd.DataFrame:
    """Switch columns as a reader should see them: a setting the run's attention pattern or norm placement
    never reads (the window of `full`, the ratio of `local`, pre's post-norm gain) shown as `–`; a switch set
    to null as `off`."""
    out = frame.map(off_if_null).astype(object)
    for switch, (section, ignored) in IGNORED_BY.items():
        if switch in out:
            for value, keys in ignored.items():
                columns = [c for c in (f"{section}.{k}" for k in keys) if c in out]
                out.loc[out[switch] == value, columns] = "–"
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


@dataclass
class Difference:
    """a - b: the difference of means, its 95% CI half-width, n (pairs, or the smaller row), p, the test and its
    degrees of freedom."""

    delta: float
    ci: float
    n: int
    p: float
    test: str  # paired | Welch
    df: float = math.nan


def paired_values(a: np.ndarray, a_seeds: np.ndarray, b: np.ndarray, b_seeds: np.ndarray) -> tuple[np.ndarray, ...]:
    """The two rows' finite values at the seeds both have, in seed order."""
    x = {s: v for s, v in zip(a_seeds, a, strict=True) if np.isfinite(v)}
    y = {s: v for s, v in zip(b_seeds, b, strict=True) if np.isfinite(v)}
    common = sorted(set(x) & set(y))
    return np.array([x[s] for s in common]), np.array([y[s] for s in common])


def difference(a: np.ndarray, a_seeds: np.ndarray, b: np.ndarray, b_seeds: np.ndarray, paired: bool) -> Difference:
    """a - b with the test that matches the design: paired over common seeds when the runs pair up (and at
    least two seeds are common), else Welch's."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x, y = paired_values(a, a_seeds, b, b_seeds)
    if paired and len(x) >= 2:
        d = x - y
        se = d.std(ddof=1) / math.sqrt(len(d))
        p = float(stats.ttest_rel(x, y).pvalue) if d.std() > 0 else math.nan
        return Difference(float(d.mean()), float(stats.t.ppf(0.975, len(d) - 1) * se), len(d), p, "paired", len(d) - 1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return Difference(math.nan, math.nan, 0, math.nan, "Welch")
    delta = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Difference(delta, math.nan, min(len(a), len(b)), math.nan, "Welch")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else len(a) + len(b) - 2
    return Difference(delta, float(stats.t.ppf(0.975, df) * math.sqrt(va + vb)), min(len(a), len(b)),
                      welch_p(a, b), "Welch", df)  # fmt: skip


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error over the finite p-values); nan stays nan."""
    finite = sorted((v, i) for i, v in enumerate(p) if np.isfinite(v))
    adjusted, running = list(p), 0.0
    for rank, (v, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * v))
        adjusted[i] = running
    return adjusted


def marker(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else ""


@dataclass
class Aggregate:
    """One table row per setting of `by`: per metric the mean, CI and n over finished seeds."""

    frame: pd.DataFrame  # columns: by..., runs, finished, diverged, failed, <metric>_mean/_ci/_n/_values/_seeds
    by: list[str]
    metrics: list[str]
    paired: bool = False  # the runs pair up by seed (model.init=paired throughout)


def pairs_up(frame: pd.DataFrame) -> bool:
    """Whether runs of one seed pair up across settings: model.init=paired for every run (runs from before
    that setting existed drew their weights in module order: `shared`)."""
    return "model.init" in frame and bool((frame["model.init"].astype(str) == "paired").all())


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
            row[f"{m}_seeds"] = finished["seed"].to_numpy() if m in finished else np.array([])
        rows.append(row)
    return Aggregate(pd.DataFrame(rows), by, metrics, pairs_up(frame))


def compare_to_baseline(agg: Aggregate, baseline: dict[str, object], metric: str) -> pd.DataFrame:
    """Per row: difference to its baseline row's mean (with its 95% CI), relative change (%), the test used
    (paired or Welch), n, p, p Holm-adjusted over the table's comparisons, and the marker of the adjusted p.
    A baseline that matches several rows (it names some of the switches a crossed design varies) is read within
    each setting of the others (`--baseline norm=pre` on attn.pattern x norm: dual vs pre under alt, and
    under full)."""
    table = agg.frame.reset_index(drop=True)
    is_base = np.ones(len(table), dtype=bool)
    for key, value in baseline.items():
        is_base &= np.array([same_value(stored, value) for stored in table[key]], dtype=bool)
    others = [k for k in agg.by if k not in baseline] if is_base.sum() > 1 else []
    strata = table[others].map(str).agg(" ".join, axis=1) if others else pd.Series("", index=table.index)
    base_of = np.zeros(len(table), dtype=int)
    for rows in table.groupby(strata, sort=False).groups.values():
        hits = [i for i in rows if is_base[i]]
        if len(hits) != 1:
            setting = table.loc[rows[0], others].map(off_if_null).to_dict()
            where = f" where {', '.join(f'{k}={v}' for k, v in setting.items())}" if others else ""
            options = sorted(set(table.loc[rows, list(baseline)].map(str).agg(" ".join, axis=1)))
            raise ValueError(f"baseline {baseline} matches {len(hits)} rows{where} (allowed: one of {options})")
        base_of[list(rows)] = hits[0]
    values, seeds = table[f"{metric}_values"], table[f"{metric}_seeds"]
    diffs = [difference(values[i], seeds[i], values[b], seeds[b], agg.paired) for i, b in enumerate(base_of)]
    base_means = table[f"{metric}_mean"].to_numpy()[base_of]
    out = pd.DataFrame(index=agg.frame.index)
    out["delta"] = table[f"{metric}_mean"].to_numpy() - base_means
    out["delta_ci"] = [d.ci for d in diffs]
    out["relative_%"] = 100.0 * out["delta"] / base_means
    out["test"] = [d.test for d in diffs]
    out["n"] = [d.n for d in diffs]
    out["p"] = [math.nan if m else d.p for d, m in zip(diffs, is_base, strict=True)]
    out["p_holm"] = holm(list(out["p"]))
    out["sig"] = [marker(p) for p in out["p_holm"]]
    out.loc[is_base, ["sig"]] = "(baseline)"
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
    """The row whose mean is best (lowest; highest for accuracies) when the table's test (paired or Welch,
    Holm-adjusted) puts it ahead of every other row at p < 0.05; None when no row is significantly best."""
    t = agg.frame
    means = t[f"{metric}_mean"].to_numpy(dtype=np.float64)
    if len(t) < 2 or not np.isfinite(means).any():
        return None
    sign = -1.0 if metric.startswith(HIGHER_IS_BETTER) else 1.0
    best = int(np.nanargmin(sign * means))
    row = t.iloc[best]
    others = holm([difference(row[f"{metric}_values"], row[f"{metric}_seeds"], r[f"{metric}_values"],
                              r[f"{metric}_seeds"], agg.paired).p
                   for i, r in t.iterrows() if i != t.index[best]])  # fmt: skip
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
            "" if s == "(baseline)" else
            f"{d:+.{digits}f} (n={n}: {'one seed supports' if n == 1 else 'no finished seed gives'} no comparison)"
            if n < 2 else f"{d:+.{digits}f} ± {c:.{digits}f} ({r:+.1f}%, {t}, n={n}) {s}".strip()
            for d, c, r, t, n, s in zip(cmp["delta"], cmp["delta_ci"], cmp["relative_%"], cmp["test"], cmp["n"],
                                        cmp["sig"], strict=True)
        ]  # fmt: skip
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
