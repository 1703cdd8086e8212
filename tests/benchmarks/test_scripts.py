"""The benchmark scripts run and write their tables (tiny sizes; the figures themselves are not asserted)."""

from __future__ import annotations

import json

import pytest

from gemmalab.benchmarks import data_pipeline, diagnostics_overhead, inference, local_attention, train_throughput


def test_local_attention_benchmark(tmp_path):
    table = local_attention.main(["--seq", "256", "--window", "32", "--d-model", "32", "--out", str(tmp_path)])
    assert list(table["layer"]) == ["global", "local"]
    local = table.set_index("layer").loc["local"]
    assert local["backend"] == "blocked"  # auto, capped, on CPU
    # saved scores: 256 queries x <= 47 keys against the causal half of 256 x 256
    assert local["attention memory vs global"] < 0.6
    assert json.loads((tmp_path / "local_attention.json").read_text())["meta"]["W"] == 32


def test_train_throughput_benchmark_runs_both_models(tmp_path):
    pytest.importorskip("transformers")
    table = train_throughput.main(["--d-model", "32", "--layers", "2", "--batch", "2", "--seq", "32", "--window", "8",
                                   "--repeat", "1", "--out", str(tmp_path)])  # fmt: skip
    assert list(table["model"]) == ["gemmalab", "transformers (eager)"]
    # one round: the paired speed-up is exactly the ratio of the two throughputs
    ratio = table["tokens/s"].iloc[0] / table["tokens/s"].iloc[1]
    assert table["speed vs transformers"].iloc[0] == pytest.approx(ratio, rel=1e-9)
    assert (tmp_path / "train_throughput.md").read_text().startswith("## train_throughput")


def test_inference_benchmark_measures_the_cache(tmp_path):
    table = inference.main(["--d-model", "32", "--layers", "2", "--heads", "4", "--window", "8", "--prompt", "16",
                            "--new", "4", "--batches", "1,2", "--out", str(tmp_path)])  # fmt: skip
    assert len(table) == 3 * 3 * 2
    cache = table.set_index(["pattern", "kv", "batch"])["KV cache MB"]
    assert cache[("full", "MHA (4)", 2)] == pytest.approx(2 * cache[("full", "MHA (4)", 1)])
    assert cache[("full", "MHA (4)", 1)] == pytest.approx(4 * cache[("full", "MQA (1)", 1)])
    assert cache[("local", "MHA (4)", 1)] == pytest.approx(cache[("full", "MHA (4)", 1)] * 8 / 20)  # W=8 of 20


def test_diagnostics_overhead_benchmark(tmp_path):
    table = diagnostics_overhead.main(["--model", "tiny", "--batch", "2", "--seq", "32", "--window", "8",
                                       "--repeat", "2", "--out", str(tmp_path)])  # fmt: skip
    assert table["extra on a stats step"].iloc[0].endswith("%")
    assert (tmp_path / "diagnostics_overhead.md").read_text().startswith("## diagnostics_overhead")


def test_data_pipeline_benchmark_builds_both_caches_and_times_the_loader(tmp_path):
    tables = data_pipeline.main(["--tokens", "200000", "--small", "20000", "--bpe", "600", "--parts", "build,loader",
                                 "--work", str(tmp_path / "work"), "--out", str(tmp_path)])  # fmt: skip
    build = tables["build"].set_index("tokenizer")
    corpus_mb = (tmp_path / "work" / "corpus_200000.txt").stat().st_size / 1e6
    assert build.loc["bytes", "tokens (M)"] == pytest.approx(corpus_mb)  # a byte each; each newline an end token
    assert build.loc["bpe:600", "tokens (M)"] < corpus_mb * 0.7  # merges: fewer tokens than bytes
    assert 0 < tables["loader"]["loading share %"].iloc[0] < 100
    assert (tmp_path / "data_pipeline_loader.md").read_text().startswith("## data_pipeline_loader")


def test_the_overhead_benchmarks_bare_loop_reproduces_the_runs_losses(tmp_path):
    """The harness benchmark compares a run against a bare loop of the same math: the same losses, exactly."""
    from gemmalab.benchmarks import harness_overhead
    from gemmalab.runs.job import run_job
    from gemmalab.runs.store import RunDir

    from ..conftest import TINY
    from ..test_conf import compose_config

    config = compose_config(*TINY, "trainer.max_steps=12", "trainer.val_every=5", "logger=none",
                            f"run_root={tmp_path}")  # fmt: skip
    summary = run_job(config, [], group="bench")
    metrics = RunDir(tmp_path, summary["run_id"]).metrics()
    (tmp_path / "spec.json").write_text(json.dumps(config))
    harness_overhead.bare_loop(str(tmp_path / "spec.json"), str(tmp_path / "bare.json"))
    bare = json.loads((tmp_path / "bare.json").read_text())
    assert bare["train/loss"] == [metrics[step]["train/loss"] for step in range(12)]
    assert bare["val/loss"][-1] == pytest.approx(summary["val/loss"], rel=1e-6)  # the same final validation
