from __future__ import annotations

import numpy as np
import torch

from gemmalab.data import DataConfig, LMDataModule


def test_batches_come_from_the_memory_mapped_cache_with_a_unigram_baseline(tmp_path):
    cfg = DataConfig(seq_len=32, batch_size=4, val_batches=2, max_tokens=300_000)
    dm = LMDataModule(cfg, seed=0, max_steps=5, vocab_size=256, cache_root=tmp_path)
    info = dm.prepare()
    assert isinstance(dm.train_set.tokens, np.memmap)  # the corpus stays on disk
    assert 2.5 < info["data/unigram_loss"] < 5.5  # bytes of Python source: a few nats per byte
    assert info["data/cache"].startswith(str(tmp_path)) and info["data/fingerprint"].startswith("embedded-bytes-")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 32) and torch.equal(batch["input_ids"][:, 1:], batch["targets"][:, :-1])
    assert batch["input_ids"].dtype == torch.long
    assert len(dm.train_dataloader()) == 5 and len(dm.val_dataloader()) == 2
