from __future__ import annotations

import numpy as np
import pandas as pd

from gemmalab.analysis.engagement import engagement_lines, engagement_table


def frame(attn_share: list[float], softcap_attn: list[float | None]) -> pd.DataFrame:
    n = len(attn_share)
    return pd.DataFrame({
        "softcap.attn": softcap_attn, "seed": list(range(n)), "status": ["finished"] * n,
        "softcap/attn/beyond_half": attn_share, "softcap/attn/max_ratio": [0.4] * n,
        "softcap/final/beyond_half": [0.0] * n, "softcap/final/max_ratio": [0.3] * n,
        "window/mass_beyond": [0.2] * n,
    })  # fmt: skip


def test_a_varied_cap_that_never_bent_1_percent_of_scores_is_warned_about():
    lines, warnings = engagement_lines(frame([0.002, 0.004], [50.0, np.nan]), ["softcap.attn"])
    assert lines[0].startswith("attention cap") and "0.30% of attention scores beyond cap/2" in lines[0]
    assert len(warnings) == 1 and "attention cap reach 1%" in warnings[0] and "at most 0.40%" in warnings[0]


def test_no_warning_once_one_arm_engages_or_when_the_switch_is_not_studied():
    assert engagement_lines(frame([0.002, 0.30], [50.0, 1.0]), ["softcap.attn"])[1] == []
    # the final cap bent nothing, but this study does not vary it
    _, warnings = engagement_lines(frame([0.002, 0.004], [50.0, 50.0]), ["norm"])
    assert warnings == []


def test_the_engagement_table_shows_shares_in_percent_per_setting():
    table = engagement_table(frame([0.01, 0.03, 0.2, 0.4], [50.0, 50.0, 1.0, 1.0]), ["softcap.attn"])
    row = table.set_index("softcap.attn").loc[1.0]
    assert row["attn scores > cap/2 (%)"].startswith("30.00 ± ") and row["attn scores > cap/2 (%)"].endswith("(n=2)")
    assert row["global attn beyond W (%)"].startswith("20.00")


def test_a_window_the_global_layers_barely_reach_past_is_warned_about_in_a_pattern_study():
    runs = frame([0.2, 0.2], [50.0, 50.0]).assign(**{"attn.window": [64, 128], "window/mass_beyond": [0.03, 0.01]})
    lines, warnings = engagement_lines(runs, ["attn.window"])
    assert any(line.startswith("window: 2.00% of the global layers' attention") for line in lines)
    assert len(warnings) == 1 and "window reach 5%" in warnings[0]
    runs["window/mass_beyond"] = [0.30, 0.01]
    assert engagement_lines(runs, ["attn.window"])[1] == []


def test_distillation_line_and_a_teacher_with_nothing_left_to_teach():
    runs = pd.DataFrame({"distill/gap_init": [3.0, 3.0], "distill/gap_final": [0.3, 0.1]})
    lines, warnings = engagement_lines(runs, ["distill.enabled"])
    assert lines == ["distillation: student val/loss - teacher val/loss +3.000 at step 0, +0.200 at the end "
                     "(mean over distilled runs; 93% of the gap closed)"]  # fmt: skip
    assert warnings == []
    runs["distill/gap_final"] = [-0.1, 0.0]
    assert "nothing left to teach" in engagement_lines(runs, ["distill.enabled"])[1][0]
