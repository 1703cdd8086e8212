from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.power import min_detectable_difference, pooled_sd, power, power_note, seeds_needed


def test_textbook_sample_sizes_for_80_percent_power():
    # Cohen's tables, two-sided alpha 0.05: d = 1 needs 17 per group, d = 0.5 needs 64
    assert seeds_needed(1.0, 1.0) == 17 and seeds_needed(0.5, 1.0) == 64
    assert power(1.0, 1.0, 17, 17) >= 0.8 > power(1.0, 1.0, 16, 16)
    assert min_detectable_difference(2.0, 20, 20) == pytest.approx(2 * 0.909, abs=0.01)
    assert np.isnan(min_detectable_difference(1.0, 1, 3))


def test_pooled_spread_and_the_note_under_a_table():
    frame = pd.DataFrame({
        "x": ["a"] * 3 + ["b"] * 3, "status": ["finished"] * 6,
        "val/loss": [2.0, 2.1, 2.2, 3.0, 3.1, 3.2],
    })  # fmt: skip
    sd, n = pooled_sd(frame, ["x"], "val/loss")
    assert sd == pytest.approx(0.1) and n == 3
    note = power_note(frame, ["x"], ["val/loss"], "val/loss")
    mdd = min_detectable_difference(0.1, 3, 3)
    assert note.startswith("Power: with 3 seeds per setting") and f"val/loss ±{mdd:.3g}" in note
    assert f"a 1% change needs {seeds_needed(0.01 * 2.6, 0.1)} seeds" in note
