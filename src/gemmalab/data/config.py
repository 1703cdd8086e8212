"""What data a run trains on; validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gemmalab.errors import ConfigError, refuse, require_choice, require_int

from .tokenizer import bpe_size

SOURCES = ("embedded", "hf", "files", "mqar")
VAL_EVERY = 20


def split_budgets(cfg: DataConfig) -> dict[str | None, int]:
    """Tokens each pass over the source may take: one pass holding all three splits (key None), or, with a
    validation split, the training split (train and test) and the validation split each their own budget."""
    if cfg.val_split is None:
        return {None: cfg.max_tokens}
    return {"train": cfg.max_tokens, "val": cfg.val_max_tokens or max(1, cfg.max_tokens // VAL_EVERY)}


def split_of(i: int, val_split: bool) -> str:
    """Where document i of the training split's stream goes, one rule for every source: every VAL_EVERY-th
    document from the first is validation (unless data.val_split names a validation split of its own),
    every VAL_EVERY-th from the (VAL_EVERY / 2)-th is test; the rest is train. The test split is read once,
    after training (train/module.py): what a tuned study selects on never sees it."""
    if i % VAL_EVERY == VAL_EVERY // 2:
        return "test"
    return "val" if i % VAL_EVERY == 0 and not val_split else "train"


@dataclass
class DataConfig:
    source: str = "embedded"
    seq_len: int = 128
    batch_size: int = 8  # the global batch: under DDP each device reads batch_size / devices of it
    val_batches: int = 8
    tokenizer: str = "bytes"  # bytes | bpe:N (trained here; data/tokenizer.py) | a local tokenizer directory
    # tokens taken from the source: train and validation together, or, with data.val_split, the training
    # split's alone, the validation split then taking up to val_max_tokens (None: max_tokens // VAL_EVERY)
    max_tokens: int = 6_000_000
    val_max_tokens: int | None = None
    cache_dir: str | None = None  # the token cache (data/cache.py); None: <run_root>/_cache
    # a run that needs more training sequences than the cache holds is refused (cache.check_budget) unless
    # this is true; then it reshuffles and repeats them, and its summary says how often (data/epochs)
    allow_repeat: bool = False
    # source=hf: datasets.load_dataset(name, config, split=..., streaming=...)
    name: str | None = None
    config: str | None = None
    split: str = "train"
    val_split: str | None = None  # None: every 20th document is held out for validation (split_of below)
    text_column: str = "text"
    streaming: bool = False
    # source=files: local text / json / jsonl / parquet files
    files: list[str] | None = None
    # source=mqar: multi-query associative recall
    n_pairs: int = 4
    train_items: int = 100_000

    def __post_init__(self) -> None:
        require_choice("data.source", self.source, SOURCES)
        for key in ("seq_len", "batch_size", "val_batches", "max_tokens", "n_pairs", "train_items"):
            require_int(f"data.{key}", getattr(self, key))
        if self.val_max_tokens is not None:
            require_int("data.val_max_tokens", self.val_max_tokens)
            if self.val_split is None:
                raise ConfigError(f"data.val_max_tokens={self.val_max_tokens} is not allowed without data.val_split "
                                  "(allowed: null: the held-out documents come out of data.max_tokens)")  # fmt: skip
        if not isinstance(self.allow_repeat, bool):
            refuse("data.allow_repeat", self.allow_repeat, "true or false")
        if self.source == "hf" and not self.name:
            raise ConfigError("data.name=None is not allowed with data.source=hf (allowed: a dataset name or path)")
        if self.source == "files" and not self.files:
            raise ConfigError("data.files=None is not allowed with data.source=files (allowed: a list of paths)")
        for path in self.files if self.source == "files" else []:
            if not Path(path).is_file():
                raise ConfigError(f"data.files entry {path!r} is not a file (allowed: paths of existing text, "
                                  "json, jsonl or parquet files)")  # fmt: skip
        if self.tokenizer != "bytes" and bpe_size(self.tokenizer) is None and not Path(self.tokenizer).is_dir():
            raise ConfigError(f"data.tokenizer={self.tokenizer!r} is not allowed (allowed: bytes, bpe:N, or a "
                              "local directory holding a Hugging Face tokenizer)")  # fmt: skip
        if self.source == "mqar" and self.tokenizer != "bytes":
            raise ConfigError(
                f"data.tokenizer={self.tokenizer!r} is not allowed with data.source=mqar (allowed: bytes)"
            )
