"""sweep.py end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from gemmalab.runs.store import RunDir


def run_dirs(root: Path) -> list[RunDir]:
    return [RunDir(root, p.name) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith("_")]


def members(root: Path) -> list[dict]:
    (path,) = (root / "_sweeps").glob("*/members.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_2x2_ablation_command(tmp_path, sweep):
    result = sweep(tmp_path, "-m", "attn.pattern=alt,full", "norm=dual,pre")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = run_dirs(tmp_path)
    assert len(runs) == 4
    summaries = {r.summary()["name"]: r.summary() for r in runs}
    assert sorted(summaries) == [f"attn.pattern={p} norm={n} seed=0" for p in ("alt", "full") for n in ("dual", "pre")]
    for run in runs:
        summary = run.summary()
        assert summary["status"] == "finished"
        assert run.config_path.exists() and run.last_checkpoint() is not None
        assert sorted(run.metrics()) == list(range(6))
        assert summary["final"]["val/loss"] < summary["data/unigram_loss"] + 2.0
        assert list((run.path / "wandb").glob(f"offline-run-*-{run.run_id}"))
    # the window (8) is shorter than the sequence (32): alternating and full attention differ
    alt, full = (summaries[f"attn.pattern={p} norm=dual seed=0"]["final"]["val/loss"] for p in ("alt", "full"))
    assert alt != full
    assert len(members(tmp_path)) == 4
    assert "tables: python analysis/report.py --group" in result.stdout

    again = sweep(tmp_path, "-m", "attn.pattern=alt,full", "norm=dual,pre")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("[gemmalab] skip") == 4 and "[gemmalab] train" not in again.stdout
    assert all(len(list((r.path / "wandb").glob("offline-run-*"))) == 1 for r in runs)


def wandb_history(run: RunDir) -> list[dict]:
    (offline,) = (run.path / "wandb").glob("offline-run-*")
    command = ["wandb", "leet", "inspect", "--json", str(offline)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


def test_wandb_offline_files_agree_with_the_run_store(tmp_path, sweep):
    result = sweep(tmp_path, "softcap=off")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    history = wandb_history(run)
    store = run.metrics()
    compared = 0
    for item in history:
        step = int(item["trainer/global_step"])
        for key in ("train/loss", "train/grad_norm", "train/lr", "val/loss", "attn/max_logit/layer_0"):
            if key in item:
                assert store[step][key] == item[key], (step, key)
                compared += 1
    assert compared >= 6 * 3 + 2


def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path, sweep):
    longer = ["trainer.max_steps=10", "trainer.ckpt_every=4", "trainer.val_every=5"]
    killed = sweep(tmp_path / "a", *longer, "fault.kill_at_step=6")
    assert killed.returncode == -signal.SIGKILL
    (run,) = run_dirs(tmp_path / "a")
    assert run.summary()["status"] == "running" and run.last_checkpoint() is not None
    # killed in the 6th step, before its metrics were written; the checkpoint was taken after 4 steps,
    # so the row of step 4 comes again from the resumed run
    assert max(run.metrics()) == 4

    resumed = sweep(tmp_path / "a", *longer)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[gemmalab] resume" in resumed.stdout
    assert run.summary()["status"] == "finished" and run.summary()["resumed_from"].endswith("last.ckpt")
    assert len(list((run.path / "wandb").glob(f"offline-run-*-{run.run_id}"))) == 2  # the same W&B run id

    straight = sweep(tmp_path / "b", *longer)
    assert straight.returncode == 0
    (reference,) = run_dirs(tmp_path / "b")
    assert reference.run_id == run.run_id

    def curves(r: RunDir) -> dict:
        return {s: {k: v for k, v in m.items() if k != "train/tokens_per_sec"} for s, m in r.metrics().items()}

    assert curves(run) == curves(reference)  # identical, not close: CPU, same seed
    assert sorted(curves(run)) == list(range(10))


def test_a_bad_override_fails_before_any_work_in_one_line(tmp_path, sweep):
    for args, message in [
        (["attn.kv_heads=3"], "error: attn.kv_heads=3 must divide model.n_heads=4 (allowed: 1, 2, 4)"),
        (["-m", "attn.kv_heads=1,3"], "error: attn.kv_heads=3 must divide model.n_heads=4"),
        (["softcap.attn=-1"], "error: softcap.attn=-1 is not allowed (allowed: a number > 0, or null for off)"),
        (["norm=sandwich"], "error: In 'config': Could not find 'norm/sandwich'"),
        (["optim.lr=fast"], "error: optim.lr='fast' is not allowed (allowed: a number > 0)"),
    ]:
        result = sweep(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        last = result.stderr.strip().splitlines()
        assert len(last) == 1 and last[0].startswith(message), (args, result.stderr[-2000:])
        assert "[gemmalab] train" not in result.stdout
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, sweep):
    result = sweep(tmp_path, "-m", "data.seq_len=400000,32", "logger=none")
    assert result.returncode == 1
    statuses = {m["name"]: m["status"] for m in members(tmp_path)}
    assert statuses["data.seq_len=400000 seed=0"].startswith("failed: ValueError: data.seq_len=400000 needs more than")
    assert statuses["data.seq_len=32 seed=0"] == "finished"
    assert "failed jobs:" in result.stderr
    failed = [r for r in run_dirs(tmp_path) if r.summary()["status"].startswith("failed")]
    assert len(failed) == 1 and (failed[0].path / "error.txt").exists()


def test_an_absurd_learning_rate_diverges_cleanly_and_the_sweep_goes_on(tmp_path, sweep):
    result = sweep(tmp_path, "-m", "optim.lr=100.0,1e-3", "optim.warmup_steps=2", "trainer.max_steps=30",
                   "logger=none")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]  # a diverged run is a result, not an error
    by_name = {r.summary()["name"]: r for r in run_dirs(tmp_path)}
    diverged, healthy = by_name["optim.lr=100.0 seed=0"], by_name["optim.lr=0.001 seed=0"]
    summary = diverged.summary()
    step = summary["diverged_step"]
    assert summary["diverged"] and summary["status"] == f"diverged at step {step}" and 0 < step < 30
    assert sorted(s for s, m in diverged.metrics().items() if "train/loss" in m) == list(range(step))  # kept
    assert summary["attn/max_logit"] > 1e4  # Wortsman et al.: runs whose max logit passes 1e4 diverge
    for key in ("stability/loss_spikes", "stability/grad_norm_var", "stability/grad_norm_cv", "val/loss_init"):
        assert key in summary
    assert healthy.summary()["status"] == "finished" and not healthy.summary()["diverged"]
    again = sweep(tmp_path, "-m", "optim.lr=100.0,1e-3", "optim.warmup_steps=2", "trainer.max_steps=30",
                  "logger=none")  # fmt: skip
    assert again.stdout.count("[gemmalab] skip") == 2  # diverging again would teach nothing


def test_a_student_whose_teacher_never_finished_fails_alone(tmp_path, sweep):
    result = sweep(tmp_path, "-m", "distill=on", "distill.teacher=alias:nobody", "seed=0,1", "logger=none")
    assert result.returncode == 1 and "failed jobs:" in result.stderr
    assert [m["status"] for m in members(tmp_path)] == [
        "failed: distill.teacher='alias:nobody' names no finished run (allowed: none yet)"
    ] * 2
