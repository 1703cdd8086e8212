"""How large a difference a table's seeds could detect: the two-sample t-test's power from the
noncentral t distribution, with the within-setting spread pooled over the table's rows.

power(d) = P(|T| > t_crit) with T ~ noncentral t(df = n1 + n2 - 2, ncp = d / (s sqrt(1/n1 + 1/n2))),
two-sided, alpha 0.05; the minimum detectable difference is the d where power reaches 80%.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, stats

ALPHA, POWER = 0.05, 0.80


def power(difference: float, sd: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    df = n1 + n2 - 2
    ncp = difference / (sd * math.sqrt(1 / n1 + 1 / n2))
    critical = stats.t.ppf(1 - alpha / 2, df)
    lower = stats.nct.cdf(-critical, df, ncp)  # ~0 for a positive difference; scipy gives nan when it underflows
    return float(stats.nct.sf(critical, df, ncp) + np.nan_to_num(lower, nan=0.0))


def min_detectable_difference(sd: float, n1: int, n2: int) -> float:
    """The smallest difference of means a two-sided t-test finds with 80% power at alpha 0.05."""
    if n1 < 2 or n2 < 2 or not sd > 0:
        return math.nan
    scale = sd * math.sqrt(1 / n1 + 1 / n2)  # power passes 99% by a noncentrality of 12 for any df >= 2
    return float(optimize.brentq(lambda d: power(d, sd, n1, n2) - POWER, 1e-9 * scale, 12 * scale))


def seeds_needed(difference: float, sd: float, most: int = 10_000) -> int | None:
    """Seeds per setting for 80% power to detect `difference` (None beyond `most`)."""
    if not sd > 0:
        return 2
    n = 2
    while power(difference, sd, n, n) < POWER:
        n = n * 2 if n < 64 else n + max(1, n // 8)
        if n > most:
            return None
    low = max(2, n // 2)  # the first n that reaches the power lies in (n/2, n]
    return next(k for k in range(low, n + 1) if power(difference, sd, k, k) >= POWER)


def pooled_sd(frame: pd.DataFrame, by: list[str], metric: str) -> tuple[float, int]:
    """Within-setting standard deviation pooled over the settings of `by` (finished runs), and the
    smallest number of seeds behind one setting."""
    finished = frame[frame["status"].astype(str) == "finished"]
    groups = [g[metric].dropna().to_numpy(dtype=float) for _, g in finished.groupby(by, dropna=False)] if by else []
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return math.nan, 0
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof), min(len(g) for g in groups)


def power_note(frame: pd.DataFrame, by: list[str], metrics: list[str], quality: str) -> str:
    """One paragraph for under a comparison table: per metric, the minimum detectable difference at
    its seeds and spread, and the seeds a 1% change of the quality metric would need."""
    parts = []
    for metric in metrics:
        if metric not in frame:
            continue
        sd, n = pooled_sd(frame, by, metric)
        if not np.isfinite(sd):
            continue
        mdd = min_detectable_difference(sd, n, n)
        text = f"{metric} ±{mdd:.3g}" if np.isfinite(mdd) else f"{metric}: no spread"
        if metric == quality and np.isfinite(mdd):
            mean = float(frame[metric].dropna().mean())
            needed = seeds_needed(0.01 * abs(mean), sd)
            text += f" ({100 * mdd / abs(mean):.1f}% of its mean; a 1% change needs {needed or '> 10,000'} seeds)"
        parts.append(text)
    if not parts:
        return ""
    n = pooled_sd(frame, by, metrics[0])[1] if metrics else 0
    return (
        f"Power: with {n} seeds per setting and the spread seen within settings (pooled), a two-sided t-test "
        f"(alpha 0.05) detects with 80% power differences of at least: " + "; ".join(parts) + "."
    )
