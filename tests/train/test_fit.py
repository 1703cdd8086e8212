"""The fit's checkpoints: the final step is always saved, whatever trainer.ckpt_every."""

from __future__ import annotations

import lightning as L

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
