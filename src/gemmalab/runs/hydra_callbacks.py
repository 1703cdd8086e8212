"""A Hydra callback that notes where a sweep ended, in the process that launched its jobs.

Hydra calls on_multirun_end in the launching process for every launcher (basic, joblib,
submitit) once all jobs have returned, and on_run_end after a single run; sweep.py then
prints the closing summary and picks the exit code from the sweep's members.jsonl, which
every job wrote to, wherever it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ended: dict[str, Any] = {}  # run_root and group of the sweep (or run) that ended in this process


class SweepEnd(Callback):
    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        ended.update(run_root=config.run_root, group=config.group or Path(config.hydra.run.dir).name)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        ended.update(run_root=config.run_root, group=config.group or Path(config.hydra.sweep.dir).name)
