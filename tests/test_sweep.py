"""sweep.py end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from gemmalab.analysis import report
from gemmalab.analysis.loaders import load_run_store
from gemmalab.errors import ConfigError, RunBusy
from gemmalab.runs.console import closing_summary
from gemmalab.runs.identity import run_identity
from gemmalab.runs.job import run_job
from gemmalab.runs.launchers import jobs_at_once
from gemmalab.runs.preflight import validate_all_jobs
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.train.checkpoints import load_checkpoint

from .conftest import REPO, TINY, assert_wandb_matches_run_store, start_sweep, sweep_command, wandb_run_record
from .faults import fault
from .test_conf import compose_config


def run_dirs(root: Path) -> list[RunDir]:
    return [RunDir(root, p.name) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith("_")]


def curves(run: RunDir) -> dict[int, dict[str, float]]:
    """A run's logged values by step, but for its speed."""
    return {s: {k: v for k, v in m.items() if k != "train/tokens_per_sec"} for s, m in run.metrics().items()}


def members(root: Path, result: subprocess.CompletedProcess | None = None) -> list[dict]:
    """The sweep's jobs, each with the last status it recorded (the sweep that printed `result`, if
    several ran under root)."""
    if result is not None:
        return SweepDir(root, result.stdout.split("[gemmalab] group ")[1].split(":")[0]).latest_members()
    (group,) = SweepDir.groups(root)
    return SweepDir(root, group).latest_members()


def test_the_2x2_ablation_command(tmp_path, sweep_here, capsys):
    code, group = sweep_here(tmp_path, "-m", "attn.pattern=alt,full", "norm=dual,pre")
    result = capsys.readouterr()
    assert code == 0, result.err[-3000:]
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
        (offline,) = (run.path / "wandb").glob(f"offline-run-*-{run.run_id}")
        record = wandb_run_record(offline)  # as W&B stored the run
        assert (record["job_type"], record["run_group"], record["display_name"]) == ("train", group, summary["name"])
    # the window (8) is shorter than the sequence (32): alternating and full attention differ
    alt, full = (summaries[f"attn.pattern={p} norm=dual seed=0"]["final"]["val/loss"] for p in ("alt", "full"))
    assert alt != full
    assert len(members(tmp_path)) == 4
    assert "tables: python analysis/report.py --group" in result.out
    for job in SweepDir(tmp_path, group).path.glob("job*"):  # Hydra's per-job log holds that job's lines
        log = (job / "sweep.log").read_text()
        (name,) = [n for n in summaries if f"[gemmalab] train {n} ->" in log]
        assert f"[gemmalab] finished: {name}" in log and log.count("[gemmalab] train") == 1

    for pattern in ("alt", "full"):  # the same jobs again (in this process): skipped, nothing retrained
        for norm in ("dual", "pre"):
            config = compose_config(*TINY, f"attn.pattern={pattern}", f"norm={norm}", f"run_root={tmp_path}")
            assert run_job(config, [], "again")["status"] == "finished"
    printed = capsys.readouterr().out
    assert printed.count("[gemmalab] skip") == 4 and "[gemmalab] train" not in printed
    assert all(len(list((r.path / "wandb").glob("offline-run-*"))) == 1 for r in runs)


@pytest.mark.processes
def test_a_killed_run_with_a_damaged_checkpoint_resumes_from_the_one_before(tmp_path, sweep, capsys):
    longer = ["trainer.max_steps=10", "trainer.ckpt_every=2", "trainer.val_every=5"]
    killed = sweep(tmp_path / "a", *longer, *fault(6))
    assert killed.returncode == -signal.SIGKILL
    (run,) = run_dirs(tmp_path / "a")
    assert run.summary()["status"] == "running"
    # killed in the 6th step before its checkpoint and metrics: last.ckpt holds step 4, previous.ckpt step 2
    assert max(run.metrics()) == 4
    last = run.checkpoint_dir / "last.ckpt"
    last.write_bytes(os.urandom(last.stat().st_size))  # damaged on disk for real: random bytes
    (run.path / "error.txt").write_text("from an earlier attempt\n")

    capsys.readouterr()
    resumed = run_job(compose_config(*TINY, *longer, f"run_root={tmp_path / 'a'}"), [], "a")  # the rerun, here
    printed = capsys.readouterr().out
    assert resumed["status"] == "finished"
    assert f"[gemmalab] damaged: {last} is damaged (not a complete torch checkpoint" in printed
    assert "from previous.ckpt" in printed
    summary = run.summary()
    assert summary["status"] == "finished" and summary["resumed_from"].endswith("previous.ckpt")
    assert (run.checkpoint_dir / "last.ckpt.damaged").exists() and len(summary["damaged"]) == 1
    assert not (run.path / "error.txt").exists()  # stale: this attempt succeeded
    assert len(list((run.path / "wandb").glob(f"offline-run-*-{run.run_id}"))) == 2  # the same W&B run id

    # the uninterrupted reference, in this process (the run id ignores how a run is logged)
    straight = run_job(compose_config(*TINY, *longer, "logger=none", f"run_root={tmp_path / 'b'}"), [], "b")
    assert straight["status"] == "finished"
    (reference,) = run_dirs(tmp_path / "b")
    assert reference.run_id == run.run_id

    assert curves(run) == curves(reference)  # identical, not close: CPU, same seed
    assert sorted(curves(run)) == list(range(10))

    # a finished run whose summary is cut short and whose metrics gained two bad lines: the rerun names
    # both files, rebuilds the summary from the metrics and ends with the same figures
    before = reference.summary()
    reference.summary_path.write_text(reference.summary_path.read_text()[:50])
    with reference.metrics_path.open("ab") as f:
        f.write(b'{"train/loss": 1.0}\n\xff\xfe not utf-8\n')
    run_job(compose_config(*TINY, *longer, "logger=none", f"run_root={tmp_path / 'b'}"), [], "b")
    printed = capsys.readouterr().out
    assert f"[gemmalab] damaged: {reference.summary_path} is damaged (JSONDecodeError" in printed
    assert f"{reference.metrics_path}: 2 line(s) skipped" in printed
    after = reference.summary()
    assert after["status"] == "finished" and after["damaged_metric_lines"] == 2
    assert after["val/loss"] == before["val/loss"] and after["final"] == before["final"]
    assert (reference.path / "summary.json.damaged").exists()


@pytest.mark.processes
def test_a_run_trains_in_one_process_and_a_sigterm_stops_the_sweep_resumably(tmp_path, capsys):
    long = ["trainer.max_steps=80", "trainer.ckpt_every=50", "trainer.val_every=40", "logger=none"]
    config = compose_config(*TINY, *long, f"run_root={tmp_path}")
    first = start_sweep(tmp_path, "-m", *long, "seed=0,1")
    for line in first.stdout:  # wait until seed 0 trains
        if line.startswith("[gemmalab] train seed=0"):
            break
    # the same run asked for by another process (this one) while the first trains it: refused, naming it
    with pytest.raises(RunBusy, match=f"is being trained by pid {first.pid} on "):
        run_job(config, ["seed=0"], "second")
    first.send_signal(signal.SIGTERM)  # what a scheduler sends on preemption
    out, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "1 interrupted, 1 not started" in out and "rerun the same command to resume" in err
    assert "  seed=0: interrupted\n" in err and "  seed=1: not started: the sweep was stopped\n" in err
    (run,) = run_dirs(tmp_path)
    assert run.summary()["status"] == "interrupted" and not (run.path / "lease.json").exists()
    # a report on the stopped sweep counts the job that never started (the refused second ask has its own group)
    group = out.split("[gemmalab] group ")[1].split(":")[0]
    missing = load_run_store(tmp_path, group).attrs["missing"]
    assert missing == ["seed=1: not started: the sweep was stopped"]
    stopped_at = max(run.metrics())
    # saved at the step it stopped (before the first periodic checkpoint at 50)
    assert stopped_at < 49 and load_checkpoint(run.checkpoint_dir / "last.ckpt")["global_step"] == stopped_at + 1
    (line,) = [x for x in out.splitlines() if x.startswith("[gemmalab] interrupted: seed=0")]
    if (loss := run.summary()["val/loss"]) is None:  # stopped before step 40's validation: says how far it got
        assert line.endswith(f"val/loss=none yet ({stopped_at + 1} step(s) trained, no validation after step 0)")
    else:
        assert line.endswith(f"val/loss={loss:.4f}")

    # the rerun (here in this process) resumes exactly there and ends like an uninterrupted run
    resumed = run_job(config, ["seed=0"], "rerun")
    assert resumed["status"] == "finished" and "resume seed=0 from last.ckpt" in capsys.readouterr().out
    assert resumed["group"] == group  # it stays in the sweep that started it; the rerun's members list it
    straight = run_job(compose_config(*TINY, *long, f"run_root={tmp_path / 'b'}"), [], "b")
    assert straight["status"] == "finished"
    assert curves(run) == curves(RunDir(tmp_path / "b", run.run_id))  # every step logged, once


def test_bad_values_fail_before_any_work_in_one_line(tmp_path, sweep_here, capsys):
    import torch

    cases = [  # as a user sees it: exit code 2, one line on stderr, nothing trained
        (["-m", "attn.kv_heads=1,3", "+foo=1"], "error: foo is not a known setting (allowed top-level keys: model,"),
        (
            ["-m", "+ablation=softcap", "+scale=gpu", "trainer.accelerator=cpu"],  # before a tokenizer or a cache
            "error: the run reads 615,760 training sequences of data.seq_len=32 (19,704,320 tokens",
        ),
    ]
    if not torch.cuda.is_available():  # not 24 jobs failing one by one, each leaving a run directory
        cases.append((["-m", "+ablation=softcap", "+scale=gpu"], "error: trainer.accelerator=gpu is not available"))
    for args, message in cases:
        code, _ = sweep_here(tmp_path, *args)
        result = capsys.readouterr()
        assert code == 2, (args, result.err[-2000:])
        last = result.err.strip().splitlines()
        assert len(last) == 1 and last[0].startswith(message), (args, result.err[-2000:])
        assert "[gemmalab] train" not in result.out
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attn.kv_heads=3"], "attn.kv_heads=3 must divide model.n_heads=4 (allowed: 1, 2, 4)"),
        (["softcap.attn=-1"], "softcap.attn=-1.0 is not allowed (allowed: a number > 0, or null for off)"),
        (["norm=sandwich"], "norm=sandwich is not allowed (allowed: dual, post, postln, pre)"),
        (["optim.lr=fast"], "optim.lr='fast' is not allowed (allowed: a number)"),
        (["optim.lr=nan"], "optim.lr=nan is not allowed (allowed: a finite number > 0)"),
        (["seed=-1"], "seed=-1 is not allowed (allowed: an integer from 0 to 2**32 - 1)"),
        (["logger.mode=foo"], "logger.mode='foo' is not allowed (allowed: offline, online, disabled)"),
        (["+attn.bogus=1"], "attn.bogus is not a known setting (allowed: pattern, "),
        (["attn.bogus=1"], "attn.bogus is not a known setting (allowed: pattern, "),
        (["trainer.max_steps=1.5"], "trainer.max_steps=1.5 is not allowed (allowed: an integer)"),
        (["data=files", "data.files=[no/such.txt]"], "data.files entry 'no/such.txt' is not a file"),
        (["data.tokenizer=no/such/dir"], "data.tokenizer='no/such/dir' is not allowed (allowed: bytes, bpe:N, or a"),
        (["data.tokenizer=bpe:12"], "data.tokenizer='bpe:12' is not allowed (allowed: bpe:N with N an integer >= 512)"),
        (["-m", "seed=0,1", "optim.z_loss=0,nan"], "optim.z_loss=nan is not allowed (allowed: a number >= 0)"),
        # names that become paths in the run store: one path component, never outside the store
        (["alias=/some/file"], "alias='/some/file' is not allowed (allowed: one name of letters, digits and . _ -"),
        (["alias=../../x"], "alias='../../x' is not allowed (allowed: one name of letters"),
        (["group=../../x"], "group='../../x' is not allowed (allowed: one name of letters"),
        (["group=/abs/path"], "group='/abs/path' is not allowed (allowed: one name of letters"),
        (["distill=on", "distill.teacher=alias:../x"], "distill.teacher='alias:../x' is not allowed (allowed: one"),
        (["logger=[wandb,csv]"], "logger=[wandb,csv] is not allowed (allowed: one of wandb, csv, none;"),
    ],
)
def test_every_bad_value_is_found_before_the_first_job(overrides, message):
    """What sweep.py checks before Hydra launches anything (the two cases above go through it for real)."""
    with pytest.raises(ConfigError) as err:
        flags = [o for o in overrides if o.startswith("-")]  # Hydra's rule: flags before the overrides
        validate_all_jobs([*flags, *TINY, *(o for o in overrides if o not in flags)], REPO / "conf")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.processes
@pytest.mark.scheduler
def test_under_submitit_a_failing_job_is_recorded_a_preempted_one_requeued_and_the_sweep_exits_1(tmp_path, sweep):
    """Real submitit (its local executor: each job its own process): the closing summary and the exit
    code come from what the jobs recorded, in the launching process. The job that trains gets submitit's
    preemption signal (USR2, what SLURM sends) in its 5th step: it saves that step, submitit requeues it
    (the local executor restarts it as SLURM would) and the requeued job resumes exactly there."""
    # seq_len 400000 fails as its job starts (no window that long); allow_repeat lets it past the preflight
    result = sweep(tmp_path, "-m", "hydra/launcher=submitit_local", "data.seq_len=400000,32", "logger=none",
                   "data.allow_repeat=true", *fault(4, "USR2"))  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    statuses = {m["name"]: m["status"] for m in members(tmp_path)}
    assert statuses["data.seq_len=400000 seed=0"].startswith("failed: ValueError: data.seq_len=400000 needs more than")
    assert statuses["data.seq_len=32 seed=0"] == "finished"
    assert "1 finished, 1 failed (2 job(s)" in result.stdout
    assert "  data.seq_len=400000 seed=0: failed: ValueError" in result.stderr  # the closing summary says which
    failed = [r for r in run_dirs(tmp_path) if r.summary()["status"].startswith("failed")]
    assert len(failed) == 1 and (failed[0].path / "error.txt").exists()
    group = next((tmp_path / "_sweeps").iterdir()).name
    out = report.main(["--run-root", str(tmp_path), "--group", group, "--no-wandb"])
    assert "| 2 (1 failed) |" in (out / "tables" / "runs.md").read_text()  # counted, never averaged in

    (run,) = [r for r in run_dirs(tmp_path) if r.summary()["status"] == "finished"]
    logs = "".join(p.read_text() for p in (tmp_path / "_sweeps" / group / ".submitit").glob("*/*_log.*"))
    assert "SIGUSR2 (preempted or at the time limit): saving the current step, then requeueing" in logs
    assert "Requeued job" in logs and "[gemmalab] resume data.seq_len=32 seed=0 from last.ckpt" in logs
    assert run.summary()["resumed_from"].endswith("last.ckpt")
    # saved at step 5, where the signal stopped it (the periodic checkpoints are at 3 and 6)
    assert load_checkpoint(run.checkpoint_dir / "previous.ckpt")["global_step"] == 5
    # every step logged once (the SIGTERM test above shows a stop saved this way resumes identically)
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert sorted(r["step"] for r in rows if "train/loss" in r) == list(range(6))
    assert sorted(r["step"] for r in rows if "val/loss" in r) == [0, 2, 5]


def test_an_absurd_learning_rate_diverges_cleanly_and_the_sweep_goes_on(tmp_path, capsys):
    def job(lr: str) -> dict:  # what `sweep.py -m optim.lr=100.0,1e-3 ...` runs, in this process
        config = compose_config(*TINY, f"optim.lr={lr}", "optim.warmup_steps=2", "trainer.max_steps=30",
                                "logger=none", f"run_root={tmp_path}")  # fmt: skip
        return run_job(config, [f"optim.lr={lr}"], "lrs")

    SweepDir(tmp_path, "lrs").plan(jobs=2, swept={"optim.lr"})  # as sweep.py plans it
    for lr in ("100.0", "1e-3"):  # a diverged job returns like any other: the next one runs
        job(lr)
    by_name = {r.summary()["name"]: r for r in run_dirs(tmp_path)}
    diverged, healthy = by_name["optim.lr=100.0 seed=0"], by_name["optim.lr=1e-3 seed=0"]
    summary = diverged.summary()
    step = summary["diverged_step"]
    assert summary["diverged"] and summary["status"] == f"diverged at step {step}" and 0 < step < 30
    assert sorted(s for s, m in diverged.metrics().items() if "train/loss" in m) == list(range(step))  # kept
    assert summary["attn/max_logit"] > 1e4  # Wortsman et al.: runs whose max logit passes 1e4 diverge
    assert summary["val/loss_step"] is None or 0 < summary["val/loss_step"] <= step  # never the initial loss
    for key in ("stability/loss_spikes", "stability/grad_norm_var", "stability/grad_norm_cv", "val/loss_init"):
        assert key in summary
    assert healthy.summary()["status"] == "finished" and not healthy.summary()["diverged"]
    assert closing_summary(SweepDir(tmp_path, "lrs")) == 0  # a diverged run is a result, not an error
    assert "1 finished, 1 diverged (2 job(s)" in capsys.readouterr().out
    for lr in ("100.0", "1e-3"):  # asked again: the run store alone decides
        assert job(lr)["status"] == by_name[f"optim.lr={lr} seed=0"].summary()["status"]
    assert capsys.readouterr().out.count("[gemmalab] skip") == 2  # diverging again would teach nothing


def test_a_student_whose_teacher_never_finished_fails_alone(tmp_path, sweep_here, capsys):
    code, _ = sweep_here(tmp_path, "-m", "distill=on", "distill.teacher=alias:nobody", "seed=0,1", "logger=none")
    assert code == 1 and "2 failed (2 job(s)" in capsys.readouterr().out
    assert [m["status"] for m in members(tmp_path)] == [
        "failed: distill.teacher='alias:nobody' names no finished run (allowed: none yet)"
    ] * 2


# What SLURM sets for a job of one task on one node (hydra/launcher=slurm with tasks_per_node=1).
ONE_TASK_SLURM_JOB = {
    "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "gemmalab", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1",
    "SLURM_NODELIST": "localhost",
}  # fmt: skip


@pytest.mark.processes
def test_ddp_sweeps_train_each_job_once_on_both_ranks_stop_together_and_match_one_process(tmp_path, sweep):
    """Two gloo ranks per job, against one process with the same global batch (data.batch_size=4: two
    sequences per rank). First torchrun starts both ranks, each running sweep.py: rank 0 alone gets SIGTERM
    after step 3 and both stop after step 4 (they agree at every step), saved. Then the rerun under
    Lightning's launcher (it re-runs sweep.py for rank 1, which joins the job), inside a one-task SLURM job
    as on a cluster node: seed 0 resumes, seed 1 trains."""
    ddp = ["-m", "seed=0,1", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    command, env = sweep_command(tmp_path / "ddp", *ddp, "logger=none", *fault(3, "TERM"))
    command[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    stopped = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode != 0 and "[gemmalab] interrupted: seed=0" in stopped.stdout, stopped.stderr[-3000:]
    assert "1 interrupted, 1 not started (2 job(s)" in stopped.stdout  # printed once: by rank 0
    assert stopped.stdout.count("[gemmalab] group ") == 1
    (run,) = run_dirs(tmp_path / "ddp")
    assert load_checkpoint(run.checkpoint_dir / "last.ckpt")["global_step"] == 4 and max(run.metrics()) == 3

    result = sweep(tmp_path / "ddp", *ddp, env=ONE_TASK_SLURM_JOB)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[gemmalab] resume seed=0 from last.ckpt" in result.stdout
    assert result.stdout.count("[gemmalab] finished:") == 2 and result.stdout.count("[gemmalab] group ") == 1
    assert [j["status"] for j in members(tmp_path / "ddp", result)] == ["finished", "finished"]
    runs = {r.summary()["name"]: r for r in run_dirs(tmp_path / "ddp")}
    assert sorted(runs) == ["seed=0", "seed=1"]
    # one W&B run for the job, holding what the run store holds
    assert assert_wandb_matches_run_store(runs["seed=1"].path, runs["seed=1"].metrics()) >= 3 * 6

    one = run_job(compose_config(*TINY, "logger=none", f"run_root={tmp_path / 'one'}"), [], "one")
    (reference,) = run_dirs(tmp_path / "one")
    # Same samples (seed 0 stopped and resumed), same arithmetic up to the order of reductions (two
    # half-batch gradients averaged by all-reduce, against one mean over the batch): float32 rounding,
    # ~1e-7 relative per step, compounding over 6 AdamW steps; 1e-5 relative bounds it with room and is
    # far below any difference a switch makes.
    ddp_metrics, one_metrics = runs["seed=0"].metrics(), reference.metrics()
    assert sorted(ddp_metrics) == sorted(one_metrics) == list(range(6))
    for step, values in one_metrics.items():
        for key in ("train/loss", "train/grad_norm", "val/loss"):
            if key in values:
                assert ddp_metrics[step][key] == pytest.approx(values[key], rel=1e-5), (step, key)
    assert runs["seed=0"].summary()["val/loss"] == pytest.approx(one["val/loss"], rel=1e-5)


def test_local_jobs_that_run_at_once_share_the_cores(monkeypatch):
    """Each job takes cores / (jobs at once) torch threads: joblib runs n_jobs at once, submitit's local
    executor every job of the sweep, the basic launcher one."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    for launcher, at_once in [
        ({"_target_": local}, 4),
        ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, 2),
        ({"n_jobs": -1}, 4),  # one per core, but only 4 jobs
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 1),
    ]:
        assert jobs_at_once(OmegaConf.create(launcher), jobs=4) == at_once, launcher


def test_ctrl_c_while_composing_starts_nothing_and_says_so(tmp_path, sweep_here, capsys, monkeypatch):
    """A real SIGINT to this process while the preflight composes 200 jobs: sent as it takes the 50th job's
    identity, so it lands in the middle of composing however fast or slow the machine is."""
    from gemmalab.runs import preflight

    calls = []

    def identity_then_ctrl_c(config: dict) -> str:
        calls.append(1)
        if len(calls) == 50:
            os.kill(os.getpid(), signal.SIGINT)
        return run_identity(config)

    monkeypatch.setattr(preflight, "run_identity", identity_then_ctrl_c)
    # Python's own Ctrl-C, as a user's shell process has it: in the full suite under pytest 9.2 SIGINT was
    # found ignored here, left so by an earlier test (not yet found; Lightning's fit, for one, sets SIG_IGN on a
    # KeyboardInterrupt and never restores it), and then the jobs would train
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, _ = sweep_here(tmp_path, "-m", "seed=range(0,200)", "logger=none")
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGINT and "interrupted while composing the jobs: nothing started" in err
    assert "Traceback" not in err and not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_cut_members_line_loses_nothing_after_it_and_a_job_that_recorded_nothing_fails_the_sweep(tmp_path, capsys):
    sweep = SweepDir(tmp_path / "a b", "g")  # a run_root with a space: the printed command quotes it
    sweep.plan(jobs=3, swept={"seed"})
    sweep.record({"run_id": "r0", "name": "seed=0", "overrides": ["seed=0"], "status": "finished"})
    with sweep.members_path.open("ab") as f:
        f.write(b'{"run_id": "r1", "name": "seed=1", "overrides": ["se')  # a kill in the middle of a line
    sweep.record({"run_id": "r2", "name": "seed=2", "overrides": ["seed=2"], "status": "finished"})
    assert [m["name"] for m in sweep.latest_members()] == ["seed=0", "seed=2"]  # the next line is whole
    assert closing_summary(sweep) == 1  # seed=1's only line is lost: the sweep does not pass as complete
    out, err = capsys.readouterr()
    assert "1 of 3 job(s) recorded nothing (never started, or every line lost)" in err
    assert f"--run-root '{tmp_path / 'a b'}'" in out


def test_a_run_directory_removed_mid_training_is_recorded_failed_and_the_sweep_ends_with_its_summary(
    tmp_path, sweep_here, capsys
):
    gone = ["+callbacks.gone._target_=tests.faults.RemoveRunDirAtStep", "+callbacks.gone.step=2"]
    code, group = sweep_here(tmp_path, "-m", "seed=0,1", "logger=none", *gone)
    out, err = capsys.readouterr()
    assert code == 1 and "2 failed (2 job(s)" in out  # the closing summary, with the true exit code
    statuses = [m["status"] for m in SweepDir(tmp_path, group).latest_members()]
    assert all(s.startswith("failed: FileNotFoundError") for s in statuses), statuses
    assert "could not write" in err and "Traceback" not in err


def test_a_sigterm_during_validation_loses_no_validation_point(tmp_path, sweep_here, capsys):
    """A real SIGTERM in the middle of the validation after step 3 (4 batches): the pass completes and is
    logged, the fit stops after the next step; the rerun resumes and every value equals an uninterrupted run."""
    during = ["+callbacks.term._target_=tests.faults.SignalDuringValidation", "+callbacks.term.step=3"]
    code, _ = sweep_here(tmp_path / "a", "-m", "logger=none", "data.val_batches=4", *during)
    assert code == 128 + signal.SIGTERM, capsys.readouterr().err[-2000:]
    (run,) = run_dirs(tmp_path / "a")
    assert run.summary()["status"] == "interrupted" and "val/loss" in run.metrics()[2]  # step 3's validation
    assert sweep_here(tmp_path / "a", "logger=none", "data.val_batches=4")[0] == 0  # the rerun resumes
    assert sweep_here(tmp_path / "b", "logger=none", "data.val_batches=4")[0] == 0  # uninterrupted
    assert curves(run) == curves(RunDir(tmp_path / "b", run.run_id))


@pytest.mark.processes
def test_a_joblib_worker_killed_leaves_a_closing_summary_that_names_what_was_lost(tmp_path):
    """`kill -9` of one joblib worker while two train: joblib gives up on the whole pool (the sibling goes
    too) and the third job never starts; the sweep still ends with its summary and a non-zero exit."""
    first = start_sweep(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2",
                        "trainer.max_steps=3000", "data.allow_repeat=true", "logger=none")  # fmt: skip
    deadline = time.time() + 120
    while len(leases := list(tmp_path.glob("*/lease.json"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    os.kill(json.loads(leases[0].read_text())["pid"], signal.SIGKILL)  # as the out-of-memory killer would
    out, err = first.communicate(timeout=120)
    assert first.returncode == 1 and "[gemmalab] group " in out, err[-2000:]
    assert "(its process ended without recording how: killed?)" in err
    assert "job(s) recorded nothing (never started, or every line lost)" in err or "lost (3 job(s)" in out


def hydra_says(monkeypatch, capsys, *args: str, env: dict | None = None) -> tuple[int, str, str]:
    """sweep.py's command line in this process, as a plain Hydra app gets it: (exit code, stdout, stderr)."""
    import sweep as sweep_script

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", ["sweep.py", *args])
    try:
        code = sweep_script.launch(sys.argv)
    except SystemExit as exit:  # Hydra's --help and argparse's --version end the process themselves
        code = exit.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, printed",
    [
        (["--cfg", "job"], "optim:\n  lr: 0.003"),
        (["--cfg", "hydra"], "hydra:\n  run:\n    dir: ${run_root}/_single/${group}"),
        (["-c", "all", "--resolve"], "hydra:\n  run:\n    dir: runs/_single/None"),
        (["-c", "job", "--resolve"], "  vocab_size: 256"),
        (["--package", "model", "--cfg", "job"], "# @package model\nvocab_size:"),
        (["--info", "defaults"], "Defaults List"),
        (["--config-name", "config", "--cfg", "job", "seed=7"], "seed: 7"),
        (["-cd", str(REPO / "conf"), "--cfg", "job"], "norm: dual"),
        (["--help"], "== Configuration groups =="),
        (["--hydra-help"], "== Flags =="),
        (["--version"], ""),  # argparse prints Hydra's version to stdout: captured below
        (["-sc", "install=bash"], "hydra_bash_completion()"),
    ],
)
def test_every_hydra_flag_works_as_in_a_plain_hydra_app(args, printed, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # the default run_root, runs/, is here: nothing may appear in it
    monkeypatch.setattr(sys, "path", [str(REPO), *sys.path])
    code, out, _ = hydra_says(monkeypatch, capsys, *args)
    assert code == 0 and printed in out and (args != ["--version"] or out.startswith("Hydra 1.")), out[-1500:]
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written


def test_completion_lists_gemmalabs_groups_and_keys(monkeypatch, capsys):
    for line, expected in [("python sweep.py kv=", "kv=gqa kv=mha kv=mqa"),
                           ("python sweep.py trainer.max_", "trainer.max_steps=")]:  # fmt: skip
        code, out, _ = hydra_says(monkeypatch, capsys, "-sc", "query=bash", env={"COMP_LINE": line})
        assert code == 0 and expected in out, out


def test_sweeps_need_multirun_and_glob_sweeps_compose(monkeypatch, capsys, tmp_path):
    for args, message in [
        (["seed=0,1"], "error: seed=0,1 is a sweep, but there is no --multirun (allowed: add -m to sweep over it;"),
        (["+ablation=softcap"], "error: +ablation=softcap is a study, which is a sweep (allowed: python sweep.py -m"),
    ]:
        code, _, err = hydra_says(monkeypatch, capsys, *args, f"run_root={tmp_path}")
        assert code == 2 and err.strip().splitlines()[-1].startswith(message), err[-1500:]
    plan = validate_all_jobs(["-m", *TINY, "kv=glob(m*)"], REPO / "conf")
    assert plan.jobs == 2 and plan.swept == {"kv"}  # mha, mqa


def test_a_plain_run_and_its_resume_print_no_accelerator_banner_or_resume_warning(tmp_path, sweep_here, capfd,
                                                                                   recwarn):  # fmt: skip
    stop = [f"+callbacks.stop.{k}" for k in ("_target_=tests.faults.SignalAtStep", "step=3", "signal=TERM")]
    assert sweep_here(tmp_path, "logger=none", *stop)[0] == 128 + signal.SIGTERM  # saved at step 4
    assert sweep_here(tmp_path, "logger=none")[0] == 0  # resumed there
    out, err = capfd.readouterr()
    assert "[gemmalab] resume " in out and " from last.ckpt" in out
    for line in ("GPU available: False", "TPU available: False", "`Trainer.fit` stopped", "not resumable"):
        assert line not in out + err, line
    assert not [w for w in recwarn if "dataloader is not resumable" in str(w.message)]


def test_help_names_every_group_that_is_added_with_a_plus(monkeypatch, capsys):
    """The groups --help says take `+` are exactly those the defaults list leaves out (+group=option)."""
    tree = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())
    chosen = {next(iter(entry)) for entry in tree["defaults"] if isinstance(entry, dict)}
    groups = {p.name for p in (REPO / "conf").iterdir() if p.is_dir() and p.name != "hydra"}
    code, out, _ = hydra_says(monkeypatch, capsys, "--help")
    assert code == 0 and "Groups without a default are added with +" in out
    assert set(re.findall(r"\+(\w+)=", out)) == groups - chosen


@pytest.mark.parametrize("argv", [["--help"], ["norm=bogus"], ["-m", "seed=0,1", "trainer.max_steps=-1"]])
def test_help_and_refusals_load_neither_lightning_nor_wandb(argv, tmp_path):
    """What trains loads in the job: `--help` and a refused override answer without Lightning or W&B (seconds
    of imports on every command: benchmarks/startup.py times it)."""
    probe = ("import sys, runpy; sys.argv = ['sweep.py', *sys.argv[1:]]\n"
             "try:\n    runpy.run_path('sweep.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "heavy = {'lightning', 'wandb', 'torchmetrics'}\n"
             "print('loaded:', sorted({m.split('.')[0] for m in sys.modules} & heavy))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, *argv, f"run_root={tmp_path}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert "loaded: []" in done.stdout, done.stdout[-500:] + done.stderr[-1500:]
