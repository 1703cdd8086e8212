"""One job of a sweep = one run directory: the job's process keeps the books (leases the run, skips a
finished one, sets damaged files aside, picks the checkpoint to resume from, records the sweep member),
writes what the attempt trains into the run directory, and has the run trained there: in this process,
or, where other processes must train it (DDP ranks started by Lightning's launcher), by
`python -m gemmalab.runs.train_run <run_dir>` in a process of its own (runs/train_run.py).

Validation happens first, so a bad config costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from gemmalab.errors import ConfigError, RunBusy
from gemmalab.train.cluster import ranks_started_outside
from gemmalab.train.distill import check_teacher_compatible

from .aliases import resolve_teacher, teacher_checkpoint, teacher_config, write_alias
from .identity import labels, run_identity, run_name
from .preflight import check_same_data
from .requeue import deferred_requeue, requeue_if_asked
from .spec import JobSpec
from .stops import exit_if_orphaned
from .store import FINISHED, INTERRUPTED, NOT_STARTED, RUNNING, STARTED, RunDir, readable_summary
from .sweep_dir import SweepDir
from .train_run import train_run, written_or_said


def run_job(config: dict[str, Any], overrides: list[str], group: str) -> dict[str, Any] | None:
    """Train one run of the sweep `group` (or skip / resume it); returns its summary, or None when the sweep
    was stopping and the job never started. A bad config or a run another process trains raises
    (ConfigError, RunBusy) before any work, recorded as the job's failure."""
    sweep = SweepDir(config["run_root"], group)
    job = {"name": run_name(overrides, config["seed"], sweep.swept()), "overrides": overrides, "labels": labels(config)}
    if sweep.stop_signal() is not None:
        sweep.record({**job, "status": NOT_STARTED})
        exit_if_orphaned(sweep)
        return None
    try:
        spec = JobSpec.from_config(config)
        if spec.distill.enabled:
            pin_teacher(config, Path(config["run_root"]))
        run = RunDir(config["run_root"], run_identity(config))
        with deferred_requeue(run), run.lease(group):  # one process at a time trains a run
            summary = attempt(run, spec, config, {**job, "run_id": run.run_id}, sweep)
    except (ConfigError, RunBusy) as err:  # a teacher alias that never finished; a run another process trains
        sweep.record({**job, "status": f"failed: {err}"})
        raise
    except OSError as err:  # the run store failing under the job (disk full, its directory removed)
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        summary = {"status": f"failed: {type(err).__name__}: {err}".splitlines()[0]}
        written_or_said(lambda: sweep.record({**job, **summary}), f"{sweep.members_path}")
        return summary
    if summary["status"] == INTERRUPTED:
        requeue_if_asked(run)  # a scheduler's requeue: submitit requeues the job, which resumes from this step
        sweep.request_stop(sweep.stop_signal() or signal.SIGTERM)  # else a stop: the sweep starts no further job
        exit_if_orphaned(sweep)
    return summary


def attempt(run: RunDir, spec: JobSpec, config: dict[str, Any], member: dict[str, Any], sweep: SweepDir) -> dict:
    """Under the run's lease: skip it if done, else start an attempt and have the run trained."""
    damage = run.repair_summary()
    check_same_data(run, spec.data, member["name"])  # never mix two datasets in one run
    if run.is_done() and not spec.trainer.fast_dev_run:  # a fast_dev_run (its own identity) runs every time
        summary = run.summary()
        if config.get("alias") and summary["status"] == FINISHED:
            write_alias(run.path.parent, config["alias"], run.run_id)
        print(f"[gemmalab] skip {member['name']}: {summary['status']} ({run.path})")
        sweep.record({**member, "status": summary["status"], "skipped": True})
        return summary
    sweep.record({**member, "status": STARTED})
    start_attempt(run, config, member["name"], sweep.group, damage)
    if needs_own_process(spec):
        subprocess.run([sys.executable, "-m", "gemmalab.runs.train_run", str(run.path)], check=False)
        status = readable_summary(run).get("status", RUNNING)
        if status == RUNNING:
            status = f"failed: the process training {run.path} ended without a status (killed, out of memory?)"
    else:
        status = train_run(run)
        # The fit's objects form reference cycles (Trainer <-> module <-> loggers) that hold the token cache's
        # memory maps and W&B's files; freed now, not at some later full collection (+3.7 MB and ~0.3 open
        # files per job over a 40-job W&B sweep otherwise).
        gc.collect()
    summary = readable_summary(run)
    if summary.get("status") != status:  # the training process could not record how it ended
        summary["status"] = status
        written_or_said(lambda: run.update_summary(status=status), f"{run.summary_path}")
    if config.get("alias") and summary["status"] == FINISHED:
        write_alias(run.path.parent, config["alias"], run.run_id)
    if summary["status"] == FINISHED:
        run.error_path.unlink(missing_ok=True)  # from an earlier attempt that failed
    written_or_said(lambda: sweep.record({**member, "status": summary["status"]}), f"{sweep.members_path}")
    print(f"[gemmalab] {summary['status']}: {member['name']}  {closing_loss(summary, spec)}")
    return summary


def closing_loss(summary: dict[str, Any], spec: JobSpec) -> str:
    """The job's closing figure: val/loss, where it stood, and for overfit_batches whether it overfits."""
    loss, step, init = summary.get("val/loss"), summary.get("val/loss_step"), summary.get("val/loss_init")
    if loss is None:  # no validation after step 0's: stopped before the first, or validation off
        steps = summary.get("trained_steps")
        return "val/loss=none yet" + (f" ({steps} step(s) trained, no validation after step 0)" if steps else "")
    shown = f"val/loss={loss:.4f}"
    if summary.get("diverged") and step:
        return f"{shown} (step {step}, the last before it diverged)"
    if spec.trainer.overfit_batches and init:
        verdict = "it overfits them" if loss < init / 2 else "it does not overfit them: is the model or data broken?"
        return (f"{shown} on the {spec.trainer.overfit_batches} batch(es) it trains on (trainer.overfit_batches), "
                f"from {init:.4f} at step 0: {loss / init:.0%} of it, {verdict}")  # fmt: skip
    return shown


def needs_own_process(spec: JobSpec) -> bool:
    """A fit on more than one device (or one that may be: devices=auto, a DDP strategy), whose ranks
    Lightning's launcher starts by re-running the training process's command line for ranks 1..N-1: that
    command line must name the run (`python -m gemmalab.runs.train_run <run_dir>`). Ranks started outside
    (torchrun, SLURM tasks) train beside this process instead (train_run.py announce)."""
    cfg = spec.trainer
    one_device = cfg.devices == 1 and cfg.num_nodes == 1 and not cfg.strategy.startswith("ddp")
    return not one_device and ranks_started_outside() is None


def pin_teacher(config: dict[str, Any], root: Path) -> None:
    """Resolve a student's teacher (an alias, a run, a checkpoint) and record which run and checkpoint it
    is in the config: the student's identity follows the teacher, wherever its run store lies."""
    teacher = resolve_teacher(root, config["distill"]["teacher"])
    check_teacher_compatible(teacher_config(teacher), config)
    checkpoint = teacher_checkpoint(teacher)
    config["distill"] = {**config["distill"], "teacher": teacher,
                         "teacher_run": f"{checkpoint.parent.parent.name}/{checkpoint.name}"}  # fmt: skip


def start_attempt(run: RunDir, config: dict[str, Any], name: str, group: str, damage: list[str]) -> None:
    """Create the run directory, set damaged checkpoints aside, pick the checkpoint to resume from and write
    what this attempt trains (attempt.json: every process that trains the run reads it there): `group` is the
    sweep that runs this attempt (whose stop it obeys), `run_group` the one the run belongs to."""
    run.create(yaml.safe_dump(config, sort_keys=False))
    run.requeue_path.unlink(missing_ok=True)  # a requeued job's mark, acted on
    damage = damage + run.repair_checkpoints()
    resume_from = run.last_checkpoint()
    for line in damage:
        print(f"[gemmalab] damaged: {line}")
    before = run.summary() or {}
    # a resumed run stays in the group that started it (its W&B group too); the new sweep lists it as a member
    run_group = before.get("group", group) if resume_from else group
    run.update_summary(
        status="running", run_id=run.run_id, name=name, group=run_group,
        resumed_from=str(resume_from) if resume_from else None, damaged=before.get("damaged", []) + damage,
    )  # fmt: skip
    how = f"resume {name} from {resume_from.name}" if resume_from else f"train {name}"
    scratch = " from scratch (no intact checkpoint)" if damage and not resume_from else ""
    print(f"[gemmalab] {how}{scratch} -> {run.path}")
    run.write_attempt({"config": config, "name": name, "group": group, "run_group": run_group, "started": time.time(),
                       "resume_from": str(resume_from) if resume_from else None})  # fmt: skip
