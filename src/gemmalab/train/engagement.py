"""Per-run engagement figures: did the caps, the window and the teacher change anything?

Read from the diagnostics logged on the stats steps (model/diagnostics.py). A figure "of the
trained model" is the mean over the stats steps in the second half of training (at
initialisation attention is near-uniform, which would flatter the window and hide growth of the
logits); a peak is the largest value at any stats step and layer.

    softcap/attn/beyond_half       share of visible attention scores with |s| > cap / 2, all layers
    softcap/attn/beyond_half_peak  the same at its worst layer and step
    softcap/attn/max_ratio         largest |s| / cap, any layer and step
    softcap/final/...              the same for the final logits
    window/mass_beyond             attention probability of the global layers on keys further back
                                   than attn.window: what local layers there would cut
    window/local_beyond_half       attention probability of the local layers on keys at offset >= W/2
    window/local_beyond_quarter    ... >= W/4: what shrinking the window at inference cuts (Table 10)
    distill/gap_init, gap_final    student val/loss - teacher val/loss at step 0 and at the end
    distill/gap_closed             1 - gap_final / gap_init
"""

from __future__ import annotations

import math

import numpy as np

from .stability import keys_with_prefix, series

ENGAGED = {  # summary figure and the level below which a switch is reported as not engaged
    "softcap/attn/beyond_half": 0.01,
    "softcap/final/beyond_half": 0.01,
    "window/mass_beyond": 0.05,
    "window/local_beyond_half": 0.05,
    "window/local_beyond_quarter": 0.05,
}
# distillation: a teacher engages when the student trained from scratch is this much worse (val/loss, nats)
TEACHER_MARGIN = 0.01
WINDOW_MASSES = ("window/mass_beyond", "window/local_beyond_half", "window/local_beyond_quarter")


def _trained_and_peak(metrics: dict[int, dict[str, float]], prefix: str) -> tuple[float, float]:
    """(mean over the second half's stats steps and the layers, max over every step and layer)."""
    keys = keys_with_prefix(metrics, prefix)
    if not keys:
        return float("nan"), float("nan")
    last = max(metrics)
    steps, values = (np.concatenate(parts) for parts in zip(*(series(metrics, k) for k in keys), strict=True))
    late = values[steps >= last / 2]
    return float(np.mean(late)) if len(late) else float("nan"), float(np.max(values))


def initial_val_loss(metrics: dict[int, dict[str, float]]) -> float | None:
    """The validation loss at initialisation (runs logged before it had its own record: step 0's val/loss)."""
    start = metrics.get(0, {})
    return start.get("val/loss_init", start.get("val/loss"))


def trained_val_loss(metrics: dict[int, dict[str, float]]) -> tuple[float | None, int | None]:
    """(val/loss, step) of the last finite validation after training began; (None, None) when the run
    stopped (diverged, failed) before any, so that the loss at initialisation never reads as a result."""
    steps = [s for s, m in metrics.items() if s > 0 and math.isfinite(m.get("val/loss", math.nan))]
    return (metrics[max(steps)]["val/loss"], max(steps)) if steps else (None, None)


def engagement_summary(metrics: dict[int, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for cap in ("attn", "final"):
        trained, peak = _trained_and_peak(metrics, f"softcap/{cap}/beyond_half")
        if np.isfinite(trained):
            out[f"softcap/{cap}/beyond_half"], out[f"softcap/{cap}/beyond_half_peak"] = trained, peak
            out[f"softcap/{cap}/max_ratio"] = _trained_and_peak(metrics, f"softcap/{cap}/max_ratio")[1]
    for figure in WINDOW_MASSES:
        mass, _ = _trained_and_peak(metrics, f"{figure}/layer_")
        if np.isfinite(mass):
            out[figure] = mass
    start, initial = metrics.get(0, {}), initial_val_loss(metrics)
    if "teacher/val_loss" in start and initial is not None:
        teacher = start["teacher/val_loss"]
        final = series(metrics, "val/loss")[1][-1]
        out["distill/gap_init"] = initial - teacher
        out["distill/gap_final"] = float(final) - teacher
        out["distill/gap_closed"] = 1.0 - out["distill/gap_final"] / out["distill/gap_init"]
    return out
