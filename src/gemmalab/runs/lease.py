"""The lease on a run: while a process trains a run, <run>/lease.json names it (host, pid, start, SLURM job,
sweep group), written under a file lock, so that no two processes train one run at once; a lease whose
process is gone is taken over."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from gemmalab.errors import RunBusy

from .files import write_atomic

# A lease held by a process on another host counts as abandoned once this old: its liveness cannot be checked.
LEASE_HOURS = 24.0


@contextlib.contextmanager
def hold(run_dir: Path, what: str, group: str | None = None, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the run in `run_dir` while training it: lease.json (host, pid, start, SLURM job, sweep group) is
    checked and written under a file lock; a second process asked for the same run gets RunBusy naming the
    holder, unless both are jobs of one sweep `group` (two settings a run never reads, trained at once by a
    parallel launcher): it waits for the holder, then finds the run done. A lease whose process is gone (same
    host), older than LEASE_HOURS (another host) or left by this SLURM job before it was requeued is taken
    over."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path, lock = run_dir / "lease.json", FileLock(str(run_dir / "lease.json.lock"))
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "job": slurm_job(),
            "started": process_started(os.getpid()), "group": group}  # fmt: skip
    while True:
        with lock:  # check and take under one lock: of two processes asking at once, one gets the run
            holder = _read_lease(path) if path.exists() else None
            if holder is None or not _alive(holder):
                write_atomic(path, json.dumps(mine))  # over an abandoned lease, if there was one
                break
            if group is None or holder.get("group") != group:
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
                raise RunBusy(f"{what} is being trained by pid {holder['pid']} on {holder['host']} since {since}; "
                              "not training it twice")  # fmt: skip
        time.sleep(poll_s)  # the same sweep's job: wait for it outside the lock
    try:
        yield
    finally:
        with contextlib.suppress(OSError), lock:  # a run directory removed meanwhile holds no lease
            if _read_lease(path) == mine:
                path.unlink()


def _read_lease(path: Path) -> dict[str, Any] | None:
    try:
        lease = json.loads(path.read_text())
        return lease if {"host", "pid", "since"} <= set(lease) else None
    except (OSError, ValueError):  # unreadable (written by hand, or by an older, non-atomic writer): abandoned
        return None


def slurm_job() -> str | None:
    return os.environ.get("SLURM_JOB_ID")


def _alive(lease: dict[str, Any]) -> bool:
    if lease.get("job") and lease["job"] == slurm_job():
        return False  # this SLURM job's earlier incarnation, before a requeue (possibly on another node)
    if lease["host"] != socket.gethostname():
        return time.time() - lease["since"] < LEASE_HOURS * 3600
    if lease["pid"] == os.getpid():
        return False  # this process's own lease, left by a job it no longer runs
    return pid_alive(lease["pid"], lease.get("started"))


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
