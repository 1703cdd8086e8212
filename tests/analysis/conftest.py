from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gemmalab.runs.identity import run_identity
from gemmalab.runs.metrics_logger import RunStoreLogger
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir

from ..test_conf import compose_config


class FakeStore:
    """A run store written by hand: known configs, summaries and loss curves."""

    def __init__(self, root: Path, group: str = "g") -> None:
        self.root, self.group = root, group
        self.base = compose_config("model=tiny", f"run_root={root}")

    def add(self, overrides: dict, summary: dict, losses: list[float] | None = None) -> str:
        config = json.loads(json.dumps(self.base))
        for dotted, value in overrides.items():
            *parents, leaf = dotted.split(".")
            node = config
            for p in parents:
                node = node[p]
            node[leaf] = value
        run = RunDir(self.root, run_identity(config))
        run.create(yaml.safe_dump(config))
        run.update_summary(name=" ".join(f"{k}={v}" for k, v in overrides.items()), **summary)
        logger = RunStoreLogger(run)
        for step, loss in enumerate(losses or [3.0, 2.5, 2.0]):
            logger.log_metrics(
                {"train/loss": loss, "train/grad_norm": 1.0 + 0.1 * step, "attn/max_logit/layer_0": 1.0}, step
            )
        SweepDir(self.root, self.group).record({"run_id": run.run_id, "status": summary["status"]})
        return run.run_id


@pytest.fixture
def fake_store(tmp_path) -> FakeStore:
    return FakeStore(tmp_path)
