"""Every claim of the registry judged on planted runs: the effect its source states gives `supported`, the
reverse `contradicted`, none the neutral verdict; a claim whose arms are swapped is refused when declared."""

import math

import numpy as np
import pandas as pd
import pytest

from gemmalab.analysis.claims import CLAIMS, HIGHER, LOWER, Arm, Claim, Contrast, Evidence, findings
from gemmalab.analysis.verdict import (
    CONTRADICTED,
    EQUIVALENT,
    INCONCLUSIVE,
    NO_EFFECT,
    SUPPORTED,
    claimed_range,
    directional,
    verdict,
)
from gemmalab.runs.store import is_headline

CONTRASTS = [c for c in CLAIMS if c.contrast is not None]
SEEDS = 8
NOISE = np.array([0.3, -0.2, 0.1, -0.4, 0.25, -0.05, 0.15, -0.15])  # per-seed, shared by the arms: paired


def planted(claim: Claim, a_minus_b: float, spread: float = 0.002) -> pd.DataFrame:
    """Runs of the claim's two arms (every column their selection reads), 8 seeds, paired; arm b at a base
    level, arm a at base + a_minus_b (in the quantity's units: % of b for a relative claim), noise `spread`
    per seed around the difference."""
    c = claim.contrast
    base = 2.5
    shift = base * a_minus_b / 100 if c.relative else a_minus_b
    rows = []
    for arm, level in ((c.a, base + shift), (c.b, base)):
        for seed in range(SEEDS):
            wobble = spread * base * NOISE[seed] * (1 if arm is c.a else -1)
            rows.append({"run_id": f"{arm.label}-{seed}", "seed": seed, "status": "finished", "model.init": "paired",
                         **c.arm(arm), c.metric: level + base * 0.05 * NOISE[seed] + wobble})  # fmt: skip
    return pd.DataFrame(rows)


def stated_effect(claim: Claim) -> float:
    """An effect of a - b the claim asserts: inside its range, clear of 0 and of any threshold."""
    low, high = claim.claimed
    if math.isfinite(low) and math.isfinite(high):
        return (low + high) / 2
    edge = high if math.isfinite(high) else low
    step = max(abs(edge), 10.0)  # past the edge, in the claimed direction
    return edge - step if math.isinf(low) else edge + step


def judged(claim: Claim, rows: pd.DataFrame) -> str:
    measured, gauge = claim.read(rows)
    p_holm = measured.p if directional(*claim.claimed) else math.nan  # a family of one
    return verdict(*claim.claimed, measured, gauge, p_holm, claim.margin)


@pytest.mark.parametrize("claim", CONTRASTS, ids=[c.id for c in CONTRASTS])
def test_a_planted_effect_gets_the_claims_verdict_and_its_reverse_the_opposite(claim):
    effect = stated_effect(claim)
    if claim.lower is not None:  # the source's own order, independent of how the contrast subtracts
        assert (effect < 0) == (claim.lower == claim.contrast.a.label)
    assert judged(claim, planted(claim, effect)) == SUPPORTED
    low, high = claim.claimed
    far = 3 * max(abs(v) for v in (low, high, effect) if math.isfinite(v))
    reverse = -effect if directional(low, high) or math.isinf(low) or math.isinf(high) else high + far
    assert judged(claim, planted(claim, reverse)) == CONTRADICTED
    neutral = judged(claim, planted(claim, 0.0 if directional(low, high) else high, spread=0.4))
    if directional(low, high):
        assert neutral.startswith(NO_EFFECT) or neutral.startswith(EQUIVALENT)
    else:
        assert neutral == INCONCLUSIVE


def test_the_planted_test_covers_every_contrast_claim_and_each_is_declared_once():
    assert len(CONTRASTS) == 31  # count in the closing note; every claim with runs is a contrast but one figure
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    figures = [c.id for c in CLAIMS if c.study is not None and c.contrast is None]
    assert figures == ["distill-compute"]


def test_a_claim_declared_with_its_arms_swapped_is_refused():
    on, off = Arm("on", {"capping": "on"}), Arm("off", {"capping": "off"})
    Claim("ok", "soft-capping", "brief", "capping lowers the loss", LOWER, "softcap", Contrast("test/loss", on, off),
          lower="on")  # fmt: skip
    with pytest.raises(ValueError, match=r"claim swapped: its range < 0 for off - on says off is lower, its source "
                                         r"says on \(swapped arms\?\)"):  # fmt: skip
        Claim("swapped", "soft-capping", "brief", "capping lowers the loss", LOWER, "softcap",
              Contrast("test/loss", off, on), lower="on")  # fmt: skip
    with pytest.raises(ValueError, match="claim unsaid: its range > 0"):
        Claim("unsaid", "soft-capping", "brief", "capping raises the loss", HIGHER, "softcap",
              Contrast("test/loss", on, off))  # fmt: skip


def test_the_quantity_is_written_from_the_contrast():
    by_id = {c.id: c for c in CLAIMS}
    assert by_id["softcap-quality"].quantity == "test/loss, on - off (% of off)"
    assert by_id["zloss-divergence"].quantity == (
        "peak |log Z| of the output softmax, optim.lr=1, z_loss - none (% of none)")  # fmt: skip
    assert by_id["table10-half"].quantity == "val/loss, W/2 - W (nats)"
    assert claimed_range(*by_id["zloss-divergence"].claimed) == "< -50"


def test_a_ci_that_rules_out_prevents_is_contradicted_and_an_equivalence_is_judged_at_its_own_margin(tmp_path):
    """z-loss that removes 10% of the log-Z drift does not prevent the divergence; GQA within 0.2% of MHA is
    equivalent within Table 8's ±1% but contradicts the brief's 2-5% worse."""
    by_id = {c.id: c for c in CLAIMS}
    assert judged(by_id["zloss-divergence"], planted(by_id["zloss-divergence"], -10.0)) == CONTRADICTED
    close = planted(by_id["gqa-keeps"], 0.2, spread=0.01)  # a paired CI of about ±0.4% that holds 0
    assert judged(by_id["table8-gqa"], close) == SUPPORTED
    assert judged(by_id["gqa-keeps"], close) == CONTRADICTED
    study = close.assign(
        **{
            "attn.kv_heads": np.where(close["kv"] == "GQA", 2, 4),
            "model.n_heads": 4,
            "trainer.max_steps": 10,
            "data.batch_size": 2,
            "data.seq_len": 8,
            "parameters": 1000,
        }
    )
    claims = tuple(by_id[i] for i in ("gqa-keeps", "table8-gqa", "gqa-vs-mha"))
    rows = {r["id"]: r for r in findings(claims, Evidence({"kv_heads": study.drop(columns="kv")}, tmp_path))}
    assert rows["gqa-vs-mha"]["margin"] == 2 and rows["gqa-vs-mha"]["verdict"] == f"{EQUIVALENT} ±2"


def test_a_capping_stability_claim_is_read_at_the_edge_of_stability(tmp_path):
    """The largest LR where every run finished and a cap bends: 3e-2 while an uncapped run diverges at 1e-1;
    1e-1 once none does; never 1e-2, where the caps do not bend."""
    rows = []
    for lr, bent in ((1e-2, 0.001), (3e-2, 0.2), (1e-1, 0.6)):
        for capping, seed in ((c, s) for c in ("on", "off") for s in range(3)):
            status = "diverged at step 40" if (lr, capping, seed) == (1e-1, "off", 2) else "finished"
            rows.append(
                {
                    "run_id": f"{lr}{capping}{seed}",
                    "seed": seed,
                    "status": status,
                    "model.init": "paired",
                    "optim.lr": lr,
                    "softcap.attn": 50.0 if capping == "on" else None,
                    "softcap.final": None,
                    "softcap/attn/beyond_half": bent,
                    "stability/loss_spikes": 4 + seed - 2 * (capping == "on"),
                }
            )
    spikes = next(c for c in CLAIMS if c.id == "softcap-spikes")
    evidence = Evidence({"softcap_stability": pd.DataFrame(rows)}, tmp_path)
    measured, gauge, note = spikes.measure(evidence)
    assert set(spikes.rows(evidence)["optim.lr"]) == {3e-2}
    assert note == "read at optim.lr=0.03 of the grid 0.01, 0.03, 0.1"
    assert measured.value == -2 and gauge.value == 0.2 and gauge.engaged
    stable = Evidence({"softcap_stability": pd.DataFrame(rows).assign(status="finished")}, tmp_path)
    assert set(spikes.rows(stable)["optim.lr"]) == {1e-1}


def test_tokens_to_match_is_where_the_scratch_curve_crosses_the_distilled_student(tmp_path):
    """Scratch at 1, 2, 4, 8 x N tokens reaches 3.0, 2.8, 2.6, 2.4; the distilled student 2.7: k = 2 sqrt 2
    (log-linear between 2 and 4), far below the brief's ~50 x: contradicted."""
    rows = [{"run_id": f"d{s}", "seed": s, "status": "finished", "cascade.size": "middle",
             "cascade.training": "distilled", "trainer.max_steps": 200, "test/loss": 2.7 + 0.001 * s}
            for s in range(3)]  # fmt: skip
    rows += [{"run_id": f"s{k}{s}", "seed": s, "status": "finished", "cascade.size": "middle",
              "cascade.training": "scratch" if k == 1 else f"scratch_x{k}", "trainer.max_steps": 200 * k,
              "test/loss": loss} for s in range(3) for k, loss in ((1, 3.0), (2, 2.8), (4, 2.6), (8, 2.4))]  # fmt: skip
    claim = next(c for c in CLAIMS if c.id == "distill-compute")
    measured = claim.figure(Evidence({"cascade": pd.DataFrame(rows)}, tmp_path))
    assert measured.value == pytest.approx(2 * math.sqrt(2), rel=0.01) and measured.n == 3
    assert verdict(*claim.claimed, measured) == CONTRADICTED
    never = pd.DataFrame(rows).assign(**{"test/loss": lambda f: np.where(f["run_id"].str.startswith("d"), 2.0, 3.0)})
    beyond = claim.figure(Evidence({"cascade": never}, tmp_path))  # scratch never gets there: k >= 8, a bound
    assert beyond.value == 8 and beyond.test == "one-sample t; 0 seed(s) at k <= 1, 3 beyond 8 x N"
    already = pd.DataFrame(rows).assign(**{"test/loss": lambda f: np.where(f["run_id"].str.startswith("d"), 3.5, 3.0)})
    at_once = claim.figure(Evidence({"cascade": already}, tmp_path))  # scratch on N is already as good
    assert at_once.value == 1 and verdict(*claim.claimed, at_once) == CONTRADICTED


def test_every_metric_a_claim_reads_from_a_run_is_loaded_from_its_summary():
    """A claim's metric that the loader drops reads `undefined in every finished run` (output/log_z_peak did)."""
    derived = {"sensitivity"}  # computed by its view from the LR grid's runs
    read = {c.contrast.metric for c in CONTRASTS} - derived
    loaded = [m for m in read if is_headline(m)]
    assert sorted(loaded) == sorted(read)
