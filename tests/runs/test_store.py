from __future__ import annotations

import json
import math

from gemmalab.runs.store import RunDir, RunStoreLogger, last_values, record_sweep_member


def test_metrics_keep_the_last_value_per_step_and_survive_a_cut_line(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\n")
    logger = RunStoreLogger(run)
    logger.log_metrics({"train/loss": 3.0}, step=0)
    logger.log_metrics({"train/loss": 2.5}, step=1)
    logger.log_metrics({"val/loss": 2.7}, step=1)
    with run.metrics_path.open("a") as f:
        f.write('{"step": 2, "train/lo')  # the process was killed mid-write
    logger.log_metrics({"train/loss": 2.4}, step=1)  # a resumed run logs step 1 again
    logger.log_metrics({"train/loss": float("nan")}, step=2)
    metrics = run.metrics()
    assert metrics[0] == {"train/loss": 3.0}
    assert metrics[1] == {"train/loss": 2.4, "val/loss": 2.7}
    assert metrics[2]["train/loss"] != metrics[2]["train/loss"]  # nan round-trips
    assert last_values(metrics)["val/loss"] == 2.7 and math.isnan(last_values(metrics)["train/loss"])


def test_summary_updates_merge_and_status_decides_skipping(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\n")
    assert run.summary() is None and not run.is_done()
    run.update_summary(status="running", name="x")
    assert not run.is_done()
    run.update_summary(status="diverged at step 7")
    assert run.is_done() and run.summary() == {"status": "diverged at step 7", "name": "x"}
    run.update_summary(status="failed: boom")
    assert not run.is_done()  # a failure is retried by the next sweep


def test_a_resumed_run_keeps_the_config_it_started_with(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\nfault: 6\n")
    run.create("seed: 0\nfault: null\n")
    assert run.config_path.read_text() == "seed: 0\nfault: 6\n"


def test_sweep_members_append(tmp_path):
    record_sweep_member(tmp_path, "g", {"run_id": "a"})
    path = record_sweep_member(tmp_path, "g", {"run_id": "b"})
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()] == ["a", "b"]
