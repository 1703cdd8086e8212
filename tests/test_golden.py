"""Golden numerics: the first 20 training losses of a tiny run on CPU, stored.

Every study's figures rest on the kernels, the initialisation, the data order and the optimiser;
a change to any of them that shifts these losses shifts every study silently. If the change is
deliberate, regenerate the file with `GEMMALAB_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`
and say why in the commit. Tolerance: 2e-4 nats, about 100x the float32 drift seen between CPU
kernels (AVX2 / AVX-512) over 20 steps, and far below what a real change moves (init or kernel: > 1e-2).
"""

from __future__ import annotations

import json
import os

import pytest

from gemmalab.runs.job import run_job
from gemmalab.runs.store import RunDir

from .conftest import REPO, TINY
from .test_conf import compose_config

GOLDEN = REPO / "tests" / "golden_tiny_losses.json"
TOLERANCE = 2e-4


def test_the_first_20_training_losses_of_a_tiny_run_are_pinned(tmp_path):
    config = compose_config(*TINY, "trainer.max_steps=20", "trainer.val_every=20", "logger=none",
                            f"run_root={tmp_path}")  # fmt: skip
    summary = run_job(config, [], group="golden")
    assert summary["status"] == "finished"
    metrics = RunDir(tmp_path, summary["run_id"]).metrics()
    losses = [metrics[step]["train/loss"] for step in range(20)]
    if os.environ.get("GEMMALAB_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"config": TINY + ["trainer.max_steps=20"], "train/loss": losses}, indent=1))
    stored = json.loads(GOLDEN.read_text())["train/loss"]
    assert losses == pytest.approx(stored, abs=TOLERANCE, rel=0)
