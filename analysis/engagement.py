"""Did the switches bite? The engagement of the caps, the window and the teacher, per setting and
as one line per switch, with a plain warning when a switch a study varies was never engaged
(run figures: gemmalab/train/engagement.py; thresholds: ENGAGED there)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gemmalab.model.diagnostics import REFERENCE_CAPS
from gemmalab.train.engagement import ENGAGED

from .tables import aggregate, fmt, without_ignored


@dataclass(frozen=True)
class Engagement:
    name: str
    switches: tuple[str, ...]  # a study varying one of these is about this idea
    share: str  # the run figure that says how much it bit (a fraction)
    what: str  # what share measures, for the line and the warning
    peak: str | None = None  # a figure shown beside it
    peak_what: str = ""


ENGAGEMENTS = (
    Engagement(
        f"attention cap (runs with it off measured against {REFERENCE_CAPS.attn:g})", ("softcap.attn",),
        "softcap/attn/beyond_half", "of attention scores beyond cap/2", "softcap/attn/max_ratio", "max abs(s)/cap",
    ),
    Engagement(
        f"final-logit cap (runs with it off measured against {REFERENCE_CAPS.final:g})", ("softcap.final",),
        "softcap/final/beyond_half", "of output logits beyond cap/2", "softcap/final/max_ratio", "max abs(z)/cap",
    ),
    Engagement(
        "window", ("attn.pattern", "attn.window", "attn.local_global_ratio", "attn.first"),
        "window/mass_beyond", "of the global layers' attention on keys beyond the window",
    ),
)  # fmt: skip
COLUMNS = {  # engagement table: run figure -> header
    "softcap/attn/beyond_half": "attn scores > cap/2 (%)",
    "softcap/attn/max_ratio": "max abs(s)/cap",
    "softcap/final/beyond_half": "logits > cap/2 (%)",
    "softcap/final/max_ratio": "max abs(z)/cap",
    "window/mass_beyond": "global attn beyond W (%)",
    "distill/gap_init": "student - teacher, start",
    "distill/gap_final": "student - teacher, end",
}
PERCENT = set(ENGAGED)  # the shares, shown in %


def engagement_table(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per setting: each engagement figure, mean ± 95% CI over finished seeds (shares in %)."""
    metrics = [m for m in COLUMNS if m in frame and frame[m].notna().any()]
    scaled = frame.assign(**{m: frame[m] * 100 for m in metrics if m in PERCENT})
    agg = aggregate(scaled, by, metrics).frame
    out = without_ignored(agg[by]) if by else pd.DataFrame(index=agg.index)
    for m in metrics:
        cells = zip(agg[f"{m}_mean"], agg[f"{m}_ci"], agg[f"{m}_n"], strict=True)
        out[COLUMNS[m]] = [fmt(mean, ci, n, 2) for mean, ci, n in cells]
    return out


def engagement_lines(frame: pd.DataFrame, varying: list[str]) -> tuple[list[str], list[str]]:
    """(one "engaged" line per switch the runs measured, warnings for the switches the study varies
    that no run engaged beyond the ENGAGED threshold)."""
    lines, warnings = [], []
    for e in ENGAGEMENTS:
        if e.share not in frame or not frame[e.share].notna().any():
            continue
        share = frame[e.share].dropna()
        line = f"{e.name}: {100 * share.mean():.2f}% {e.what} (mean over runs; at most {100 * share.max():.2f}%)"
        if e.peak and e.peak in frame and frame[e.peak].notna().any():
            line += f", {e.peak_what} {frame[e.peak].max():.2f}"
        lines.append(line)
        threshold = ENGAGED[e.share]
        if share.max() < threshold and any(s in varying for s in e.switches):
            warnings.append(
                f"Warning: in no run did the {e.name.split(' (')[0]} reach {100 * threshold:g}% {e.what} "
                f"(at most {100 * share.max():.2f}%): this study cannot show its effect at this scale."
            )
    if "distill/gap_final" in frame and frame["distill/gap_final"].notna().any():
        start, end = frame["distill/gap_init"].dropna(), frame["distill/gap_final"].dropna()
        lines.append(
            f"distillation: student val/loss - teacher val/loss {start.mean():+.3f} at step 0, {end.mean():+.3f} "
            f"at the end (mean over distilled runs; {100 * np.mean(1 - end / start):.0f}% of the gap closed)"
        )
        if end.max() <= 0:
            warnings.append(
                "Warning: every distilled student ended at or below its teacher's validation loss: the teacher "
                "had nothing left to teach at this scale."
            )
    return lines, warnings
