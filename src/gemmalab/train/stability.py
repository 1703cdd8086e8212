"""Training-stability measures over logged series (loss, gradient norm), with named definitions.

Spike rules (reference-stability.md), each applied to a series x[0..n):
  absolute   x[t] > median(x[t-k..t-1]) + threshold       (the brief's "spikes > 0.5"; k=20, 0.5 nats)
  olmo_core  x[t] > mean + 6 * std of x[t-128..t-1]       (one-sided, population std)
  olmo2      |x[t] - mean| >= 7 * std of x[t-1000..t-1]   (OLMo 2's spike score)
A step is evaluable once its rule has a full window of history; a run shorter than the
window has no evaluable step, and its spike figures are NaN ("not evaluable"), never 0.
Consecutive spiking steps are one event; the per-series spike score is the fraction of
evaluable steps that spike.

OLMo-core's own score (its StabilityMonitorCallback) is also recorded, exactly as it counts:
a step counts when the loss or the gradient norm spikes (olmo_core rule; never on a history
with std < 1e-10), divided by all steps seen, reported once the run has a window of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemmalab.errors import ConfigError, is_number, refuse, require_int


@dataclass(frozen=True)
class SpikeRule:
    name: str
    window: int
    kind: str  # "median_jump" | "sigma_above" | "sigma_away"
    threshold: float  # nats for median_jump, sigmas otherwise

    def describe(self) -> str:
        if self.kind == "median_jump":
            return f"{self.name}: > median of previous {self.window} + {self.threshold:g}"
        side = "above" if self.kind == "sigma_above" else "away from"
        return f"{self.name}: >= {self.threshold:g} std {side} the mean of previous {self.window}"


SPIKE_RULES = {
    "absolute": SpikeRule("absolute", window=20, kind="median_jump", threshold=0.5),
    "olmo_core": SpikeRule("olmo_core", window=128, kind="sigma_above", threshold=6.0),
    "olmo2": SpikeRule("olmo2", window=1000, kind="sigma_away", threshold=7.0),
}


FLAT_STD = 1e-10  # OLMo-core's guard against a zero-variance history


def spike_rule(name: str, window: int | None = None, threshold: float | None = None) -> SpikeRule:
    if name not in SPIKE_RULES:
        raise ConfigError(f"stability.spike_rule={name!r} is not allowed (allowed: {', '.join(SPIKE_RULES)})")
    base = SPIKE_RULES[name]
    return SpikeRule(name, window or base.window, base.kind, base.threshold if threshold is None else threshold)


def spike_mask(values: np.ndarray, rule: SpikeRule) -> tuple[np.ndarray, np.ndarray]:
    """(spiking, evaluable), boolean arrays over the series."""
    x = np.asarray(values, dtype=np.float64)
    spiking = np.zeros(len(x), dtype=bool)
    evaluable = np.zeros(len(x), dtype=bool)
    for t in range(rule.window, len(x)):
        history = x[t - rule.window : t]
        if not np.isfinite(history).all() or not np.isfinite(x[t]):
            continue
        evaluable[t] = True
        if rule.kind == "median_jump":
            spiking[t] = x[t] > np.median(history) + rule.threshold
        elif rule.kind == "sigma_above":  # OLMo-core: a (near) flat history makes no spike
            std = history.std()
            spiking[t] = std >= FLAT_STD and x[t] - history.mean() > rule.threshold * std
        else:  # a flat history (std 0) makes only a real change a spike
            deviation = abs(x[t] - history.mean())
            spiking[t] = deviation > 0 and deviation >= rule.threshold * history.std()
    return spiking, evaluable


def count_events(spiking: np.ndarray) -> int:
    """Runs of consecutive spiking steps, each counted once."""
    s = np.asarray(spiking, dtype=bool)
    return int(s[0]) + int(np.sum(s[1:] & ~s[:-1])) if len(s) else 0


def spike_stats(values: np.ndarray, rule: SpikeRule) -> dict[str, float]:
    spiking, evaluable = spike_mask(values, rule)
    n = int(evaluable.sum())
    return {
        "events": count_events(spiking) if n else float("nan"),
        "score": float(spiking.sum() / n) if n else float("nan"),
        "evaluable_steps": n,
    }


def olmo_core_spike_score(loss: np.ndarray, grad_norm: np.ndarray, rule: SpikeRule) -> float:
    """OLMo-core's SpikeScore (total): steps where the loss or the gradient norm spikes, over all
    steps; NaN before the run has `rule.window` steps (OLMo-core reports nothing then)."""
    n = max(len(loss), len(grad_norm))
    if n < rule.window:
        return float("nan")
    spiking = np.zeros(n, dtype=bool)
    for values in (loss, grad_norm):
        spiking[: len(values)] |= spike_mask(values, rule)[0]
    return float(spiking.sum() / n)


def grad_norm_stats(grad_norms: np.ndarray, start: int) -> dict[str, float]:
    """Variance, coefficient of variation and maximum of the global gradient norm from step `start` on."""
    g = np.asarray(grad_norms, dtype=np.float64)[start:]
    g = g[np.isfinite(g)]
    if len(g) < 2:
        return {"var": float("nan"), "cv": float("nan"), "max": float("nan"), "steps": len(g)}
    return {"var": float(g.var()), "cv": float(g.std() / g.mean()), "max": float(g.max()), "steps": len(g)}


@dataclass
class StabilityConfig:
    spike_rule: str = "absolute"  # the rule behind stability/loss_spikes; every rule is recorded too
    spike_window: int | None = None  # None: the rule's own window
    spike_threshold: float | None = None  # None: the rule's own threshold
    grad_norm_from: int | None = None  # first step of the grad-norm statistics; None: after warmup
    # A run diverges on a non-finite loss or gradient norm, or when its training loss stays above
    # diverge_factor * ln(vocab) (the loss of a uniform guess) for diverge_patience steps in a row.
    diverge_factor: float = 2.0
    diverge_patience: int = 10

    def __post_init__(self) -> None:
        spike_rule(self.spike_rule, self.spike_window, self.spike_threshold)
        if not is_number(self.diverge_factor) or self.diverge_factor <= 1:
            refuse("stability.diverge_factor", self.diverge_factor, "a number > 1")
        require_int("stability.diverge_patience", self.diverge_patience)


def series(metrics: dict[int, dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric from a run store's {step: {metric: value}}."""
    steps = np.array(sorted(s for s, m in metrics.items() if key in m), dtype=np.int64)
    return steps, np.array([metrics[s][key] for s in steps], dtype=np.float64)


def stability_summary(
    metrics: dict[int, dict[str, float]], cfg: StabilityConfig, warmup_steps: int, vocab_size: int
) -> dict[str, float | int | str]:
    """Every per-run stability figure, from the logged metrics alone (so diverged runs have them too).
    Besides the spikes: the peak training loss and the blow-up steps, those with a loss above
    diverge_factor * ln(vocab) (worse than twice a uniform guess): what the divergence rule watches, counted
    even when the run recovers; the peak |log Z| of the output softmax over the stats steps (output-logit
    divergence) and the largest attention logit."""
    chosen = spike_rule(cfg.spike_rule, cfg.spike_window, cfg.spike_threshold)
    _, loss = series(metrics, "train/loss")
    finite = loss[np.isfinite(loss)]
    steps, grad = series(metrics, "train/grad_norm")
    start = warmup_steps if cfg.grad_norm_from is None else cfg.grad_norm_from
    out: dict[str, float | int | str] = {
        "stability/spike_rule": chosen.describe(),
        "stability/loss_peak": float(finite.max()) if len(finite) else float("nan"),
        "stability/blowup_steps": int(np.sum(finite > cfg.diverge_factor * np.log(vocab_size))),
    }
    for name in SPIKE_RULES:
        rule = chosen if name == chosen.name else SPIKE_RULES[name]
        for label, values in (("loss_spikes", loss), ("grad_norm_spikes", grad)):
            stats = spike_stats(values, rule)
            out[f"stability/{label}/{name}"] = stats["events"]
            out[f"stability/{label.replace('spikes', 'spike_score')}/{name}"] = stats["score"]
    olmo_core = chosen if chosen.name == "olmo_core" else SPIKE_RULES["olmo_core"]
    out["stability/spike_score/olmo_core_total"] = olmo_core_spike_score(loss, grad, olmo_core)
    out["stability/loss_spikes"] = out[f"stability/loss_spikes/{chosen.name}"]
    out["stability/grad_norm_spikes"] = out[f"stability/grad_norm_spikes/{chosen.name}"]
    gstats = grad_norm_stats(grad, int(np.searchsorted(steps, start)))
    out.update({f"stability/grad_norm_{k}": v for k, v in gstats.items() if k != "steps"})
    if len(steps):
        out["stability/grad_norm_window"] = f"steps {start}-{int(steps[-1])} ({gstats['steps']} values)"
    _, log_z = series(metrics, "output/log_z")
    if np.isfinite(log_z).any():  # output-logit divergence (Wortsman et al.): log Z drifts far from 0
        out["output/log_z_peak"] = float(np.nanmax(np.abs(log_z)))
    layer_max = {k: series(metrics, k)[1] for k in keys_with_prefix(metrics, "attn/max_logit/layer_")}
    if layer_max:
        peaks = {k: float(np.nanmax(v)) for k, v in layer_max.items()}
        top = max(peaks, key=peaks.get)
        out["attn/max_logit"] = peaks[top]
        out["attn/max_logit_layer"] = int(top.rsplit("_", 1)[1])
    return out


def keys_with_prefix(metrics: dict[int, dict[str, float]], prefix: str) -> list[str]:
    return sorted({k for m in metrics.values() for k in m if k.startswith(prefix)})
