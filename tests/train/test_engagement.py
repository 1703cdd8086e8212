from __future__ import annotations

import pytest

from gemmalab.train.engagement import engagement_summary


def test_trained_figures_average_the_second_half_and_peaks_cover_the_whole_run():
    metrics = {
        0: {"softcap/attn/beyond_half/layer_0": 0.5, "softcap/attn/beyond_half/layer_1": 0.0,
            "softcap/attn/max_ratio/layer_0": 2.0, "window/mass_beyond/layer_1": 0.9},
        10: {"softcap/attn/beyond_half/layer_0": 0.02, "softcap/attn/beyond_half/layer_1": 0.04,
             "softcap/attn/max_ratio/layer_0": 0.7, "window/mass_beyond/layer_1": 0.2},
        20: {"softcap/attn/beyond_half/layer_0": 0.00, "softcap/attn/beyond_half/layer_1": 0.02,
             "softcap/attn/max_ratio/layer_0": 0.6, "window/mass_beyond/layer_1": 0.1},
    }  # fmt: skip
    out = engagement_summary(metrics)
    assert out["softcap/attn/beyond_half"] == pytest.approx(0.02)  # steps 10 and 20, both layers
    assert out["softcap/attn/beyond_half_peak"] == 0.5  # the step-0 value of layer 0
    assert out["softcap/attn/max_ratio"] == 2.0
    assert out["window/mass_beyond"] == pytest.approx(0.15)
    assert "softcap/final/beyond_half" not in out and "distill/gap_init" not in out


def test_distillation_gap_from_the_teachers_and_the_students_validation_loss():
    metrics = {0: {"val/loss": 5.5, "teacher/val_loss": 2.5}, 50: {"val/loss": 3.5}, 100: {"val/loss": 3.0}}
    out = engagement_summary(metrics)
    assert out["distill/gap_init"] == pytest.approx(3.0)
    assert out["distill/gap_final"] == pytest.approx(0.5)
    assert out["distill/gap_closed"] == pytest.approx(1 - 0.5 / 3.0)
