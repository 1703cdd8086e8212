"""The effect across scale: the weighted fit recovers a known slope, a flat effect's slope CI holds 0, and
a ladder's runs become the per-rung table, the fit with its extrapolation and the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gemmalab.analysis import plots, power, report, scaling
from gemmalab.analysis.loaders import load_run_store
from gemmalab.analysis.tables import QUALITY

X = np.log10([3.1e4, 1.04e5, 2.9e5, 9.85e5])  # the cpu ladder's non-embedding parameters


def test_the_fit_recovers_a_known_slope_within_its_ci_and_a_flat_effect_holds_zero():
    rng = np.random.default_rng(0)
    se = np.array([0.02, 0.015, 0.01, 0.01])
    covered = {"slope": 0, "flat": 0}
    for _ in range(400):
        noisy = 0.05 - 0.03 * X + rng.normal(0.0, se)
        fit = scaling.fit_effect(X, noisy, se)
        covered["slope"] += abs(fit.slope - (-0.03)) <= fit.slope_ci()
        flat = scaling.fit_effect(X, 0.01 + rng.normal(0.0, se), se)
        covered["flat"] += abs(flat.slope) <= flat.slope_ci()
    assert covered["slope"] / 400 >= 0.93 and covered["flat"] / 400 >= 0.93  # nominal 95%
    exact = scaling.fit_effect(X, 0.05 - 0.03 * X, se)
    assert exact.slope == pytest.approx(-0.03) and exact.tau2 == 0.0
    mean, half = exact.predict(math.log10(2e9))
    assert mean == pytest.approx(0.05 - 0.03 * math.log10(2e9)) and half > 0
    strong = scaling.fit_effect(X, 0.05 - 0.03 * X + np.array([0.0, 0.001, -0.001, 0.0]), se / 100)
    assert strong.slope_ci() < 0.01 and strong.tau2 > 0  # rungs off the line beyond their CIs: tau² takes it up
    with pytest.raises(ValueError, match="at least 3 rungs"):
        scaling.fit_effect(X[:2], X[:2], se[:2])


def test_a_ladder_of_runs_becomes_the_table_the_fit_and_the_figure(fake_store, tmp_path):
    sizes = [(32, 2), (48, 3), (80, 3), (128, 4)]
    for rung, (d, layers) in enumerate(sizes):
        for seed in range(3):
            for cap, effect in (("on", 0.0), ("off", 0.02 - 0.01 * rung)):
                off = {"softcap.attn": None, "softcap.final": None} if cap == "off" else {}
                fake_store.add({"seed": seed, "scale.ladder": "cpu", "scale.rung": rung, "model.d_model": d,
                                "model.n_layers": layers, "model.head_dim": d // 4, "model.d_ff": 4 * d, **off},
                               {"status": "finished", "val/loss": 3.0, "test/loss": 3.0 - 0.1 * rung + effect
                                + 0.001 * seed * (rung + 1) * (cap == "off") + 0.01 * seed})  # fmt: skip
    frame = load_run_store(fake_store.root, "g")
    per_rung, fit_table, drawn = scaling.ladder(frame)
    assert drawn["metric"] == "test/loss" and drawn["arm"] == "softcap.attn softcap.final" and len(per_rung) == 4
    assert per_rung["non-embedding parameters"].tolist()[0] == "31,008"
    first = per_rung.filter(like="effect").iloc[0, 0]
    assert first.startswith(("+0.0210", "-0.0210")) and "paired" in first  # off - on, or on - off, by name order
    slope = fit_table.set_index("quantity").iloc[0, 0]
    assert "rungs" in slope and drawn["fit"] is not None
    assert abs(abs(drawn["fit"].slope) - 0.01 / np.diff(X).mean()) < 0.01  # ~0.01 per rung, rungs ~0.5 decade apart
    extrapolated = fit_table["value"].iloc[1:].tolist()
    assert len(extrapolated) == 3
    assert all("WARNING" in v and "decades beyond the largest rung" in v for v in extrapolated)
    assert [p.suffix for p in plots.effect_vs_parameters(drawn, tmp_path)] == [".png", ".pdf"]


def test_a_ladders_power_line_is_that_of_its_largest_rung_not_of_the_rungs_pooled(fake_store):
    for rung, d in enumerate((32, 48, 80)):
        for seed in range(3):
            for cap in ("on", "off"):
                off = {"softcap.attn": None, "softcap.final": None} if cap == "off" else {}
                loss = 3.0 - 0.5 * rung + 0.01 * seed + 0.002 * seed * (cap == "off")
                fake_store.add({"seed": seed, "scale.ladder": "cpu", "scale.rung": rung, "model.d_model": d,
                                "model.head_dim": d // 4, "model.d_ff": 4 * d, **off},
                               {"status": "finished", "val/loss": loss, "test/loss": loss})  # fmt: skip
    out = report.main(["--run-root", str(fake_store.root), "--group", "g", "--no-wandb", "--no-figures"])
    text = (out / "tables" / "ladder.md").read_text()
    frame = load_run_store(fake_store.root, "g")
    largest = power.detectable_by_test(frame[frame["scale.rung"] == 2], ["softcap.attn", "softcap.final"], QUALITY)
    assert "At the ladder's largest rung (2): Power:" in text and "a paired t-test" in text
    assert f"{QUALITY} ±{largest[0]:.3g}" in text  # the pooled rungs, 0.5 nats apart, would give another figure
