"""The LightningDataModule: packed text read from the token cache (embedded, Hugging Face, local files),
or the MQAR task."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Subset

from .cache import check_budget, epochs_of, token_cache
from .config import DataConfig
from .mqar import MQARDataset
from .packing import PackedDataset, ResumableSampler


class LMDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int, max_steps: int, vocab_size: int, cache_root: Path,
                 sequences: int | None = None) -> None:  # fmt: skip
        """`sequences`: the training sequences the run reads (spec.train_sequences), checked against the cache
        (cache.check_budget) and recorded as data/epochs; None: not checked (an evaluation, a test's loader)."""
        super().__init__()
        self.cfg, self.seed, self.max_steps, self.model_vocab = cfg, seed, max_steps, vocab_size
        self.cache_root, self.sequences = cache_root, sequences
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None  # as large as the validation set; read once, after training
        self.info: dict[str, float | int | str] = {}

    def prepare(self) -> dict[str, float | int | str]:
        """Load and tokenize once (idempotent); returns what a run records about its data."""
        if self.train_set is not None:
            return self.info
        cfg = self.cfg
        if cfg.source == "mqar":
            n_val = cfg.val_batches * cfg.batch_size
            args = dict(seq_len=cfg.seq_len, n_pairs=cfg.n_pairs, vocab_size=self.model_vocab)
            self.train_set = MQARDataset(cfg.train_items, seed=self.seed, **args)
            self.val_set = MQARDataset(n_val, seed=10_000_019 + self.seed, **args)  # disjoint seeds from training
            self.test_set = MQARDataset(n_val, seed=20_000_003 + self.seed, **args)
            self.info = {"data/fingerprint": f"mqar-v{self.model_vocab}-t{cfg.seq_len}-n{cfg.n_pairs}"}
            return self.info
        cache = token_cache(cfg, self.cache_root)
        check_budget(cfg, self.sequences, self.cache_root)  # exact now: the cache's own count
        manifest = cache.manifest
        if manifest["vocab_size"] > self.model_vocab:
            raise ValueError(
                f"model.vocab_size={self.model_vocab} is smaller than the tokenizer's {manifest['vocab_size']} "
                f"(allowed: >= {manifest['vocab_size']})"
            )
        self.train_set = PackedDataset(cache.tokens("train"), cfg.seq_len)
        self.val_set = self._held_out(PackedDataset(cache.tokens("val"), cfg.seq_len))
        test = cache.tokens("test")  # a corpus too small for one test sequence has none: no test/loss
        self.test_set = self._held_out(PackedDataset(test, cfg.seq_len)) if len(test) > cfg.seq_len else []
        self.info = {
            "data/fingerprint": manifest["key"],
            "data/source": manifest["source_fingerprint"],
            "data/cache": str(cache.path),
            "data/train_tokens": manifest["tokens"]["train"],
            "data/val_tokens": manifest["tokens"]["val"],
            "data/test_tokens": manifest["tokens"]["test"],
            "data/budget_reached": manifest["budget_reached"]["train"],
            "data/unigram_loss": unigram_cross_entropy(cache.counts("train"), cache.counts("val")),
        }
        if self.sequences is not None:  # > 1: the run repeats its data (only with data.allow_repeat=true)
            self.info["data/epochs"] = round(epochs_of(cfg, self.sequences, manifest["tokens"]["train"]), 4)
        return self.info

    def _held_out(self, split: PackedDataset) -> Subset:
        return Subset(split, range(min(len(split), self.cfg.val_batches * self.cfg.batch_size)))

    def setup(self, stage: str) -> None:
        self.prepare()

    def train_dataloader(self) -> DataLoader:
        # Lightning restores the trainer's step before asking for the loader, so a resumed run
        # continues the sample stream where its checkpoint left it.
        self.prepare()
        trainer = self.trainer
        step, rank, world = (trainer.global_step, trainer.global_rank, trainer.world_size) if trainer else (0, 0, 1)
        bs = self.cfg.batch_size
        per_step = bs * (trainer.accumulate_grad_batches if trainer else 1)  # micro-batches of bs sequences
        sampler = ResumableSampler(len(self.train_set), self.max_steps * per_step, self.seed, start=step * per_step,
                                   batch_size=bs, rank=rank, world_size=world)  # fmt: skip
        return StepLoader(self.train_set, batch_size=bs // world, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        # every rank evaluates the whole fixed set: the same validation loss on each, with or without DDP
        self.prepare()
        if self.trainer is not None and self.trainer.overfit_batches > 0:
            # trainer.overfit_batches: validate on the batches it trains on (Lightning trains on the first N
            # batches in order and would validate on N batches of the validation split), so the curve shows
            # whether the model can learn them by heart
            return DataLoader(self.train_set, batch_size=self.cfg.batch_size, shuffle=False)
        return DataLoader(self.val_set, batch_size=self.cfg.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        # read once, after training (train/module.py on_train_end): the final weights' test/loss
        self.prepare()
        return DataLoader(self.test_set, batch_size=self.cfg.batch_size, shuffle=False)


class StepLoader(DataLoader):
    """The training loader, resumable the way Lightning asks (state_dict / load_state_dict): where it stands
    is the trainer's global step, which Lightning restores and train_dataloader builds the sampler from (a
    pure function of seed, step and rank), so it has no state of its own to save."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def unigram_cross_entropy(train_counts: np.ndarray, val_counts: np.ndarray) -> float:
    """Validation loss (nats/token) of the best context-free model: train token frequencies, add-one smoothed."""
    counts = train_counts.astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-(val_counts * log_p).sum() / val_counts.sum())
