"""Spike detectors on synthetic series with known spikes: exact counts per definition."""

from __future__ import annotations

import numpy as np
import pytest

from gemmalab.model import ConfigError
from gemmalab.train.stability import (
    SPIKE_RULES,
    StabilityConfig,
    count_events,
    grad_norm_stats,
    olmo_core_spike_score,
    spike_mask,
    spike_rule,
    spike_stats,
    stability_summary,
)


def wavy(n: int) -> np.ndarray:
    """A loss-like series: flat at 2.0 with a small deterministic wobble (std ~0.007)."""
    return 2.0 + 0.01 * np.sin(np.arange(n) * 0.7)


def test_events_merge_consecutive_steps():
    assert count_events(np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)) == 3
    assert count_events(np.array([1, 1], dtype=bool)) == 1
    assert count_events(np.array([], dtype=bool)) == 0


def test_absolute_rule_counts_jumps_over_half_a_nat():
    x = wavy(200)
    x[50] += 1.0  # one step
    x[80:83] += 2.0  # three steps, one event
    x[120] += 0.3  # below the 0.5 threshold
    x[10] += 5.0  # before the 20-step window is full: not evaluable
    spiking, evaluable = spike_mask(x, SPIKE_RULES["absolute"])
    assert spiking.nonzero()[0].tolist() == [50, 80, 81, 82]
    assert evaluable.sum() == 180
    stats = spike_stats(x, SPIKE_RULES["absolute"])
    assert stats["events"] == 2 and stats["score"] == pytest.approx(4 / 180)
    assert spike_stats(x, spike_rule("absolute", threshold=0.25))["events"] == 3


def test_olmo_core_rule_is_one_sided_six_sigma_over_128():
    x = wavy(400)
    x[150] += 1.0
    x[200:203] += 2.0
    x[300] -= 3.0  # a drop is no spike for a one-sided rule
    stats = spike_stats(x, SPIKE_RULES["olmo_core"])
    assert stats["events"] == 2 and stats["evaluable_steps"] == 400 - 128


def test_olmo_core_rule_sees_no_spike_on_a_flat_history():
    x = np.ones(200)
    x[150] = 1.0 + 1e-6  # any rise is > 6 * 0 std: OLMo-core refuses to call it a spike
    assert not spike_mask(x, SPIKE_RULES["olmo_core"])[0].any()


def test_olmo_core_total_score_counts_a_step_once_over_all_steps():
    loss, grad = wavy(300), 1.0 + 0.1 * np.cos(np.arange(300))
    loss[150] += 1.0
    grad[150] += 1.0  # the same step: counted once
    grad[200] += 1.0
    rule = SPIKE_RULES["olmo_core"]
    assert olmo_core_spike_score(loss, grad, rule) == pytest.approx(2 / 300)  # over all 300 steps, not 172
    assert np.isnan(olmo_core_spike_score(loss[:100], grad[:100], rule))


def test_olmo2_rule_is_two_sided_seven_sigma_over_1000():
    x = wavy(1500)
    x[1100] += 1.0
    x[1300] -= 1.0
    x[50] += 9.0  # before a full window of 1000, and out of the windows of the later steps
    spiking, _ = spike_mask(x, SPIKE_RULES["olmo2"])
    assert spiking.nonzero()[0].tolist() == [1100, 1300]
    assert spike_stats(x, SPIKE_RULES["olmo2"])["score"] == pytest.approx(2 / 500)


def test_non_finite_values_are_not_evaluated():
    x = wavy(70)
    x[40] = np.nan
    spiking, evaluable = spike_mask(x, SPIKE_RULES["absolute"])
    assert evaluable.nonzero()[0].tolist() == [*range(20, 40), *range(61, 70)]  # nan in the value or window
    assert not spiking.any()


def test_grad_norm_statistics_after_warmup():
    g = np.array([100.0, 50.0, 1.0, 2.0, 3.0, 2.0])
    stats = grad_norm_stats(g, start=2)
    assert stats["var"] == pytest.approx(0.5) and stats["max"] == 3.0 and stats["steps"] == 4
    assert stats["cv"] == pytest.approx(np.sqrt(0.5) / 2.0)


def test_summary_from_logged_metrics():
    loss, grad = wavy(60), 1.0 + 0.1 * np.cos(np.arange(60))
    loss[45] += 1.0
    loss[[2, 3]] = 12.0  # above 2 x ln(256) = 11.09: two blow-up steps
    metrics = {s: {"train/loss": loss[s], "train/grad_norm": grad[s]} for s in range(60)}
    for s in (0, 10, 20):
        metrics[s].update({"attn/max_logit/layer_0": 3.0 + s, "attn/max_logit/layer_1": 40.0 - s})
    out = stability_summary(metrics, StabilityConfig(), warmup_steps=10, vocab_size=256)
    assert out["stability/loss_spikes"] == 1 == out["stability/loss_spikes/absolute"]
    assert out["stability/loss_peak"] == 12.0 and out["stability/blowup_steps"] == 2
    assert np.isnan(out["stability/loss_spikes/olmo_core"])  # 60 steps: never a full 128-step window
    assert np.isnan(out["stability/loss_spike_score/olmo2"]) and np.isnan(out["stability/spike_score/olmo_core_total"])
    assert out["stability/grad_norm_var"] == pytest.approx(np.var(grad[10:]))
    assert out["stability/grad_norm_window"] == "steps 10-59 (50 values)"
    assert out["attn/max_logit"] == 40.0 and out["attn/max_logit_layer"] == 1
    assert out["stability/spike_rule"].startswith("absolute: > median of previous 20 + 0.5")


def test_bad_stability_settings_are_refused():
    with pytest.raises(ConfigError, match="stability.spike_rule='zclip' is not allowed"):
        StabilityConfig(spike_rule="zclip")
    with pytest.raises(ConfigError, match="stability.diverge_factor=1.0 is not allowed"):
        StabilityConfig(diverge_factor=1.0)
