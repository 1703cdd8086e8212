"""The fit's checkpoints (the final step is always saved, whatever trainer.ckpt_every) and its progress bar."""

from __future__ import annotations

import subprocess
import sys

import lightning as L
import pytest
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gemmalab.data import DataConfig, LMDataModule
from gemmalab.model import preset
from gemmalab.train import LMModule, OptimConfig, TrainerConfig, fit
from gemmalab.train.checkpoints import load_checkpoint


def test_the_last_step_is_saved_even_between_two_periodic_checkpoints(tmp_path):
    L.seed_everything(0, verbose=False)
    data = DataConfig(seq_len=16, batch_size=2, val_batches=1, max_tokens=50_000)
    cfg = TrainerConfig(max_steps=6, val_every=3, ckpt_every=4, progress_bar=False)
    last, spare = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "checkpoints" / "previous.ckpt"
    fit(LMModule(preset("tiny"), OptimConfig(warmup_steps=0), cfg), LMDataModule(data, 0, 6, 256, tmp_path), cfg,
        last, spare, [], should_stop=lambda: False)  # fmt: skip
    assert load_checkpoint(last)["global_step"] == 6  # the trained model, not step 4's
    assert load_checkpoint(spare)["global_step"] == 4


def test_a_resumed_runs_bar_counts_on_the_whole_runs_scale(tmp_path):
    data = DataConfig(seq_len=16, batch_size=2, val_batches=1, max_tokens=50_000)
    cfg = TrainerConfig(max_steps=4, val_every=2, ckpt_every=2, progress_bar=True)
    last, spare = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "checkpoints" / "previous.ckpt"
    steps = iter(range(100))
    with pytest.raises(SIGTERMException):  # asked to stop after step 2
        fit(LMModule(preset("tiny"), OptimConfig(warmup_steps=0), cfg), LMDataModule(data, 0, 4, 256, tmp_path),
            cfg, last, spare, [], should_stop=lambda: next(steps) == 1)  # fmt: skip
    trainer = fit(LMModule(preset("tiny"), OptimConfig(warmup_steps=0), cfg), LMDataModule(data, 0, 4, 256, tmp_path),
                  cfg, last, spare, [], should_stop=lambda: False, resume_from=last)  # fmt: skip
    # the count goes on from the restored batch (3, 4); Lightning's total, the steps left, would read 4/2
    assert trainer.progress_bar_callback.total_train_batches == 4 == trainer.fit_loop.epoch_loop.batch_idx + 1


def test_the_package_gives_the_fit_function_whichever_name_is_asked_first():
    """gemmalab.train loads its Lightning parts on first use; its `fit` is the function, not the submodule of
    that name (which importing it would otherwise leave in its place)."""
    code = ("import gemmalab.train as t; first = t.LMModule; from gemmalab.train import fit; "
            "print(callable(fit), fit.__module__)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "gemmalab.train.fit"], done.stderr[-800:]
