"""Hand-made run stores with known values give exact table numbers and intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gemmalab.analysis import studies
from gemmalab.analysis.latex import to_latex
from gemmalab.analysis.loaders import load_run_store
from gemmalab.analysis.tables import (
    aggregate,
    compare_to_baseline,
    display,
    holm,
    marker,
    mean_ci,
    to_markdown,
    varying_switches,
)


def finished(val_loss: float, spikes: int = 0, grad_var: float = 1.0) -> dict:
    return {"status": "finished", "diverged": False, "val/loss": val_loss, "val/loss_init": 5.5,
            "stability/loss_spikes": spikes, "stability/grad_norm_var": grad_var}  # fmt: skip


def test_mean_and_95_ci_over_seeds():
    mean, half, n = mean_ci(np.array([2.0, 2.2, 2.4]))
    assert (mean, n) == (pytest.approx(2.2), 3)
    assert half == pytest.approx(4.302652729911275 * 0.2 / math.sqrt(3))  # t(0.975, 2) * s / sqrt(n)
    assert math.isnan(mean_ci(np.array([1.0]))[1]) and mean_ci(np.array([np.nan]))[2] == 0


def test_softcap_table_from_a_hand_made_store(fake_store):
    for seed, (on, off) in enumerate([(2.0, 2.5), (2.2, 2.6), (2.4, 2.7)]):
        fake_store.add({"seed": seed}, finished(on, spikes=1, grad_var=0.5))
        fake_store.add(
            {"seed": seed, "softcap.attn": None, "softcap.final": None}, finished(off, spikes=3, grad_var=2.0)
        )
    fake_store.add({"seed": 3, "softcap.attn": None, "softcap.final": None},
                   {"status": "diverged at step 7", "diverged": True, "val/loss": float("nan"), "val/loss_init": 5.5,
                    "stability/loss_spikes": 40})  # fmt: skip
    frame = load_run_store(fake_store.root, "g")
    assert len(frame) == 7 and set(frame["status"]) == {"finished", "diverged at step 7"}
    assert varying_switches(frame) == ["softcap.attn", "softcap.final"]  # off (None) is a value of its own
    assert len(studies.generic(frame)) == 2
    table = studies.softcap(frame).set_index("metric")
    half_on = 4.302652729911275 * 0.2 / math.sqrt(3)
    half_off = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert table.loc["val/loss", "capping on"] == f"2.200 ± {half_on:.3f} (n=3)"
    assert table.loc["val/loss", "capping off"] == f"2.600 ± {half_off:.3f} (n=3)"  # the diverged run is not in it
    assert table.loc["runs (diverged, failed)", "capping off"] == "4 (1, 0)"  # ... but counted beside the means
    assert table.loc["runs (diverged, failed)", "capping on"] == "3 (0, 0)"
    assert table.loc["stability/loss_spikes", "capping off"] == "3.000 ± 0.000 (n=3)"
    assert table.loc["stability/grad_norm_var", "change"] == "-75.0%"  # identical seeds: no test possible
    se2 = 0.04 / 3 + 0.01 / 3
    t = (2.2 - 2.6) / math.sqrt(se2)
    df = se2**2 / ((0.04 / 3) ** 2 / 2 + (0.01 / 3) ** 2 / 2)
    p = 2 * stats.t.sf(abs(t), df)
    assert 0.05 < p < 0.1
    agg = aggregate(frame.assign(capping=frame["softcap.attn"].notna().map({True: "on", False: "off"})),
                    ["capping"], ["val/loss"])  # fmt: skip
    cmp = compare_to_baseline(agg, {"capping": "off"}, "val/loss")
    # model.init=paired: seed s of one arm pairs with seed s of the other; differences -0.5, -0.4, -0.3
    paired_p = 2 * stats.t.sf(0.4 / (0.1 / math.sqrt(3)), 2)
    assert cmp["test"].iloc[1] == "paired" and cmp["p"].iloc[1] == pytest.approx(paired_p, rel=1e-9)
    assert cmp["delta_ci"].iloc[1] == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    assert cmp["relative_%"].iloc[1] == pytest.approx(100 * (2.2 - 2.6) / 2.6)
    shown = display(agg, {"capping": "off"}).set_index("capping")
    assert shown.loc["off", "runs"] == "4 (1 diverged)"
    assert shown.loc["on", "Δ vs baseline"] == "-0.400 ± 0.248 (-15.4%, paired, n=3) *"  # p ~ 0.02
    unpaired = aggregate(frame.assign(capping=frame["softcap.attn"].notna().map({True: "on", False: "off"}),
                                      **{"model.init": "shared"}), ["capping"], ["val/loss"])  # fmt: skip
    cmp = compare_to_baseline(unpaired, {"capping": "off"}, "val/loss")
    assert cmp["test"].iloc[1] == "Welch" and cmp["p"].iloc[1] == pytest.approx(p, rel=1e-9)  # p ~ 0.06


def test_significance_markers_and_a_missing_baseline(fake_store):
    for seed in range(4):
        fake_store.add({"seed": seed, "norm": "pre"}, finished(3.0 + 0.01 * seed))
        fake_store.add({"seed": seed, "norm": "dual"}, finished(2.0 + 0.013 * seed))
    frame = load_run_store(fake_store.root, "g")
    table = studies.norm(frame).set_index("norm")
    assert table.loc["dual", "sub-layer f, stream x"].startswith("x + norm(f(norm(x)))")
    assert table.loc["dual", "Δ vs baseline"].endswith("***")
    agg = aggregate(frame, ["norm"], ["val/loss"])
    with pytest.raises(ValueError, match="baseline {'norm': 'post'} matches 0 rows"):
        compare_to_baseline(agg, {"norm": "post"}, "val/loss")


def test_lr_sensitivity_counts_a_diverged_run_as_the_initial_loss(fake_store):
    # seed 0: l(eta) = 3.0, 2.0, diverged -> l0 = 5.5 ; l* = 2.0 ; mean(1.0, 0, 3.5) = 1.5
    # seed 1: l(eta) = 3.2, 2.2, 6.0 (worse than l0: capped at 5.5) ; mean(1.0, 0, 3.3) = 1.4333
    for seed, losses in enumerate([(3.0, 2.0, None), (3.2, 2.2, 6.0)]):
        for lr, loss in zip((1e-3, 1e-2, 1e-1), losses, strict=True):
            summary = finished(loss) if loss is not None else {"status": "diverged at step 3", "diverged": True,
                                                               "val/loss": None, "val/loss_init": 5.5}  # fmt: skip
            fake_store.add({"seed": seed, "optim.lr": lr}, summary)
    table = studies.lr_sensitivity(load_run_store(fake_store.root, "g"))
    assert table.loc[0, "failed"] == "0/6"
    mean, half, n = mean_ci(np.array([1.5, (1.0 + 0 + 3.3) / 3]))
    assert table.loc[0, "LR sensitivity"] == f"{mean:.3f} ± {half:.3f} (n=2)"
    assert table.loc[0, "best LR (per seed)"] == "0.01, 0.01" and table.loc[0, "diverged"] == "1/6"


def test_lr_sensitivity_counts_failed_runs(fake_store):
    for lr in (1e-3, 1e-2):
        fake_store.add({"seed": 0, "optim.lr": lr}, finished(2.0))
    fake_store.add({"seed": 0, "optim.lr": 1e-1}, {"status": "failed: RuntimeError: boom", "val/loss_init": 5.5})
    table = studies.lr_sensitivity(load_run_store(fake_store.root, "g"))
    assert table.loc[0, "failed"] == "1/3" and table.loc[0, "diverged"] == "0/3"


def test_kv_and_pattern_tables_read_sizes_off_the_module_tree(fake_store):
    for kv in (1, 2, 4):
        fake_store.add({"seed": 0, "attn.kv_heads": kv}, finished(2.0 + kv / 10))
    table = studies.kv_heads(load_run_store(fake_store.root, "g")).set_index("attn.kv_heads")
    # tiny: 2 layers, head_dim 16, bf16, data.seq_len 128 tokens: 2 (K,V) * kv * 16 * 2 bytes * 128 * 2 layers
    assert table.loc[1, "KV cache bytes/seq (bf16)"] == 2 * 1 * 16 * 2 * 128 * 2
    assert table.loc[4, "kind"] == "MHA" and table.loc[2, "kind"] == "GQA" and table.loc[1, "kind"] == "MQA"
    assert table.loc[4, "parameters"] - table.loc[1, "parameters"] == 2 * 64 * 16 * 3 * 2


def test_real_scale_table_beside_the_brief():
    table = studies.real_scale().set_index("model")
    assert table.loc["gemma2-9b", "KV cache 8K, MHA (GB)"] == pytest.approx(5.637, abs=1e-3)
    assert table.loc["gemma2-9b", "KV cache 8K, as built (GB)"] == pytest.approx(2.819, abs=1e-3)
    assert table.loc["gemma2-2b", "parameters (B)"] == 2.614
    # causal counting: (8192*8193/2 + 4096*4097/2 + 4096^2) / 2 against 8192*8193/2
    assert table.loc["gemma2-9b", "attention saving"] == "12.5%"
    assert table.loc["gemma2-9b", "KV cache saving, alt + rolling local"] == "25.0%"  # the memory figure
    brief = studies.real_scale_vs_brief(studies.real_scale()).set_index("figure")
    assert brief.loc["attention compute saving (score entries)", "brief"] == "~50%"


def test_markdown_and_latex_render_every_cell():
    import pandas as pd

    table = pd.DataFrame({"norm": ["pre", "dual"], "val/loss": ["2.1 ± 0.1 (n=3)", "2.0 ± 0.1 (n=3)"]})
    md = to_markdown(table).splitlines()
    assert md[0].startswith("| norm") and md[1].startswith("|---") and "2.0 ± 0.1" in md[3]
    tex = to_latex(table, "norm_placement", "tab:norm")
    assert r"\toprule" in tex and r"norm\_placement" in tex and r"\label{tab:norm}" in tex
    # mean and CI in two right/left columns joined at the ±, n once in the header
    assert r"\begin{tabular}{lr@{\,\ensuremath{\pm}\,}l}" in tex and r"\multicolumn{2}{c}{val loss (n=3)}" in tex
    assert r"dual & 2.0 & 0.1 \\" in tex


def test_mqar_table_cuts_distance_bands_at_the_studys_windows(fake_store):
    def recall(by_band: dict[str, tuple[float, int]]) -> dict:
        summary = {"status": "finished", "val/loss": 1.0, "val/accuracy": 0.5}
        for span, (accuracy, queries) in by_band.items():
            summary[f"val/accuracy_by_distance/{span}"] = accuracy
            summary[f"val/queries_by_distance/{span}"] = queries
        return summary

    base = {"data.source": "mqar", "data.seq_len": 64, "model.vocab_size": 64}
    for seed in (0, 1):
        fake_store.add(
            {**base, "seed": seed, "attn.pattern": "local", "attn.window": 16},
            recall({"1-8": (1.0, 10), "9-16": (0.8, 10), "17-48": (0.1, 30), "49-64": (0.0, 10)}),
        )
        fake_store.add(
            {**base, "seed": seed, "attn.pattern": "local", "attn.window": 48},
            recall({"1-16": (1.0, 20), "17-32": (0.9, 10), "33-48": (0.7, 10), "49-64": (0.2, 20)}),
        )
    # fmt: skip
    table = studies.mqar(load_run_store(fake_store.root, "g")).set_index("attn.window")
    assert list(table.columns[-4:]) == ["acc. d <= 16", "acc. 16 < d <= 48", "acc. 48 < d <= 64", "chance"]
    assert table.loc[16, "acc. d <= 16"].startswith("0.900 ± 0.000 (n=2)")  # (1.0 * 10 + 0.8 * 10) / 20
    assert table.loc[48, "acc. 16 < d <= 48"].startswith("0.800")  # 0.9 and 0.7, 10 queries each
    assert table.loc[48, "acc. 48 < d <= 64"].startswith("0.200")
    assert table.loc[16, "chance"] == "0.031"  # 32 values


def test_deep_wide_table_shows_equal_parameter_counts_beside_the_paper(fake_store):
    for seed in range(2):
        fake_store.add({"seed": seed, "model.n_layers": 2, "model.d_ff": 256}, finished(3.0 + 0.01 * seed))
        fake_store.add({"seed": seed, "model.n_layers": 3, "model.d_ff": 152}, finished(2.9 + 0.01 * seed))
    table = studies.deep_wide(load_run_store(fake_store.root, "g")).set_index("shape")
    wide = int(table.loc["wide", "non-embedding parameters"].replace(",", ""))
    deep = int(table.loc["deep", "non-embedding parameters"].replace(",", ""))
    assert table.loc["deep", "vs wide"] == f"{100 * (deep / wide - 1):+.2f}%" and abs(deep / wide - 1) < 0.02
    assert table.loc["deep", "paper: 9B avg. score"] == "52.0" and table.loc["wide", "Δ vs baseline"] == ""
    assert table.loc["deep", "Δ vs baseline"].startswith("-0.100")


def test_a_spike_count_no_run_could_evaluate_reads_not_evaluable(fake_store):
    for seed in range(2):  # olmo2's 1000-step window on a short run: NaN, not 0 spikes
        fake_store.add({"seed": seed, "norm": "pre"}, {**finished(3.0), "stability/loss_spikes": math.nan})
        fake_store.add({"seed": seed, "norm": "dual"}, finished(3.0, spikes=1))
    frame = load_run_store(fake_store.root, "g")
    cells = display(aggregate(frame, ["norm"], ["stability/loss_spikes"])).set_index("norm")["stability/loss_spikes"]
    assert cells["pre"] == "not evaluable" and cells["dual"].startswith("1.000 ± ")


def test_holm_adjusts_step_down_and_keeps_nan():
    adjusted = holm([0.01, 0.04, math.nan, 0.03])
    assert adjusted[0] == pytest.approx(0.03) and adjusted[3] == pytest.approx(0.06)  # 3 x 0.01, 2 x 0.03
    assert adjusted[1] == pytest.approx(0.06) and math.isnan(adjusted[2])  # monotone: max(0.06, 1 x 0.04)


def test_a_table_with_several_comparisons_marks_the_holm_adjusted_p(fake_store):
    noise = [0.0, 0.02, -0.01]
    for seed in range(3):
        for norm, loss in (("pre", 3.0), ("dual", 2.96), ("post", 2.5)):
            fake_store.add({"seed": seed, "norm": norm}, finished(loss + noise[seed] + 0.004 * seed * (norm != "pre")))
    agg = aggregate(load_run_store(fake_store.root, "g"), ["norm"], ["val/loss"])
    cmp = compare_to_baseline(agg, {"norm": "pre"}, "val/loss").set_index(agg.frame["norm"])
    assert list(cmp.loc[["dual", "post"], "p_holm"]) == pytest.approx(holm(list(cmp.loc[["dual", "post"], "p"])))
    smaller = cmp.loc[["dual", "post"], "p"].idxmin()
    assert cmp.loc[smaller, "p_holm"] == pytest.approx(2 * cmp.loc[smaller, "p"])
    assert all(cmp.loc[n, "sig"] == marker(cmp.loc[n, "p_holm"]) for n in ("dual", "post"))
