"""A sweep's directory in the run store, <root>/_sweeps/<group>/: its plan, its members, its stop request."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from filelock import FileLock

from gemmalab.errors import require_name

from .files import append_line, write_atomic
from .lease import process_started, slurm_job
from .store import SWEEPS


class SweepDir:
    """<root>/_sweeps/<group>/: what a sweep planned, which runs it asked for, whether it was asked to stop.
    Every process of the sweep (workers, submitit jobs, DDP ranks, on any host of a shared filesystem)
    reads and writes it; nothing about a sweep lives in a process's memory or environment."""

    def __init__(self, root: str | Path, group: str) -> None:
        self.root, self.group = Path(root), require_name("group", group)
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
                             "slurm_job": slurm_job()}}  # fmt: skip
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
