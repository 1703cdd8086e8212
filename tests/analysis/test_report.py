"""Real tiny studies, run end to end through sweep.py, produce their reports; the loaders agree."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess

import pandas as pd
import pytest

from gemmalab.analysis import report
from gemmalab.analysis.loaders import load_run_store, load_wandb_offline
from gemmalab.runs.job import run_job
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir

from ..conftest import REPO, TINY, assert_wandb_matches_run_store, wandb_run_record
from ..test_conf import compose_config
from .conftest import FakeStore

STUDIES = sorted(p.stem for p in (REPO / "ablations").glob("*.yaml"))
SHORT = ["trainer.max_steps=30", "trainer.val_every=10", "optim.warmup_steps=5"]


def test_run_store_and_wandb_offline_give_the_same_frame(tmp_path, sweep_here):
    code, group = sweep_here(tmp_path, "-m", "norm=dual,pre", *SHORT)
    assert code == 0
    from_store = load_run_store(tmp_path, group)
    offline = [d for run_id in from_store["run_id"] for d in (tmp_path / run_id / "wandb").glob("offline-run-*")]
    from_wandb = load_wandb_offline(offline)
    assert len(from_store) == 2 and "stability/loss_spikes" in from_store and "attn.pattern" in from_store
    pd.testing.assert_frame_equal(from_store, from_wandb[from_store.columns], check_dtype=False)
    for path in offline:  # W&B's summary holds summary.json's figures (but its `final`), parameters and data too
        command = ["wandb", "leet", "inspect", "--summary", "--json", str(path)]
        record = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        stored = RunDir(tmp_path, record["run_id"]).summary()
        for key in ("parameters", "data/fingerprint", "data/train_tokens", "wall_seconds", "status", "val/loss"):
            assert record["summary"][key] == stored[key], key
    for run_id in from_store["run_id"]:  # and step by step, every value W&B holds is the run store's
        run = RunDir(tmp_path, run_id)
        assert assert_wandb_matches_run_store(run.path, run.metrics()) >= 3 * len(run.metrics())

    # one run's W&B files deleted: the report's loader names it, never silently reports n=1
    gone = from_store["run_id"][0]
    shutil.rmtree(tmp_path / gone / "wandb")
    frame, missing = report.load(argparse.Namespace(source="wandb-offline"), tmp_path, group)
    assert len(frame) == 1 and missing == [f"{gone}: no W&B offline run in {tmp_path / gone / 'wandb'}"]


def test_a_study_runs_end_to_end_and_produces_its_report(tmp_path, sweep_here, capsys):
    brief = ["trainer.max_steps=12", "trainer.val_every=6", "optim.warmup_steps=2"]
    code, group = sweep_here(tmp_path, "-m", "+ablation=softcap", "seed=0,1", *brief)
    assert code == 0
    out = report.main(["--run-root", str(tmp_path), "--study", "softcap"])
    text = (out / "report.md").read_text()
    assert "# Report: softcap" in text and "brief: change" in text and "capping on" in text
    # it opens with what was trained: the command as typed, the data and its content, the model, steps and seeds
    assert "- Command: `python sweep.py -m model=tiny " in text and "+ablation=softcap seed=0,1 " in text
    assert "- Data: embedded, tokenizer bytes, content stdlib-py" in text and ", token cache embedded-bytes-" in text
    assert "- Model: d_model 64, n_layers 2, n_heads 4, kv_heads 2, d_ff 256, vocab_size 256; 1" in text
    assert "- Training: 12 steps of 128 tokens; seeds [0, 1]." in text
    for name in ("softcap", "runs"):
        for suffix in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{suffix}").stat().st_size > 0
    # 12 steps of the tiny model: neither cap bends 1% of its inputs, and the report says so
    assert "Warning: in no run did the attention cap reach 1%" in text
    assert "Warning: in no run did the final-logit cap reach 1%" in text
    assert "Warning" in (out / "tables" / "softcap.md").read_text()
    for figure in ("loss_curves", "grad_norm_distribution", "max_logit_per_layer", "cap_engagement_per_layer",
                   "window_mass_per_layer"):  # fmt: skip
        assert (out / "figures" / f"{figure}.png").exists() and (out / "figures" / f"{figure}.pdf").exists()
    table = pd.read_csv(out / "tables" / "softcap.csv").set_index("metric")
    assert table.loc["val/loss", "capping on"].endswith("(n=2)")
    # the report run in the sweep's W&B group: the runs it read, numeric tables, the figures as images
    (wandb_run,) = (out / "wandb").glob("offline-run-*")
    inspected = subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(wandb_run)],
                               capture_output=True, text=True, check=True)  # fmt: skip
    record = json.loads(inspected.stdout)
    assert (wandb_run_record(wandb_run)["job_type"], wandb_run_record(wandb_run)["run_group"]) == ("report", group)
    assert sorted(record["config"]["members"]) == sorted(load_run_store(tmp_path, group)["run_id"])
    (numbers,) = (wandb_run / "files" / "media" / "table" / "numbers").glob("summary_*.table.json")
    table = json.loads(numbers.read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert len(rows) == 2 and all(isinstance(r["val/loss_mean"], float) and r["val/loss_n"] == 2 for r in rows)
    assert all(r["val/loss_ci"] > 0 for r in rows)
    images = {p.name.rsplit("_", 2)[0] for p in (wandb_run / "files" / "media" / "images" / "figures").glob("*.png")}
    assert images == {p.stem for p in (out / "figures").glob("*.png")}
    # `wandb sync` for exactly this group: each member's W&B run and the report run, nothing else
    (tmp_path / "stranger" / "wandb" / "offline-run-20260101_000000-stranger").mkdir(parents=True)
    capsys.readouterr()
    report.main(["--run-root", str(tmp_path), "--group", group, "--sync-command"])
    synced = shlex.split(capsys.readouterr().out.strip())
    members = [d for i in load_run_store(tmp_path, group)["run_id"] for d in (tmp_path / i / "wandb").glob("offline-*")]
    assert synced[:2] == ["wandb", "sync"] and sorted(synced[2:]) == sorted(map(str, [*members, wandb_run]))
    # a resumed member (two attempts, one W&B run) is synced into that one run, in a command of its own
    resumed = load_run_store(tmp_path, group)["run_id"].iloc[0]
    first = next((tmp_path / resumed / "wandb").glob("offline-*"))
    (again := first.with_name("offline-run-29990101_000000-" + resumed)).mkdir()
    report.main(["--run-root", str(tmp_path), "--group", group, "--sync-command"])
    whole, separate = capsys.readouterr().out.strip().split(" && ")
    assert str(first) not in whole
    assert shlex.split(separate) == ["wandb", "sync", "--id", resumed, str(first), str(again)]


def test_a_cap_that_bends_scores_is_reported_engaged_without_a_warning(tmp_path):
    group = "caps"
    for cap in ("0.5", "50"):  # what sweep.py -m softcap.attn=0.5,50 runs, in this process
        config = compose_config(*TINY, f"softcap.attn={cap}", "logger=none", "stability.spike_rule=olmo_core", *SHORT,
                                f"run_root={tmp_path}")  # fmt: skip
        assert run_job(config, [f"softcap.attn={cap}"], group)["status"] == "finished"
    out = report.main(["--run-root", str(tmp_path), "--group", group, "--no-wandb"])
    text = (out / "report.md").read_text()
    assert "Engaged: attention cap" in text and "attention cap reach" not in text
    # the caption names the rule the runs counted with; 30 steps are fewer than its 128-step window
    assert "Loss spikes: olmo_core: >= 6 std above the mean of previous 128" in text
    runs = pd.read_csv(out / "tables" / "runs.csv")
    assert (runs["stability/loss_spikes"] == "not evaluable").all()
    engaged = pd.read_csv(out / "tables" / "engagement.csv").set_index("softcap.attn")
    share = engaged["attn scores > cap/2 (%)"].str.split(" ").str[0].astype(float)
    assert share.loc[0.5] > 5 and share.loc[50.0] < 0.1


def test_report_refuses_an_unknown_group_in_one_line(tmp_path):
    (tmp_path / "_sweeps").mkdir()
    with pytest.raises(SystemExit, match="^error: --group 'nope' has no runs"):
        report.main(["--run-root", str(tmp_path), "--group", "nope"])


def test_a_report_names_what_it_left_out_and_fails_unless_allowed(fake_store):
    ids = [fake_store.add({"seed": seed, "norm": norm}, {"status": "finished", "val/loss": 3.0 + seed / 10})
           for seed in range(2) for norm in ("pre", "dual")]  # fmt: skip
    damaged = RunDir(fake_store.root, ids[0])
    damaged.summary_path.write_bytes(b'{"status": "fini')
    with RunDir(fake_store.root, ids[1]).metrics_path.open("ab") as f:
        f.write(b"\xff\xfe\n")
    args = ["--run-root", str(fake_store.root), "--group", "g", "--no-wandb"]
    with pytest.raises(SystemExit, match="^error: 1 run\\(s\\) missing from the report"):
        report.main(args)
    text = (report.main([*args, "--allow-missing"]) / "report.md").read_text()
    assert f"Missing: 1 of 4 runs are not in these tables: {ids[0]}: {damaged.summary_path} is damaged" in text
    assert f"Damaged: 1 line(s) of {fake_store.root / ids[1] / 'metrics.jsonl'} skipped (lines 4)." in text


def test_a_report_on_a_sweep_still_running_says_what_is_not_in_yet(fake_store):
    SweepDir(fake_store.root, "g").plan(jobs=4, swept={"seed"})  # as sweep.py planned it: four jobs
    for seed in range(2):
        fake_store.add({"seed": seed}, {"status": "finished", "val/loss": 3.0 + seed / 10})
    fake_store.add({"seed": 2}, {"status": "running"})  # job 3 trains now; job 4 has not started
    args = ["--run-root", str(fake_store.root), "--group", "g", "--no-wandb"]
    with pytest.raises(SystemExit, match="^error: 2 run\\(s\\) missing from the report"):
        report.main(args)
    text = (report.main([*args, "--allow-missing"]) / "report.md").read_text()
    assert "seed=2: no result yet (still training, or stopped without a word)" in text
    assert "1 of the sweep's 4 jobs: not started yet" in text


def test_group_latest_is_the_sweep_that_recorded_last(fake_store):
    fake_store.add({"seed": 0}, {"status": "finished", "val/loss": 3.0})
    newer = FakeStore(fake_store.root, group="newer")
    newer.add({"seed": 1}, {"status": "finished", "val/loss": 2.0})
    old = SweepDir(fake_store.root, "g").members_path
    os.utime(old, ns=(1, 1))  # recorded long ago
    out = report.main(["--run-root", str(fake_store.root), "--group", "latest", "--no-wandb"])
    assert out.name == "newer"


def test_report_argument_errors_are_one_line(fake_store, capsys):
    for seed in range(2):
        for lr, loss in ((0.003, 3.0), (0.01, 3.1)):
            summary = {"status": "finished", "val/loss": loss, "val/loss_init": 5.5}
            fake_store.add({"seed": seed, "optim.lr": lr}, summary)
    args = ["--run-root", str(fake_store.root), "--group", "g", "--no-wandb"]
    with pytest.raises(SystemExit, match="^error: --baseline norm=pre: norm does not vary in group g "
                                         "\\(allowed keys: optim.lr\\)$"):  # fmt: skip
        report.main([*args, "--baseline", "norm=pre"])
    with pytest.raises(SystemExit, match="^error: --baseline optim.lr=0.1: baseline .* matches 0 rows"):
        report.main([*args, "--baseline", "optim.lr=0.1"])
    out = report.main([*args, "--baseline", "optim.lr=3e-3"])  # typed: 3e-3 is the stored 0.003
    delta = pd.read_csv(out / "tables" / "runs.csv").set_index("optim.lr")["Δ vs baseline"]
    assert delta.loc[0.01].startswith("+0.100 ± 0.000 (+3.3%, paired, n=") and pd.isna(delta.loc[0.003])
    for outside in ("../../x", "/abs/path"):  # a group names a directory of the store, never one outside it
        with pytest.raises(SystemExit):
            report.main(["--run-root", str(fake_store.root), "--group", outside, "--no-wandb"])
        assert "is not allowed (allowed: one name of letters" in capsys.readouterr().err


def test_the_sync_command_of_a_group_without_wandb_runs_is_refused(fake_store, capsys):
    """A bare `wandb sync` would sync every unsynced run in ./wandb: never printed."""
    fake_store.add({"seed": 0}, {"status": "finished", "val/loss": 2.0})
    with pytest.raises(SystemExit, match="error: group g has no W&B offline runs in .* \\(nothing to sync: "):
        report.main(["--run-root", str(fake_store.root), "--group", "g", "--sync-command"])
    assert capsys.readouterr().out == ""


def test_a_baseline_of_one_switch_in_a_2x2_sweep_is_read_within_each_setting_of_the_other(fake_store):
    """The README's `--baseline norm=pre` on the README's 2x2 sweep: dual vs pre under alt, and under full;
    a comparison at one seed says it supports none."""
    losses = {("alt", "dual"): 3.2, ("alt", "pre"): 3.0, ("full", "dual"): 2.9, ("full", "pre"): 2.6}
    for seed in range(2):
        for (pattern, norm), loss in losses.items():
            if seed == 1 and pattern == "full":
                continue  # one seed of each full-attention arm
            summary = {"status": "finished", "val/loss": loss + 0.01 * seed, "val/loss_init": 5.5}
            fake_store.add({"seed": seed, "attn.pattern": pattern, "norm": norm}, summary)
    args = ["--run-root", str(fake_store.root), "--group", "g", "--no-wandb"]
    out = report.main([*args, "--baseline", "norm=pre"])
    table = pd.read_csv(out / "tables" / "runs.csv").set_index(["attn.pattern", "norm"])["Δ vs baseline"]
    assert table.loc[("alt", "dual")].startswith("+0.200 ± 0.000 (+6.7%, paired, n=2)")
    assert table.loc[("full", "dual")] == "+0.300 (n=1: one seed supports no comparison)"
    assert pd.isna(table.loc[("alt", "pre")]) and pd.isna(table.loc[("full", "pre")])
    with pytest.raises(SystemExit, match=r"^error: --baseline norm=post: baseline \{'norm': 'post'\} matches 0 rows "
                                         r"\(allowed: one of \['dual', 'pre'\]\)$"):  # fmt: skip
        report.main([*args, "--baseline", "norm=post"])
    fake_store.add({"seed": 0, "attn.pattern": "local", "norm": "dual"}, {"status": "finished", "val/loss": 3.0})
    with pytest.raises(SystemExit, match=r"matches 0 rows where attn.pattern=local \(allowed: one of \['dual'\]\)"):
        report.main([*args, "--baseline", "norm=pre"])  # no pre run under local: nothing to compare it with
