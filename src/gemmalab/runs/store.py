"""The local run store: one directory per run identity, written so that nothing logged is lost.

    <root>/<run_id>/config.yaml     the resolved config
    <root>/<run_id>/metrics.jsonl   every logged metric, one JSON line per logging call, append-only
    <root>/<run_id>/summary.json    status (running, finished, diverged at step N, failed: reason), final values
    <root>/<run_id>/checkpoints/    last.ckpt, for resuming
    <root>/<run_id>/wandb/          the W&B run files (offline mode)
    <root>/_sweeps/<group>/members.jsonl   which runs a sweep asked for, with their outcome

A resumed run logs again the steps after its checkpoint; readers keep the last value
written for each (step, metric), so a resumed run reads exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

FINISHED = "finished"
RUNNING = "running"
TERMINAL_PREFIXES = (FINISHED, "diverged")  # rerunning these would only repeat them


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
        return json.loads(self.summary_path.read_text()) if self.summary_path.exists() else None

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        summary = {**(self.summary() or {}), **fields}
        _write_atomic(self.summary_path, json.dumps(summary, indent=2, sort_keys=True, default=str))
        return summary

    def is_done(self) -> bool:
        status = (self.summary() or {}).get("status", "")
        return status.startswith(TERMINAL_PREFIXES)

    def last_checkpoint(self) -> Path | None:
        path = self.checkpoint_dir / "last.ckpt"
        return path if path.exists() else None

    def metrics(self) -> dict[int, dict[str, float]]:
        """{step: {metric: value}}, the last value written for each (step, metric)."""
        return read_metrics(self.metrics_path)


def last_values(metrics: dict[int, dict[str, float]]) -> dict[str, float]:
    """Each metric's value at the last step it was logged."""
    final: dict[str, float] = {}
    for _, values in sorted(metrics.items()):
        final.update(values)
    return final


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    by_step: dict[int, dict[str, float]] = {}
    if not path.exists():
        return by_step
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill: everything before it stands
            continue
        step = int(row.pop("step"))
        by_step.setdefault(step, {}).update({k: float(v) for k, v in row.items()})
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
