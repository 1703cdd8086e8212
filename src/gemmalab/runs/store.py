"""The local run store: one directory per run identity, written so that nothing logged is lost.

    <root>/<run_id>/config.yaml     the resolved config
    <root>/<run_id>/metrics.jsonl   every logged metric, one JSON line per logging call, append-only
    <root>/<run_id>/summary.json    status (running, finished, diverged at step N, failed: reason), final values
    <root>/<run_id>/checkpoints/    last.ckpt and previous.ckpt (the one before), for resuming
    <root>/<run_id>/wandb/          the W&B run files (offline mode)
    <root>/_sweeps/<group>/members.jsonl   which runs a sweep asked for, with their outcome

A resumed run logs again the steps after its checkpoint; readers keep the last value
written for each (step, metric), so a resumed run reads exactly like an uninterrupted one.

Damage (a file cut short, overwritten or not what it should be) is named, never read as if
whole: a damaged summary or checkpoint is set aside as <name>.damaged[-k] (kept, never read
again) by the job that would use it, and damaged metric lines are skipped and counted.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from gemmalab.errors import DamagedFile
from gemmalab.train.checkpoints import PREVIOUS_CHECKPOINT, checkpoint_problem

FINISHED = "finished"
RUNNING = "running"
TERMINAL_PREFIXES = (FINISHED, "diverged")  # rerunning these would only repeat them


def _write_atomic(path: Path, text: str) -> None:
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
            _write_atomic(self.config_path, config_yaml)

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
        _write_atomic(self.summary_path, json.dumps(summary, indent=2, sort_keys=True, default=str))
        return summary

    def is_done(self) -> bool:
        status = (self.summary() or {}).get("status", "")
        return status.startswith(TERMINAL_PREFIXES)

    def checkpoints(self) -> list[Path]:
        """Checkpoints to resume from, newest first (train/fit.py keeps the one before last.ckpt)."""
        return [p for p in (self.checkpoint_dir / n for n in ("last.ckpt", PREVIOUS_CHECKPOINT)) if p.exists()]

    def last_checkpoint(self) -> Path | None:
        return next(iter(self.checkpoints()), None)

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
    path = Path(root) / "_sweeps" / group / "members.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    return path
