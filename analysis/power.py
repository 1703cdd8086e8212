"""How large a difference a table's seeds could detect, for the test the table uses: paired over seeds where
the runs pair up (analysis/tables.py pairs_up), Welch's otherwise; the power from the noncentral t.

    paired  T ~ nct(df = n - 1,  ncp = d / (s_diff / sqrt(n)))           s_diff: sd of the per-seed differences
    Welch   T ~ nct(df = Welch-Satterthwaite,  ncp = d / sqrt(s1²/n1 + s2²/n2))
    power(d) = P(|T| > t_crit(df)), two-sided, alpha 0.05; the minimum detectable difference is the d where
    power reaches 80%.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .tables import paired_values, pairs_up

ALPHA, POWER = 0.05, 0.80


def t_power(ncp: float, df: float, alpha: float = ALPHA) -> float:
    critical = stats.t.ppf(1 - alpha / 2, df)
    lower = stats.nct.cdf(-critical, df, ncp)  # ~0 for a positive difference; scipy gives nan when it underflows
    return float(stats.nct.sf(critical, df, ncp) + np.nan_to_num(lower, nan=0.0))


def power(difference: float, sd: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    """The pooled (Student) two-sample t-test's power."""
    return t_power(difference / (sd * math.sqrt(1 / n1 + 1 / n2)), n1 + n2 - 2, alpha)


def welch_power(difference: float, sd1: float, sd2: float, n1: int, n2: int) -> float:
    v1, v2 = sd1**2 / n1, sd2**2 / n2
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    return t_power(difference / math.sqrt(v1 + v2), df)


def paired_power(difference: float, sd_diff: float, n: int) -> float:
    return t_power(difference / (sd_diff / math.sqrt(n)), n - 1)


def detectable(power_at) -> float:
    """The noncentrality at which power_at reaches 80% (below 60 for any df >= 1)."""
    return float(optimize.brentq(lambda k: power_at(k) - POWER, 1e-9, 60.0))


def min_detectable_difference(sd: float, n1: int, n2: int, test: str = "Welch", sd2: float | None = None) -> float:
    """The smallest difference of means the test finds with 80% power at alpha 0.05. paired: `sd` is that of
    the per-seed differences and n1 the number of pairs; Welch: the two rows' sds (sd2 defaults to sd)."""
    sd2 = sd if sd2 is None else sd2
    if test == "paired":
        if n1 < 2 or not sd > 0:
            return math.nan
        return sd * detectable(lambda d: paired_power(d, 1.0, n1))  # in units of sd
    if n1 < 2 or n2 < 2 or not (sd > 0 or sd2 > 0):
        return math.nan
    scale = math.sqrt(sd**2 / n1 + sd2**2 / n2)
    return scale * detectable(lambda k: welch_power(k * scale, sd, sd2, n1, n2))


def seeds_needed(difference: float, sd: float, test: str = "Welch", most: int = 10_000) -> int | None:
    """Seeds per setting for 80% power to detect `difference` (None beyond `most`); paired: `sd` of the
    per-seed differences."""
    if not sd > 0:
        return 2

    def enough(n: int) -> bool:
        return (paired_power(difference, sd, n) if test == "paired" else welch_power(difference, sd, sd, n, n)) >= POWER

    n = 2
    while not enough(n):
        n = n * 2 if n < 64 else n + max(1, n // 8)
        if n > most:
            return None
    return next(k for k in range(max(2, n // 2), n + 1) if enough(k))  # the first n lies in (n/2, n]


def pooled_sd(frame: pd.DataFrame, by: list[str], metric: str) -> tuple[float, int]:
    """Within-setting standard deviation pooled over the settings of `by` (finished runs), and the
    smallest number of seeds behind one setting."""
    groups = [g[metric].to_numpy() for g in settings(frame, by, metric)]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return math.nan, 0
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof), min(len(g) for g in groups)


def settings(frame: pd.DataFrame, by: list[str], metric: str) -> list[pd.DataFrame]:
    """Per setting of `by`, its finished runs with a finite value of `metric` (seed, value)."""
    finished = frame[frame["status"].astype(str) == "finished"]
    if metric not in finished or not by:
        return []
    kept = finished[np.isfinite(pd.to_numeric(finished[metric], errors="coerce").astype(float))]
    return [g[["seed", metric]].astype({metric: float}) for _, g in kept.groupby(by, dropna=False, sort=True)]


def detectable_by_test(frame: pd.DataFrame, by: list[str], metric: str) -> tuple[float, float, int, str]:
    """(minimum detectable difference, the sd it rests on, seeds, test) for comparing each setting with the
    first: paired, with the per-seed differences' sd pooled over the comparisons; Welch, the largest over
    the comparisons, each with its two settings' own sds."""
    groups = settings(frame, by, metric)
    if len(groups) < 2:
        return math.nan, math.nan, 0, "Welch"
    first = groups[0]
    if "seed" in frame and pairs_up(frame):
        diffs = [np.subtract(*paired_values(g[metric].to_numpy(), g["seed"].to_numpy(), first[metric].to_numpy(),
                                            first["seed"].to_numpy())) for g in groups[1:]]  # fmt: skip
        if diffs and all(len(d) >= 2 for d in diffs):
            dof = sum(len(d) - 1 for d in diffs)
            sd = math.sqrt(sum(((d - d.mean()) ** 2).sum() for d in diffs) / dof)
            n = min(len(d) for d in diffs)
            return min_detectable_difference(sd, n, n, "paired"), sd, n, "paired"
    worst, n = math.nan, min(len(g) for g in groups)
    for g in groups[1:]:
        mdd = min_detectable_difference(float(g[metric].std(ddof=1)), len(g), len(first), "Welch",
                                        float(first[metric].std(ddof=1)))  # fmt: skip
        worst = mdd if not np.isfinite(worst) or mdd > worst else worst
    return worst, pooled_sd(frame, by, metric)[0], n, "Welch"


def power_note(frame: pd.DataFrame, by: list[str], metrics: list[str], quality: str) -> str:
    """One paragraph for under a comparison table: per metric, the minimum detectable difference of the test
    the table uses at its seeds and spread, and the seeds a 1% change of the quality metric would need."""
    parts, used = [], set()
    n_seeds = 0
    for metric in metrics:
        mdd, sd, n, test = detectable_by_test(frame, by, metric)
        if n < 2:
            continue
        used.add(test)
        n_seeds = n_seeds or n
        text = f"{metric} ±{mdd:.3g}" if np.isfinite(mdd) else f"{metric}: no spread"
        if metric == quality and np.isfinite(mdd):
            mean = float(frame[metric].dropna().mean())
            needed = seeds_needed(0.01 * abs(mean), sd, test)
            text += f" ({100 * mdd / abs(mean):.1f}% of its mean; a 1% change needs {needed or '> 10,000'} seeds)"
        parts.append(text)
    if not parts:
        return ""
    tests = " and ".join(sorted(f"{'a paired t-test over seeds' if t == 'paired' else 'Welch t-test'}" for t in used))
    return (
        f"Power: with {n_seeds} seeds per setting and the spread seen within settings, {tests} (two-sided, "
        f"alpha 0.05, each setting against the first) detects with 80% power differences of at least: "
        + "; ".join(parts) + "."
    )  # fmt: skip
