"""The Lightning logger of the run store: every logged metric appended to the run's metrics.jsonl."""

from __future__ import annotations

import json
import math
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from .files import append_line
from .store import RunDir


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": valid JSON, and readers turn them back into floats
    return value


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
        append_line(self.run_dir.metrics_path, json.dumps(row))
