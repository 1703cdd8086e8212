"""Finished runs scored at other switch values without retraining (analysis/evaluate.py)."""

from __future__ import annotations

import json

import pytest

from analysis import evaluate, report
from gemmalab.runs.job import run_job

from ..conftest import TINY
from ..test_conf import compose_config


def test_evaluation_at_the_trained_setting_reproduces_the_run_and_others_are_stored_beside_it(tmp_path):
    group = "g"
    assert (
        run_job(compose_config(*TINY, "logger=none", f"run_root={tmp_path}"), ["seed=0"], group)["status"] == "finished"
    )
    written = evaluate.main(["--run-root", str(tmp_path), "--group", group, "attn.window=4,2"])
    assert len(written) == 3  # as trained, W=4, W=2
    for path in written:
        record = json.loads(path.read_text())
        summary = json.loads((path.parents[1] / "summary.json").read_text())
        if record["setting"] == "as-trained":
            assert record["val/loss"] == summary["val/loss"]  # to the last digit logged
        else:
            assert record["val/loss"] != summary["val/loss"] and summary["status"] == "finished"  # summary kept
    assert evaluate.main(["--run-root", str(tmp_path), "--group", group, "attn.window=4"]) == []  # skipped
    out = report.main(["--run-root", str(tmp_path), "--group", group, "--no-wandb"])
    table = (out / "tables" / "inference_settings.md").read_text()
    assert "attn.window=2" in table and "as-trained" in table and "(n=1)" in table


def test_a_switch_that_changes_parameters_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"'attn.kv_heads=1' is not allowed \(allowed: key=v1,v2 with key one of"):
        evaluate.main(["--run-root", str(tmp_path), "--group", "g", "attn.kv_heads=1"])
