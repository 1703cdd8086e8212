"""The local run store: one directory per run identity, written so that nothing logged is lost.

    <root>/<run_id>/config.yaml     the resolved config
    <root>/<run_id>/metrics.jsonl   every logged metric, one JSON line per logging call, append-only
    <root>/<run_id>/summary.json    status (running, finished, diverged at step N, failed: reason), final values
    <root>/<run_id>/checkpoints/    last.ckpt and previous.ckpt (the one before), for resuming
    <root>/<run_id>/wandb/          the W&B run files (offline mode)
    <root>/<run_id>/claim.json      while a process trains the run: its host, pid and start (RunDir.claim)
    <root>/<run_id>/attempt.json    what the current attempt trains: the job's config, name, group, checkpoint
    <root>/<run_id>/requeue         a scheduler asked this run's job to requeue; holds who requeues it (runs/requeue.py)
    <root>/_sweeps/<group>/sweep.json      the sweep as its launching process planned it (SweepDir)
    <root>/_sweeps/<group>/members.jsonl   which runs a sweep asked for: a line when a job starts, one when it ends
    <root>/_sweeps/<group>/stop            the sweep was asked to stop (holds the signal's number)
    <root>/_cache/ <root>/_reports/ <root>/_aliases/   the token cache, reports, run aliases

A job is a run directory: the job's process writes attempt.json, and whichever process trains
the run (this one, a DDP rank, a torchrun or SLURM task) reads everything it needs from there.

A resumed run logs again the steps after its checkpoint; readers keep the last value
written for each (step, metric), so a resumed run reads exactly like an uninterrupted one.

Damage (a file cut short, overwritten or not what it should be) is named, never read as if
whole: a damaged summary or checkpoint is set aside as <name>.damaged[-k] (kept, never read
again) by the job that would use it, and damaged metric lines are skipped and counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from gemmalab.errors import ConfigError, DamagedFile, RunBusy

FINISHED = "finished"
RUNNING = "running"
STARTED = "started"  # a sweep member's line when its job begins; its last one only if it never ended
INTERRUPTED = "interrupted"  # stopped by a signal after saving its step; the rerun resumes it
NOT_STARTED = "not started: the sweep was stopped"
TERMINAL_PREFIXES = (FINISHED, "diverged")  # rerunning these would only repeat them

# The run store's names: every other module asks for paths here.
LAST_CHECKPOINT, PREVIOUS_CHECKPOINT = "last.ckpt", "previous.ckpt"  # the one before last
SWEEPS, CACHE, REPORTS, ALIASES = "_sweeps", "_cache", "_reports", "_aliases"


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_name(key: str, value: object) -> str:
    """A name that becomes a path in the run store (a group, an alias) is one path component of a safe
    alphabet: never `..`, `/abs/path` or `a/b`, which would write outside the store."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = f"alias:{value}" if key == "distill.teacher" else value
        raise ConfigError(f"{key}={shown!r} is not allowed (allowed: one name of letters, digits and . _ -, "
                          "starting with a letter or digit)")  # fmt: skip
    return value


def cache_dir(root: str | Path) -> Path:
    """The token cache when data.cache_dir is not given."""
    return Path(root) / CACHE


def reports_dir(root: str | Path) -> Path:
    return Path(root) / REPORTS


def aliases_dir(root: str | Path) -> Path:
    return Path(root) / ALIASES


def new_group(ablation: str | None) -> str:
    """A new sweep's group: `[<ablation>_]<time>_<4 hex digits>` (two sweeps in one second differ)."""
    stamp = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(2)}"
    return f"{ablation}_{stamp}" if ablation else stamp


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name unique to this writer, flush it to disk, then rename over `path`:
    a reader (or a kill) sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_line(path: Path, line: str) -> None:
    """Append one line; a line a killed writer left cut short is ended first, so the new one stays whole
    (the cut one is skipped by readers, never glued onto the next)."""
    with path.open("a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((line + "\n").encode())


def set_aside(path: Path) -> Path:
    """Rename a damaged file to <name>.damaged (or .damaged-k) beside it; returns the new path."""
    aside, k = path.with_name(path.name + ".damaged"), 0
    while aside.exists():
        k += 1
        aside = path.with_name(f"{path.name}.damaged-{k}")
    os.replace(path, aside)
    return aside


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
        self.last_checkpoint_path = self.checkpoint_dir / LAST_CHECKPOINT
        self.previous_checkpoint_path = self.checkpoint_dir / PREVIOUS_CHECKPOINT
        self.attempt_path = self.path / "attempt.json"
        self.requeue_path = self.path / "requeue"
        self.error_path = self.path / "error.txt"

    @classmethod
    def at(cls, path: str | Path) -> RunDir:
        """The run directory at `path` (<root>/<run_id>)."""
        path = Path(path)
        return cls(path.parent, path.name)

    def write_attempt(self, attempt: dict[str, Any]) -> None:
        write_atomic(self.attempt_path, json.dumps(attempt, indent=2, default=str))

    def attempt(self) -> dict[str, Any]:
        """What the current attempt trains (written by the job before any process trains the run)."""
        return json.loads(self.attempt_path.read_text())

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
        return [p for p in (self.last_checkpoint_path, self.previous_checkpoint_path) if p.exists()]

    def last_checkpoint(self) -> Path | None:
        return next(iter(self.checkpoints()), None)

    @contextlib.contextmanager
    def claim(self, group: str | None = None, poll_s: float = 1.0) -> Iterator[None]:
        """Hold the run while training it: claim.json (host, pid, start, SLURM job, sweep group) is checked and
        written under a file lock; a second process asked for the same run gets RunBusy naming the holder,
        unless both are jobs of one sweep `group` (two settings a run never reads, trained at once by a parallel
        launcher): it waits for the holder, then finds the run done. A claim whose process is gone (same
        host), older than CLAIM_LEASE_HOURS (another host) or left by this SLURM job before it was requeued is
        taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        path, lock = self.path / "claim.json", FileLock(str(self.path / "claim.json.lock"))
        mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "job": _slurm_job(),
                "started": process_started(os.getpid()), "group": group}  # fmt: skip
        while True:
            with lock:  # check and take under one lock: of two processes asking at once, one gets the run
                holder = _read_claim(path) if path.exists() else None
                if holder is None or not _alive(holder):
                    write_atomic(path, json.dumps(mine))  # over an abandoned claim, if there was one
                    break
                if group is None or holder.get("group") != group:
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
                    raise RunBusy(f"run {self.run_id} ({self.path}) is being trained by pid {holder['pid']} on "
                                  f"{holder['host']} since {since}; not training it twice")  # fmt: skip
            time.sleep(poll_s)  # the same sweep's job: wait for it outside the lock
        try:
            yield
        finally:
            with contextlib.suppress(OSError), lock:  # a run directory removed meanwhile holds no claim
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
        from gemmalab.train.checkpoints import checkpoint_problem  # torch: not on every command's path

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


class SweepDir:
    """<root>/_sweeps/<group>/: what a sweep planned, which runs it asked for, whether it was asked to stop.
    Every process of the sweep (workers, submitit jobs, DDP ranks, on any host of a shared filesystem)
    reads and writes it; nothing about a sweep lives in a process's memory or environment."""

    def __init__(self, root: str | Path, group: str) -> None:
        self.root, self.group = Path(root), check_name("group", group)
        self.path = self.root / SWEEPS / group
        self.info_path = self.path / "sweep.json"
        self.members_path = self.path / "members.jsonl"
        self.stop_path = self.path / "stop"

    @staticmethod
    def groups(root: str | Path, prefix: str = "") -> list[str]:
        """The groups of the run store that recorded members (those starting with `prefix`), sorted."""
        return sorted(p.parent.name for p in (Path(root) / SWEEPS).glob(f"{prefix}*/members.jsonl"))

    @staticmethod
    def newest(root: str | Path) -> str | None:
        """The group whose members were recorded last (None: no sweep in the store)."""
        paths = list((Path(root) / SWEEPS).glob("*/members.jsonl"))
        return max(paths, key=lambda p: p.stat().st_mtime_ns).parent.name if paths else None

    def plan(self, jobs: int, swept: set[str] | None, command: str | None = None) -> None:
        """Written by the launching process before the first job: how many jobs, which keys vary, the command
        line (a report quotes it), and who launched them (local workers stop when it is gone: runs/stops.py).
        A stop left by an earlier sweep of the same group is cleared."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.stop_path.unlink(missing_ok=True)
        info = {"jobs": jobs, "swept": sorted(swept) if swept is not None else None, "command": command,
                "launcher": {"host": socket.gethostname(), "pid": os.getpid(), "started": process_started(os.getpid()),
                             "slurm_job": _slurm_job()}}  # fmt: skip
        write_atomic(self.info_path, json.dumps(info, indent=2))

    def info(self) -> dict[str, Any]:
        """The plan; a job started outside sweep.py (no plan) runs alone, watching no launcher."""
        if not self.info_path.exists():
            return {"jobs": 1, "swept": None, "launcher": None}
        return json.loads(self.info_path.read_text())

    def swept(self) -> set[str] | None:
        swept = self.info()["swept"]
        return None if swept is None else set(swept)

    def request_stop(self, signum: int) -> None:
        """Every job of the sweep stops after its current step, which is saved (train/lightning_fixes.py StopOnRequest);
        no further job starts. sweep.py's SIGTERM (a scheduler's preemption) and SIGINT handler."""
        if not self.stop_path.exists():
            print(f"\n[gemmalab] {signal.Signals(signum).name}: saving the current step, then stopping",
                  file=sys.stderr)  # fmt: skip
            self.path.mkdir(parents=True, exist_ok=True)
            write_atomic(self.stop_path, f"{int(signum)}\n")

    def stop_signal(self) -> signal.Signals | None:
        """The signal the sweep was stopped by, None while it is not stopping."""
        try:
            return signal.Signals(int(self.stop_path.read_text()))
        except FileNotFoundError:
            return None
        except ValueError:  # cut short while written by hand: still a stop
            return signal.SIGTERM

    def record(self, entry: dict[str, Any]) -> None:
        """Append one line to members.jsonl, under a file lock: jobs of a parallel launcher (or several
        hosts on a shared filesystem) append to one file."""
        self.path.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.members_path) + ".lock"):
            append_line(self.members_path, json.dumps(entry, default=str))

    def latest_members(self) -> list[dict[str, Any]]:
        """Each job of the sweep once (by its overrides), with the last line it recorded (a job records when
        it starts and when it ends), in the order the jobs first appeared."""
        latest: dict[str, dict[str, Any]] = {}
        lines = self.members_path.read_text().splitlines() if self.members_path.exists() else []
        for line in lines:
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
    return pid_alive(claim["pid"], claim.get("started"))


def process_started(pid: int) -> str | None:
    """When a process of this host started (boot id and clock ticks since boot, from /proc): with its pid it
    names one process, even once the pid is reused after a reboot or on a busy node. None without /proc."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]  # field 22, starttime
    except (OSError, IndexError):
        return None
    return f"{boot}:{ticks}"


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether a process of this host with that pid exists (and, given when it `started`, is that process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    return started is None or process_started(pid) in (None, started)


def readable_summary(run: RunDir) -> dict[str, Any]:
    """The run's summary, {} when the run store failed under it (removed, damaged)."""
    try:
        return run.summary() or {}
    except (DamagedFile, OSError):
        return {}
