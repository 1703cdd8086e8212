"""No checkpoint load anywhere unpickles code: not on resume, not for evaluation or a teacher, not even
with torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1."""

from __future__ import annotations

import pytest
import torch

from gemmalab.errors import DamagedFile
from gemmalab.runs.job import run_job
from gemmalab.runs.store import RunDir
from gemmalab.train.checkpoints import load_checkpoint

from ..conftest import TINY
from ..test_conf import compose_config


class Payload:
    """What a crafted checkpoint carries: unpickling it creates a file (a stand-in for any code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_crafted_checkpoint_never_runs_even_with_torchs_override(tmp_path, monkeypatch):
    config = compose_config(*TINY, "logger=none", f"run_root={tmp_path / 'r'}")
    summary = run_job(config, [], "g")
    run = RunDir(tmp_path / "r", summary["run_id"])
    marker = tmp_path / "payload-ran"
    crafted = {**torch.load(run.last_checkpoint_path, weights_only=True), "extra": Payload(str(marker))}
    torch.save(crafted, run.last_checkpoint_path)  # a valid zip: its CRCs pass, its pickle carries code
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # the workaround people are told to set

    with pytest.raises(DamagedFile, match="holds io.open, which loading would run as code") as err:
        load_checkpoint(run.last_checkpoint_path)  # evaluation and teachers
    assert "weights_only=False" not in str(err.value)
    run.update_summary(status="running")  # as a kill leaves it: the rerun resumes from last.ckpt
    resumed = run_job(config, [], "g")
    assert resumed["status"].startswith("failed: DamagedFile: ") and "would run as code" in resumed["status"]
    assert not marker.exists()
