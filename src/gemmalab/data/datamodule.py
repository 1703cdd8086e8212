"""The LightningDataModule: packed text (embedded, Hugging Face, local files) or the MQAR task."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .config import DataConfig
from .embedded import embedded_corpus
from .mqar import MQARDataset
from .packing import PackedDataset, ResumableSampler
from .text import fingerprint, load_documents, tokenize_documents
from .tokenizer import load_tokenizer


class LMDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int, max_steps: int, vocab_size: int) -> None:
        super().__init__()
        self.cfg, self.seed, self.max_steps, self.model_vocab = cfg, seed, max_steps, vocab_size
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
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
            self.info = {"data/fingerprint": f"mqar-v{self.model_vocab}-t{cfg.seq_len}-n{cfg.n_pairs}"}
            return self.info
        tokenizer = load_tokenizer(cfg.tokenizer)
        if tokenizer.vocab_size > self.model_vocab:
            raise ValueError(
                f"model.vocab_size={self.model_vocab} is smaller than the tokenizer's {tokenizer.vocab_size} "
                f"(allowed: >= {tokenizer.vocab_size})"
            )
        if cfg.source == "embedded":
            train, val, print_ = embedded_corpus(cfg.max_tokens)
        else:

            def documents(split: str):  # noqa: E306
                return load_documents(cfg.name, cfg.config, split, cfg.files, cfg.text_column, cfg.streaming)

            split_val = cfg.val_split is None
            train, val = tokenize_documents(documents(cfg.split), tokenizer, cfg.max_tokens, split_val)
            if not split_val:
                val, _ = tokenize_documents(documents(cfg.val_split), tokenizer, cfg.max_tokens, False)
            print_ = fingerprint(train, val, tokenizer_name=tokenizer.name)
        self.train_set = PackedDataset(train, cfg.seq_len)
        full_val = PackedDataset(val, cfg.seq_len)
        self.val_set = Subset(full_val, range(min(len(full_val), cfg.val_batches * cfg.batch_size)))
        self.info = {
            "data/fingerprint": print_,
            "data/train_tokens": len(train),
            "data/val_tokens": len(val),
            "data/unigram_loss": unigram_cross_entropy(train, val, self.model_vocab),
        }
        return self.info

    def setup(self, stage: str) -> None:
        self.prepare()

    def train_dataloader(self) -> DataLoader:
        # Lightning restores the trainer's step before asking for the loader, so a resumed run
        # continues the sample stream where its checkpoint left it.
        self.prepare()
        step = self.trainer.global_step if self.trainer is not None else 0
        bs = self.cfg.batch_size
        sampler = ResumableSampler(len(self.train_set), self.max_steps * bs, self.seed, start=step * bs)
        return DataLoader(self.train_set, batch_size=bs, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        return DataLoader(self.val_set, batch_size=self.cfg.batch_size, shuffle=False)


def unigram_cross_entropy(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    """Validation loss (nats/token) of the best context-free model: train token frequencies, add-one smoothed."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_p = (counts / counts.sum()).log()
    return float(-log_p[val].mean())
