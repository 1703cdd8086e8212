from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Seconds per run: the tiny model on a short packed byte stream.
TINY = [
    "model=tiny",
    "attn.window=8",
    "data.seq_len=32",
    "data.batch_size=4",
    "data.val_batches=2",
    "data.max_tokens=300000",
    "trainer.max_steps=6",
    "trainer.val_every=3",
    "trainer.ckpt_every=3",
    "trainer.progress_bar=false",
]


def run_sweep(run_root: Path, *args: str, tiny: bool = True) -> subprocess.CompletedProcess:
    """`python sweep.py ARGS` in a subprocess, exactly as a user types it, with results under run_root."""
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
    flags = [a for a in args if a.startswith("-")]  # Hydra wants -m before the overrides
    overrides = [*(TINY if tiny else []), *(a for a in args if not a.startswith("-")), f"run_root={run_root}"]
    command = [sys.executable, "sweep.py", *flags, *overrides]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def sweep():
    return run_sweep
