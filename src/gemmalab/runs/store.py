"""The local run store: one directory per run identity, written so that nothing logged is lost.

    <root>/<run_id>/config.yaml     the resolved config
    <root>/<run_id>/metrics.jsonl   every logged metric, one JSON line per logging call, append-only
    <root>/<run_id>/summary.json    status (running, finished, diverged at step N, failed: reason), final values
    <root>/<run_id>/checkpoints/    last.ckpt and previous.ckpt (the one before), for resuming
    <root>/<run_id>/wandb/          the W&B run files (offline mode)
    <root>/<run_id>/lease.json      while a process trains the run: its host, pid and start (runs/lease.py)
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

This module: the store's names and paths, and a run's directory (RunDir). Beside it: files.py (atomic
writes, appends, damage set aside), lease.py (one process per run), metrics_file.py (reading
metrics.jsonl), sweep_dir.py (SweepDir).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from gemmalab.errors import DamagedFile

from .files import set_aside, write_atomic
from .lease import hold
from .metrics_file import read_metrics

FINISHED = "finished"
RUNNING = "running"
STARTED = "started"  # a sweep member's line when its job begins; its last one only if it never ended
INTERRUPTED = "interrupted"  # stopped by a signal after saving its step; the rerun resumes it
NOT_STARTED = "not started: the sweep was stopped"
TERMINAL_PREFIXES = (FINISHED, "diverged")  # rerunning these would only repeat them

# The run store's names: every other module asks for paths here.
LAST_CHECKPOINT, PREVIOUS_CHECKPOINT = "last.ckpt", "previous.ckpt"  # the one before last
SWEEPS, CACHE, REPORTS, ALIASES = "_sweeps", "_cache", "_reports", "_aliases"


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

    def lease(self, group: str | None = None, poll_s: float = 1.0) -> contextlib.AbstractContextManager[None]:
        """Hold the run while training it (runs/lease.py): a second process asked for it gets RunBusy, or waits
        when both are jobs of one sweep `group`."""
        return hold(self.path, f"run {self.run_id} ({self.path})", group, poll_s)

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


# What the analysis reads of a run's summary (summary.json and the W&B run's alike; W&B's also holds the last value
# of every logged metric): the headline keys, and the figures under these prefixes, among them the final values of
# FINAL_FIGURES, which the summary copies from the run's last logged step (runs/train_run.py).
FINAL_FIGURES = ("val/accuracy", "val/queries", "test/")
HEADLINE_KEYS = ("status", "diverged", "diverged_step", "val/loss", "val/loss_init", "parameters", "wall_seconds",
                 "data/fingerprint", "data/source", "data/epochs", "trained_steps", "output/log_z_peak")  # fmt: skip
HEADLINE_PREFIXES = ("stability/", "attn/max_logit", "teacher/", "softcap/", "window/", "distill/", *FINAL_FIGURES)


def is_headline(key: str) -> bool:
    return key in HEADLINE_KEYS or key.startswith(HEADLINE_PREFIXES)


def readable_summary(run: RunDir) -> dict[str, Any]:
    """The run's summary, {} when the run store failed under it (removed, damaged)."""
    try:
        return run.summary() or {}
    except (DamagedFile, OSError):
        return {}
