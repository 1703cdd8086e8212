"""A study's W&B workspace built as code and serialised offline (analysis/workspace.py, wandb-workspaces)."""

from __future__ import annotations

import json

import pytest

from gemmalab.analysis import workspace
from gemmalab.runs.sweep_dir import SweepDir


def test_a_sweeps_workspace_selects_its_runs_by_id_groups_by_the_swept_switches_and_plots_what_they_logged(
    fake_store, capsys
):
    ids = [fake_store.add({"softcap.attn": cap, "seed": seed}, {"status": "finished", "val/loss": 2.0})
           for cap in (50.0, None) for seed in (0, 1)]  # fmt: skip
    SweepDir(fake_store.root, "g").plan(4, {"softcap.attn", "seed"})
    out = workspace.main(["--run-root", str(fake_store.root), "--group", "latest", "--entity", "me"])
    view = json.loads(out.read_text())
    assert view["entity"] == "me" and view["project"] == "gemmalab" and view["display_name"] == "gemmalab g"
    text = out.read_text()
    assert all(run_id in text for run_id in ids)  # the filter names every member, reused or not
    sections = [s["name"] for s in view["spec"]["section"]["panel_bank_config"]["sections"]]
    assert sections == ["Headline figures", "Training", "Attention logits"]  # the families these runs logged
    assert "attn/max_logit/layer_0" in text and "softcap.value.attn" in text  # W&B's path of config softcap.attn
    assert "grouped by softcap.attn" in capsys.readouterr().out


def test_saving_needs_an_entity_and_says_so_in_one_line(fake_store, capsys):
    fake_store.add({"seed": 0}, {"status": "finished"})
    with pytest.raises(SystemExit):
        workspace.main(["--run-root", str(fake_store.root), "--group", "g", "--save"])
    assert "--save needs the W&B entity" in capsys.readouterr().err
