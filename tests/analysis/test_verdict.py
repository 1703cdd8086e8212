import math

import numpy as np
import pandas as pd
import pytest

from gemmalab.analysis.claims import CLAIMS, Evidence, contrast, finding, findings
from gemmalab.analysis.tables import holm
from gemmalab.analysis.verdict import (
    CONTRADICTED,
    INCONCLUSIVE,
    NO_EFFECT,
    NOT_ENGAGED,
    NOT_MEASURED,
    SUPPORTED,
    Gauge,
    Measured,
    estimate,
    verdict,
)

LOWER = (-math.inf, 0.0)  # a claim that the quantity is negative (capping lowers the loss)
ENGAGED, IDLE = Gauge("share", 0.2, 0.01), Gauge("share", 0.001, 0.01)


@pytest.mark.parametrize(
    ("claimed", "measured", "gauge", "expected"),
    [
        (LOWER, Measured(-0.05, 0.02, 5, "paired", 0.03), ENGAGED, SUPPORTED),
        (LOWER, Measured(+0.05, 0.02, 5, "paired", 0.03), ENGAGED, CONTRADICTED),
        (LOWER, Measured(-0.01, 0.02, 5, "paired", 0.03), ENGAGED, f"{NO_EFFECT} (could detect ±0.03)"),
        (LOWER, Measured(-0.05, 0.02, 5, "paired", 0.03), IDLE, NOT_ENGAGED),  # significant, but the cap never bit
        (LOWER, Measured(math.nan, math.nan, 0, reason="no runs"), ENGAGED, f"{NOT_MEASURED} (no runs)"),
        (LOWER, Measured(-0.05, math.nan, 1), None, f"{NOT_MEASURED} (fewer than two seeds to give a CI)"),
        (
            (0.0, math.inf),
            Measured(0.0, 0.0, 2, "paired"),
            None,
            f"{NO_EFFECT} (every seed gave the same value: no spread to size an effect by)",
        ),
        ((40.0, 60.0), Measured(37.5, 0.0, None), None, CONTRADICTED),  # an exact figure outside the range
        ((40.0, 60.0), Measured(50.0, 0.0, None), None, SUPPORTED),
        ((-0.01, 0.01), Measured(0.008, 0.005, 3, "paired", 0.01), ENGAGED, INCONCLUSIVE),
    ],
)
def test_every_verdict_is_reached_by_the_rule(claimed, measured, gauge, expected):
    assert verdict(*claimed, measured, gauge) == expected


def runs(arm_values: dict[str, list[float]], metric: str = "test/loss", **columns) -> pd.DataFrame:
    rows = [{"run_id": f"{arm}{s}", "seed": s, "status": "finished", "model.init": "paired", "arm": arm, metric: v,
             **columns} for arm, values in arm_values.items() for s, v in enumerate(values)]  # fmt: skip
    return pd.DataFrame(rows)


def test_contrast_pairs_by_seed_and_gives_the_detectable_difference():
    frame = runs({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.1, 2.1, 3.2, 4.1]})
    m = contrast(frame, "test/loss", {"arm": "a"}, {"arm": "b"})
    assert m.test == "paired" and m.n == 4
    assert m.value == pytest.approx(-0.125)
    assert 0 < m.ci < 0.2  # paired: the seed-to-seed spread of 1.3 cancels
    assert m.detectable > 0
    welch = contrast(frame.assign(**{"model.init": "shared"}), "test/loss", {"arm": "a"}, {"arm": "b"})
    assert welch.test == "Welch" and welch.ci > 1.0


def test_an_arm_without_a_value_says_why():
    frame = runs({"a": [1.0, 2.0], "b": [1.1, 2.1]})
    assert contrast(frame, "test/loss", {"arm": "c"}, {"arm": "b"}).reason == "the study ran no {'arm': 'c'} arm"
    failed = frame.assign(status=np.where(frame["arm"] == "a", "failed: x", "finished"))
    reason = contrast(failed, "test/loss", {"arm": "a"}, {"arm": "b"}).reason
    assert reason == "no finished run of {'arm': 'a'} (failed: x)"
    short = frame.assign(**{"stability/loss_spikes": np.nan})  # both finished, the count undefined at this length
    assert contrast(short, "stability/loss_spikes", {"arm": "a"}, {"arm": "b"}).reason == (
        "stability/loss_spikes is undefined in every finished run of {'arm': 'a'} (the runs are shorter than the "
        "spike rule's window)")  # fmt: skip


@pytest.mark.parametrize(
    ("value", "ci", "shown"),
    [(12.1, 7.6, "+12.1 ± 7.6"), (-44.1, 240.0, "-44 ± 240"), (0.24, 0.084, "+0.240 ± 0.084"),
     (-6.318e-05, 0.000306, "(-0.6 ± 3.1)e-4"), (5.637, 0.0, "+5.637"), (-0.00148, 0.0025, "-0.0015 ± 0.0025")],
)  # fmt: skip
def test_an_estimate_and_its_ci_share_one_format(value, ci, shown):
    assert estimate(value, ci) == shown


def softcap_frame(on: list[float], off: list[float], beyond_half: float) -> pd.DataFrame:
    frame = runs({"on": on, "off": off})
    return frame.assign(**{
        "softcap.attn": np.where(frame["arm"] == "on", 50.0, np.nan), "softcap.final": np.nan,
        "softcap/attn/beyond_half": beyond_half, "softcap/final/beyond_half": 0.0,
        "trainer.max_steps": 10, "data.batch_size": 2, "data.seq_len": 8, "parameters": 1000,
    })  # fmt: skip


QUALITY = next(c for c in CLAIMS if c.id == "softcap-quality")


def test_a_planted_contradiction_is_reported_as_one(tmp_path):
    # capping on is clearly worse than off in every seed, and the caps bit: the brief's +1.2% is contradicted
    frame = softcap_frame(on=[2.6, 2.7, 2.8], off=[2.5, 2.6, 2.7], beyond_half=0.3)
    row = finding(QUALITY, Evidence({"softcap": frame}, tmp_path))
    assert row["verdict"] == CONTRADICTED
    assert row["value"] > 0 and row["n"] == 3 and row["gauge"]["engaged"]
    better = finding(QUALITY, Evidence({"softcap": softcap_frame([2.4, 2.5, 2.6], [2.5, 2.6, 2.7], 0.3)}, tmp_path))
    assert better["verdict"] == SUPPORTED
    idle = finding(QUALITY, Evidence({"softcap": softcap_frame([2.6, 2.7, 2.8], [2.5, 2.6, 2.7], 0.0)}, tmp_path))
    assert idle["verdict"] == NOT_ENGAGED  # the same numbers, but the caps never bent a score


def test_every_claim_has_a_verdict_without_any_runs(tmp_path):
    rows = [finding(c, Evidence({}, tmp_path)) for c in CLAIMS]
    assert len({r["id"] for r in rows}) == len(CLAIMS)
    assert all(r["verdict"] for r in rows)
    analytic = {r["id"]: r for r in rows if r["study"].startswith("analytic")}
    assert analytic["gqa-cache-mha"]["verdict"] == SUPPORTED  # 5.64 GB computed vs the brief's 5.5
    assert analytic["attn-work"]["verdict"] == CONTRADICTED  # causal count: 12.5%, not ~50%
    measured = [r for r in rows if not r["study"].startswith("analytic")]
    assert all(r["verdict"].startswith(NOT_MEASURED) for r in measured)


def test_p_values_are_holm_adjusted_within_a_family_and_gate_its_directional_verdicts(tmp_path):
    frame = softcap_frame(on=[2.40, 2.52, 2.61], off=[2.5, 2.6, 2.7], beyond_half=0.3)
    frame["stability/loss_spikes"] = np.where(frame["arm"] == "on", [0, 1, 0, 2, 1, 3], 0)[: len(frame)]
    frame["stability/grad_norm_var"] = np.where(frame["arm"] == "on", 1.0, 1.4) + 0.01 * frame["seed"]
    stability = frame.assign(**{"optim.lr": 0.01})  # one LR of the grid, where the caps bend: its edge
    rows = {r["id"]: r for r in findings(CLAIMS, Evidence({"softcap": frame, "softcap_stability": stability},
                                                          tmp_path))}  # fmt: skip
    family = [r for r in rows.values() if r["family"] == "soft-capping" and r["p"] is not None]
    assert len(family) >= 2  # quality and the grad-norm variance at least
    assert [r["p_holm"] for r in family] == pytest.approx(holm([r["p"] for r in family]), rel=1e-5)  # 6 digits kept
    quality = rows["softcap-quality"]  # every value it read, published: 3 seeds of each arm
    assert [(v["arm"], v["where"], v["seed"]) for v in quality["per_seed"]] == [
        ("on", {"capping": "on"}, 0), ("on", {"capping": "on"}, 1), ("on", {"capping": "on"}, 2),
        ("off", {"capping": "off"}, 0), ("off", {"capping": "off"}, 1), ("off", {"capping": "off"}, 2)]  # fmt: skip
    assert [v["run_id"] for v in quality["per_seed"]] == ["on0", "on1", "on2", "off0", "off1", "off2"]
    assert [v["value"] for v in quality["per_seed"]] == [2.40, 2.52, 2.61, 2.5, 2.6, 2.7]
    # a CI clear of 0 whose family-adjusted p is not: no direction claimed
    significant = Measured(-0.05, 0.02, 5, "paired", 0.03, p=0.01)
    assert verdict(*LOWER, significant, ENGAGED, p_adjusted=0.03) == SUPPORTED
    assert verdict(*LOWER, significant, ENGAGED, p_adjusted=0.08) == (
        f"{NO_EFFECT} (Holm-adjusted p=0.08 in its family, tested at 0.05; could detect ±0.03)")  # fmt: skip
    assert verdict(40.0, 60.0, Measured(50.0, 2.0, 5, "paired", p=0.5), None, p_adjusted=0.9) == SUPPORTED  # a range


def test_a_ladders_gauge_is_read_at_the_rung_its_verdict_is_read(tmp_path):
    """Caps that bend at the smallest rung only say nothing of the largest, where the claim is judged."""
    ladder = next(c for c in CLAIMS if c.id == "softcap-ladder")
    frame = pd.concat([softcap_frame([2.4, 2.5, 2.6], [2.5, 2.6, 2.7], beyond).assign(**{"scale.rung": rung})
                       for rung, beyond in ((0, 0.3), (1, 0.0))])  # fmt: skip
    _, gauge = ladder.read(ladder.rows(Evidence({"softcap_ladder": frame}, tmp_path)))
    assert gauge.value == 0.0 and not gauge.engaged
