"""Hydra entry point: one job = one training run.

    python sweep.py                                          # one run, embedded defaults
    python sweep.py -m attn.pattern=alt,full norm=dual,pre   # a 2x2 ablation
    python sweep.py -m +ablation=softcap                     # a named study from ablations/

Every job of a multirun is validated before the first one trains; a job that fails while
training is recorded with its reason and the others still run. SIGTERM or Ctrl-C stops the
running job after its current step (saved), starts no further job, says what was left, and
exits non-zero; rerunning the same command resumes; jobs in joblib / submitit worker processes
stop too, and stop when this process dies. A submitit job that is preempted or reaches its time
limit saves its step the same way before submitit requeues it (runs/requeue.py). The closing
summary and the exit code are read from the sweep's members.jsonl, so they count what every job
recorded. Under DDP, ranks 1..D-1 (re-runs of this script by Lightning's launcher, or ranks that
torchrun or SLURM started beside rank 0) train the jobs their rank 0 hands over and do nothing else
(runs/ranks.py).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gemmalab.errors import ConfigError, RunBusy
from gemmalab.runs.console import quiet
from gemmalab.runs.hydra_callbacks import ended
from gemmalab.runs.identity import run_name
from gemmalab.runs.job import follow_rank_zero, run_job
from gemmalab.runs.preflight import validate_all_jobs
from gemmalab.runs.ranks import follows_rank_zero, job_ended, sweep_ended
from gemmalab.runs.requeue import defer_submitit_requeue, requeue_if_asked
from gemmalab.runs.store import INTERRUPTED, NOT_STARTED, latest_members, record_sweep_member
from gemmalab.runs.watchdog import LAUNCHER, exit_if_orphaned, stop_file, stop_seen
from gemmalab.schema import SWEEP_ID, new_sweep_id, register
from gemmalab.train.fit import stop_requested

register()
sweep: dict = {"jobs": 1, "swept": None, "stop": None}
CONF = Path(__file__).resolve().parent / "conf"  # absolute: main() also runs where sweep.py is imported


def stop_after_this_step(signum: int, _frame: object) -> None:
    """SIGTERM (a scheduler's preemption) or SIGINT: the running fit ends after its current step, which
    is saved (train/fit.py StopOnRequest); no further job starts."""
    if sweep["stop"] is None:
        print(f"\n[gemmalab] {signal.Signals(signum).name}: saving the current step, then stopping", file=sys.stderr)
    sweep["stop"] = sweep["stop"] or signum
    stop_requested.set()
    stop_file(os.environ[SWEEP_ID]).touch()  # for jobs running in worker processes (runs/watchdog.py)


@hydra.main(config_path=str(CONF), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if follows_rank_zero():  # a task > 0 of a multi-task submitit job: its rank 0 keeps the books
        follow_rank_zero(whole_sweep=False)
        return
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    group = cfg.group or Path(hydra_cfg.sweep.dir if multirun else hydra_cfg.run.dir).name
    overrides = list(hydra_cfg.overrides.task)
    if multirun and (at_once := jobs_at_once(hydra_cfg.launcher)) > 1:  # they share the cores, not each take all
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // at_once))
    job = {"name": run_name(overrides, cfg.seed, sweep["swept"]), "overrides": overrides}
    defer_submitit_requeue()  # in a submitit job: its preemption signal saves the step before requeueing
    try:
        if sweep["stop"] is not None or stop_seen():  # a worker process watches its launcher (runs/watchdog.py)
            record_sweep_member(cfg.run_root, group, {**job, "status": NOT_STARTED})
            requeue_if_asked()
            exit_if_orphaned()
            return
        summary = run_job(OmegaConf.to_container(cfg, resolve=True), overrides, group, sweep["swept"])
    except (ConfigError, RunBusy) as err:  # a teacher alias that never finished; a run another process trains
        print(f"error: {err}", file=sys.stderr)
        if not multirun:
            sys.exit(2 if isinstance(err, ConfigError) else 3)
        record_sweep_member(cfg.run_root, group, {**job, "status": f"failed: {err}"})
        return
    finally:
        job_ended()  # ranks > 0 started outside: told there is nothing to train, unless handed this job
    if summary["status"] == INTERRUPTED:
        requeue_if_asked()  # submitit requeues the job, which resumes from the step just saved
        sweep["stop"] = sweep["stop"] or signal.SIGTERM
        exit_if_orphaned()


def jobs_at_once(launcher: DictConfig) -> int:
    """How many jobs of the sweep train on this machine at the same time: joblib's n_jobs (-1: one per
    core); every job for submitit's local executor, which starts them all at once; else one."""
    cores = os.cpu_count() or 1
    if "n_jobs" in launcher:
        at_once = cores if launcher.n_jobs == -1 else launcher.n_jobs
    elif launcher.get("_target_", "").endswith("submitit_launcher.LocalLauncher"):
        at_once = sweep["jobs"]
    else:
        return 1
    return min(at_once, sweep["jobs"], cores)


def closing_summary(root: Path, group: str, stop: int | None) -> int:
    """What every job of the sweep recorded, and the exit code: 0 when every job finished or diverged
    (a result), 1 when one failed, 128 + the signal when the sweep was stopped."""
    jobs = latest_members(root, group)
    statuses = [j["status"] for j in jobs]
    kinds = {"finished": "finished", "diverged": "diverged", "failed": "failed", INTERRUPTED: INTERRUPTED,
             NOT_STARTED: "not started"}  # fmt: skip
    counts = {k: sum(s.startswith(k) for s in statuses) for k in kinds}
    print(f"\n[gemmalab] group {group}: " + ", ".join(f"{n} {kinds[k]}" for k, n in counts.items() if n)
          + f" ({len(jobs)} job(s); runs in {root.resolve()})")  # fmt: skip
    for job in jobs:
        if not job["status"].startswith(("finished", "diverged")):
            print(f"  {job['name']}: {job['status']}", file=sys.stderr)
    print(f"[gemmalab] sweep members: {root / '_sweeps' / group / 'members.jsonl'}")
    print(f"[gemmalab] tables: python analysis/report.py --group {group} --run-root {root}")
    if counts[INTERRUPTED] or counts[NOT_STARTED]:
        print("[gemmalab] stopped: rerun the same command to resume the interrupted run and the rest", file=sys.stderr)
        return 128 + (stop or signal.SIGTERM)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    if follows_rank_zero():  # a DDP rank > 0: train the jobs rank 0 hands over, nothing else
        quiet()
        follow_rank_zero(whole_sweep=True)
        sys.exit(0)
    # Own W&B service per sweep process: one inherited from a parent process would outlive a killed
    # job and keep holding its run id, so the job could not resume into the same W&B run.
    os.environ.pop("WANDB_SERVICE", None)
    os.environ[SWEEP_ID] = new_sweep_id()  # this sweep's group; its workers inherit it
    os.environ[LAUNCHER] = f"{socket.gethostname()}:{os.getpid()}"  # whom they watch (runs/watchdog.py)
    quiet()
    try:
        try:
            sweep["jobs"], sweep["swept"] = validate_all_jobs(sys.argv[1:], config_dir=CONF)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop_after_this_step)
        main()
    finally:
        stop_file(os.environ[SWEEP_ID]).unlink(missing_ok=True)
        sweep_ended()  # ranks > 0 started outside stop waiting for jobs
    if ended:  # set by the SweepEnd callback in this, the launching, process
        sys.exit(closing_summary(Path(ended["run_root"]), ended["group"], sweep["stop"]))
