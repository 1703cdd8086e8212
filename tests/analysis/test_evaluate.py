"""Finished runs scored at other switch values without retraining (analysis/evaluate.py)."""

from __future__ import annotations

import json

import pytest

from gemmalab.analysis import evaluate, report
from gemmalab.runs.job import run_job

from ..conftest import TINY, wandb_run_record
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
    # one W&B run in the group, job_type=eval, its evaluations a numeric table
    (offline,) = (tmp_path / "_reports" / group / "wandb").glob("offline-run-*")
    record = wandb_run_record(offline)
    assert (record["job_type"], record["run_group"], record["display_name"]) == ("eval", group, f"eval {group}")
    (table,) = (offline / "files" / "media" / "table").glob("evaluations_*.table.json")
    rows = [dict(zip(t["columns"], row, strict=True)) for t in [json.loads(table.read_text())] for row in t["data"]]
    assert sorted(r["setting"] for r in rows) == ["as-trained", "attn.window=2", "attn.window=4"]
    assert all(isinstance(r["val/loss"], float) for r in rows)
    assert evaluate.main(["--run-root", str(tmp_path), "--group", group, "attn.window=4"]) == []  # skipped
    out = report.main(["--run-root", str(tmp_path), "--group", group, "--no-wandb"])
    table = (out / "tables" / "inference_settings.md").read_text()
    assert "attn.window=2" in table and "as-trained" in table and "(n=1)" in table
    assert "Units: Gemma 2's Table 10 perplexities are per token of its 256K-entry SentencePiece vocabulary" in table
    assert "these are per token of data.tokenizer=bytes, from models of " in table


def test_a_switch_that_changes_parameters_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"'attn.kv_heads=1' is not allowed \(allowed: key=v1,v2 with key one of"):
        evaluate.main(["--run-root", str(tmp_path), "--group", "g", "attn.kv_heads=1"])


def test_damaged_files_are_named_and_the_rest_of_the_group_is_evaluated(tmp_path, capsys):
    group = "g"
    runs = [run_job(compose_config(*TINY, "logger=none", f"seed={seed}", f"run_root={tmp_path}"), [f"seed={seed}"],
                    group)["run_id"] for seed in (0, 1)]  # fmt: skip
    last = tmp_path / runs[0] / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])  # cut short on disk
    with pytest.raises(SystemExit, match=f"^error: 1 run\\(s\\) not evaluated, their files damaged: {runs[0]}$"):
        evaluate.main(["--run-root", str(tmp_path), "--group", group])
    assert f"damaged: {last} is damaged" in capsys.readouterr().err
    (record,) = (tmp_path / runs[1] / "evals").glob("*.json")  # the other run was evaluated all the same
    record.write_text(record.read_text()[:30])  # an evaluation record cut short
    out = report.main(["--run-root", str(tmp_path), "--group", group, "--no-wandb"])  # no JSONDecodeError
    assert f"damaged: {record} skipped" in capsys.readouterr().err and (out / "report.md").exists()
    with pytest.raises(SystemExit):  # runs[0] still damaged; runs[1]'s record is done again, not skipped
        evaluate.main(["--run-root", str(tmp_path), "--group", group])
    assert json.loads(record.read_text())["setting"] == "as-trained"
    assert (record.parent / f"{record.name}.damaged").exists()


def test_a_window_is_not_evaluated_on_full_attention_runs_and_the_data_is_read_once(tmp_path, capsys):
    group = "g"
    for pattern in ("alt", "full"):
        config = compose_config(*TINY, "logger=none", f"attn.pattern={pattern}", f"run_root={tmp_path}")
        assert run_job(config, [f"attn.pattern={pattern}"], group)["status"] == "finished"
    capsys.readouterr()
    written = evaluate.main(["--run-root", str(tmp_path), "--group", group, "--no-wandb", "attn.window=4,2"])
    out = capsys.readouterr().out
    assert sorted(p.stem for p in written) == ["as-trained", "as-trained", "attn.window=2", "attn.window=4"]
    assert out.count(": attn.pattern=full never reads attn.window") == 2  # each skipped setting said once
    assert out.count("[gemmalab] token cache:") == 1  # one validation set for the group's runs
