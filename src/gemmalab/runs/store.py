"""The local run store: one directory per run identity, written so that nothing logged is lost.

    <root>/<run_id>/config.yaml     the resolved config
    <root>/<run_id>/metrics.jsonl   every logged metric, one JSON line per logging call, append-only
    <root>/<run_id>/summary.json    status (running, finished, diverged at step N, failed: reason), final values
    <root>/<run_id>/checkpoints/    last.ckpt and previous.ckpt (the one before), for resuming
    <root>/<run_id>/wandb/          the W&B run files (offline mode)
    <root>/<run_id>/claim.json      while a process trains the run: its host, pid and start (RunDir.claim)
    <root>/_sweeps/<group>/members.jsonl   which runs a sweep asked for: a line when a job starts, one when it ends

A resumed run logs again the steps after its checkpoint; readers keep the last value
written for each (step, metric), so a resumed run reads exactly like an uninterrupted one.

Damage (a file cut short, overwritten or not what it should be) is named, never read as if
whole: a damaged summary or checkpoint is set aside as <name>.damaged[-k] (kept, never read
again) by the job that would use it, and damaged metric lines are skipped and counted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from gemmalab.errors import DamagedFile, RunBusy
from gemmalab.train.checkpoints import PREVIOUS_CHECKPOINT, checkpoint_problem

FINISHED = "finished"
RUNNING = "running"
INTERRUPTED = "interrupted"  # stopped by a signal after saving its step; the rerun resumes it
NOT_STARTED = "not started: the sweep was stopped"
TERMINAL_PREFIXES = (FINISHED, "diverged")  # rerunning these would only repeat them


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name unique to this writer, flush it to disk, then rename over `path`:
    a reader (or a kill) sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def set_aside(path: Path) -> Path:
    """Rename a damaged file to <name>.damaged (or .damaged-k) beside it; returns the new path."""
    aside, k = path.with_name(path.name + ".damaged"), 0
    while aside.exists():
        k += 1
        aside = path.with_name(f"{path.name}.damaged-{k}")
    os.replace(path, aside)
    return aside


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": valid JSON, and readers turn them back into floats
    return value


# A claim by a process on another host counts as abandoned once this old: its liveness cannot be checked.
CLAIM_LEASE_HOURS = 24.0


class RunDir:
    def __init__(self, root: str | Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = Path(root) / run_id
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoint_dir = self.path / "checkpoints"

    def create(self, config_yaml: str) -> None:
        """Make the directory and write the config once: a resumed run (same identity) may differ
        only in how it is logged, and the config it started with stays."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            write_atomic(self.config_path, config_yaml)

    def summary(self) -> dict[str, Any] | None:
        """The run's summary, None before it has one; raises DamagedFile when it is not readable JSON."""
        if not self.summary_path.exists():
            return None
        try:
            summary = json.loads(self.summary_path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DamagedFile(f"{self.summary_path} is damaged ({type(err).__name__}: {err})") from None
        if not isinstance(summary, dict) or "status" not in summary:
            raise DamagedFile(f"{self.summary_path} is damaged (not a run summary: no status)")
        return summary

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        summary = {**(self.summary() or {}), **fields}
        write_atomic(self.summary_path, json.dumps(summary, indent=2, sort_keys=True, default=str))
        return summary

    def is_done(self) -> bool:
        status = (self.summary() or {}).get("status", "")
        return status.startswith(TERMINAL_PREFIXES)

    def checkpoints(self) -> list[Path]:
        """Checkpoints to resume from, newest first (train/fit.py keeps the one before last.ckpt)."""
        return [p for p in (self.checkpoint_dir / n for n in ("last.ckpt", PREVIOUS_CHECKPOINT)) if p.exists()]

    def last_checkpoint(self) -> Path | None:
        return next(iter(self.checkpoints()), None)

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the run while training it: claim.json (host, pid, start, SLURM job) is checked and written
        under a file lock; a second process asked for the same run gets RunBusy naming the holder. A claim
        whose process is gone (same host), older than CLAIM_LEASE_HOURS (another host) or left by this
        SLURM job before it was requeued is taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        path, lock = self.path / "claim.json", FileLock(str(self.path / "claim.json.lock"))
        mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "job": _slurm_job()}
        with lock:  # check and take under one lock: of two processes asking at once, one gets the run
            holder = _read_claim(path) if path.exists() else None
            if holder is not None and _alive(holder):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
                raise RunBusy(f"run {self.run_id} ({self.path}) is being trained by pid {holder['pid']} on "
                              f"{holder['host']} since {since}; not training it twice")  # fmt: skip
            write_atomic(path, json.dumps(mine))  # over an abandoned claim, if there was one
        try:
            yield
        finally:
            with lock:
                if _read_claim(path) == mine:
                    path.unlink()

    def repair_summary(self) -> list[str]:
        """Set a damaged summary aside (the rerun resumes or retrains, and rebuilds it from metrics.jsonl);
        one line saying so, or none."""
        try:
            self.summary()
            return []
        except DamagedFile as err:
            return [f"{err}: moved to {set_aside(self.summary_path).name}"]

    def repair_checkpoints(self) -> list[str]:
        """Set damaged checkpoints aside, so that resuming reads the newest intact one; a line per file."""
        return [
            f"{path} is damaged ({problem}): moved to {set_aside(path).name}"
            for path in self.checkpoints()
            if (problem := checkpoint_problem(path))
        ]

    def damaged_metric_lines(self) -> list[int]:
        damaged: list[int] = []
        read_metrics(self.metrics_path, damaged)
        return damaged

    def metrics(self) -> dict[int, dict[str, float]]:
        """{step: {metric: value}}, the last value written for each (step, metric)."""
        return read_metrics(self.metrics_path)


def last_values(metrics: dict[int, dict[str, float]]) -> dict[str, float]:
    """Each metric's value at the last step it was logged."""
    final: dict[str, float] = {}
    for _, values in sorted(metrics.items()):
        final.update(values)
    return final


def line_numbers(numbers: list[int], shown: int = 10) -> str:
    """`lines 3, 9` (the first `shown` of them, then `...`)."""
    return "lines " + ", ".join(map(str, numbers[:shown])) + (" ..." if len(numbers) > shown else "")


def read_metrics(path: Path, damaged: list[int] | None = None) -> dict[int, dict[str, float]]:
    """{step: {metric: value}}. A line that is not a JSON object of numbers with a step (cut short by a
    kill, bytes that are not UTF-8, edited by hand) is skipped and its number appended to `damaged`."""
    by_step: dict[int, dict[str, float]] = {}
    if not path.exists():
        return by_step
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            step = int(row.pop("step"))
            values = {k: float(v) for k, v in row.items()}
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            if damaged is not None:
                damaged.append(number)
            continue
        by_step.setdefault(step, {}).update(values)
    return by_step


class RunStoreLogger(Logger):
    """A Lightning logger appending every logged metric to the run's metrics.jsonl."""

    def __init__(self, run_dir: RunDir) -> None:
        super().__init__()
        self.run_dir = run_dir

    @property
    def name(self) -> str:
        return "runstore"

    @property
    def version(self) -> str:
        return self.run_dir.run_id

    @property
    @rank_zero_experiment
    def experiment(self) -> RunDir:
        return self.run_dir

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the resolved config is written by RunDir.create before training

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {"step": step, **{k: _json_value(float(v)) for k, v in metrics.items()}}
        with self.run_dir.metrics_path.open("a+b") as f:
            if f.tell() > 0:  # a killed writer may have left half a line: start on a fresh one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write((json.dumps(row) + "\n").encode())


def record_sweep_member(root: str | Path, group: str, entry: dict[str, Any]) -> Path:
    """Append one line to the sweep's members.jsonl, under a file lock: jobs of a parallel launcher (or
    several hosts on a shared filesystem) append to one file."""
    path = Path(root) / "_sweeps" / group / "members.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), path.open("a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    return path


def latest_members(root: str | Path, group: str) -> list[dict[str, Any]]:
    """Each job of a sweep once (by its overrides), with the last line it recorded (a job records when it
    starts and when it ends), in the order the jobs first appeared."""
    path = Path(root) / "_sweeps" / group / "members.jsonl"
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:  # cut short by a kill
            continue
        latest[" ".join(entry.get("overrides") or []) or entry.get("run_id", "")] = entry
    return list(latest.values())


def _read_claim(path: Path) -> dict[str, Any] | None:
    try:
        claim = json.loads(path.read_text())
        return claim if {"host", "pid", "since"} <= set(claim) else None
    except (OSError, ValueError):  # unreadable (written by hand, or by an older, non-atomic writer): abandoned
        return None


def _slurm_job() -> str | None:
    return os.environ.get("SLURM_JOB_ID")


def _alive(claim: dict[str, Any]) -> bool:
    if claim.get("job") and claim["job"] == _slurm_job():
        return False  # this SLURM job's earlier incarnation, before a requeue (possibly on another node)
    if claim["host"] != socket.gethostname():
        return time.time() - claim["since"] < CLAIM_LEASE_HOURS * 3600
    if claim["pid"] == os.getpid():
        return False  # this process's own claim, left by a job it no longer runs
    return pid_alive(claim["pid"])


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with that pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True
