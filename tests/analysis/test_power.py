from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gemmalab.analysis.power import (
    detectable_by_test,
    min_detectable_difference,
    paired_power,
    pooled_sd,
    power,
    power_note,
    seeds_needed,
    welch_power,
)


def test_textbook_sample_sizes_for_80_percent_power():
    # Cohen's tables, two-sided alpha 0.05: d = 1 needs 17 per group, d = 0.5 needs 64
    assert seeds_needed(1.0, 1.0) == 17 and seeds_needed(0.5, 1.0) == 64
    assert power(1.0, 1.0, 17, 17) >= 0.8 > power(1.0, 1.0, 16, 16)
    assert min_detectable_difference(2.0, 20, 20) == pytest.approx(2 * 0.909, abs=0.01)
    assert np.isnan(min_detectable_difference(1.0, 1, 3))


def test_pooled_spread_and_the_note_under_a_table():
    frame = pd.DataFrame({
        "x": ["a"] * 3 + ["b"] * 3, "status": ["finished"] * 6, "seed": [0, 1, 2] * 2,
        "val/loss": [2.0, 2.1, 2.2, 3.0, 3.1, 3.2],
    })  # fmt: skip
    sd, n = pooled_sd(frame, ["x"], "val/loss")
    assert sd == pytest.approx(0.1) and n == 3
    note = power_note(frame, ["x"], ["val/loss"], "val/loss")
    mdd = min_detectable_difference(0.1, 3, 3)
    assert note.startswith("Power: with 3 seeds per setting") and "Welch t-test" in note
    assert f"val/loss ±{mdd:.3g}" in note
    assert f"a 1% change needs {seeds_needed(0.01 * 2.6, 0.1)} seeds" in note


def test_the_power_is_that_of_the_test_the_table_uses():
    # unequal spreads: the pooled test's detectable difference has less than 80% power under Welch's test
    pooled = min_detectable_difference(0.1, 3, 3, "Welch")  # equal sds: Welch's df is the pooled test's
    assert power(pooled, 0.1, 3, 3) == pytest.approx(0.8, abs=1e-6)
    sd1, sd2 = 0.02, math.sqrt(2 * 0.1**2 - 0.02**2)  # the same pooled sd, 0.1
    assert welch_power(pooled, sd1, sd2, 3, 3) < 0.75
    assert welch_power(min_detectable_difference(sd1, 3, 3, "Welch", sd2), sd1, sd2, 3, 3) == pytest.approx(0.8)
    # paired: seeds that move both settings alike leave only the spread of the differences
    shift = np.array([0.0, 0.3, -0.3])
    frame = pd.DataFrame({
        "x": ["a"] * 3 + ["b"] * 3, "status": ["finished"] * 6, "seed": [0, 1, 2] * 2,
        "model.init": ["paired"] * 6, "val/loss": [*(2.0 + shift), *(2.1 + shift + [0.01, -0.01, 0.0])],
    })  # fmt: skip
    mdd, sd, n, test = detectable_by_test(frame, ["x"], "val/loss")
    assert test == "paired" and n == 3 and sd == pytest.approx(0.01)
    assert mdd == pytest.approx(min_detectable_difference(0.01, 3, 3, "paired"))
    assert paired_power(mdd, 0.01, 3) == pytest.approx(0.8)
    welch_mdd, *_ = detectable_by_test(frame.assign(**{"model.init": "shared"}), ["x"], "val/loss")
    assert welch_mdd > 10 * mdd
    assert "a paired t-test over seeds" in power_note(frame, ["x"], ["val/loss"], "val/loss")
