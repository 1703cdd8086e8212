"""When a training process stops early, decided from files every process can see (a shared filesystem
included), checked at the end of every step (train/lightning_fixes.py StopOnRequest):

- the sweep was asked to stop: sweep.py's SIGTERM / SIGINT handler writes the sweep's stop file;
- the scheduler asked this run's job to requeue: a mark in the run directory (runs/requeue.py);
- whoever started this process on this host is gone: the launching sweep.py, for a local worker
  (joblib, submitit_local), which would otherwise train on as an orphan; the job's process, for a
  run trained in a process of its own. A SLURM job belongs to the scheduler and watches nobody.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from .lease import pid_alive, process_started
from .store import RunDir
from .sweep_dir import SweepDir


def launcher_of_this_worker(sweep: SweepDir) -> tuple[int, str | None] | None:
    """The sweep.py that launched this job (pid, when it started) when this process is one of its local workers."""
    launcher = sweep.info()["launcher"]
    if not launcher or launcher["host"] != socket.gethostname() or launcher["pid"] == os.getpid():
        return None
    if os.environ.get("SLURM_JOB_ID", launcher.get("slurm_job")) != launcher.get("slurm_job"):
        return None  # a job of its own that SLURM started: it outlives the shell that submitted it
    return launcher["pid"], launcher.get("started")


def stop_check(sweep: SweepDir, run: RunDir, parent: int | None = None) -> Callable[[], bool]:
    """Whether the run's fit should stop after the current step: two stats and a pid check or two."""
    watched = [launcher_of_this_worker(sweep), parent and (parent, process_started(parent))]
    watched = [process for process in watched if process]

    def should_stop() -> bool:
        gone = not all(pid_alive(pid, started) for pid, started in watched)
        return sweep.stop_path.exists() or run.requeue_path.exists() or gone

    return should_stop


def exit_if_orphaned(sweep: SweepDir) -> None:
    """A worker whose launcher is gone ends its process once its job is saved and recorded: no one will
    collect its result, and an idle pool worker would otherwise linger for minutes."""
    if (launcher := launcher_of_this_worker(sweep)) is not None and not pid_alive(*launcher):
        os._exit(1)
