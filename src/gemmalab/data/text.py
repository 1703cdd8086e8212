"""Text from Hugging Face datasets (hub name or local text / json / parquet files), tokenized and joined."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch

from .config import held_out
from .tokenizer import Tokenizer

FILE_BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def load_documents(
    name: str | None,
    config: str | None,
    split: str,
    files: list[str] | None,
    text_column: str,
    streaming: bool,
) -> Iterable[str]:
    """Documents from `datasets.load_dataset`: a dataset name, or local files by extension."""
    from datasets import load_dataset

    if files:
        suffixes = {Path(f).suffix for f in files}
        unknown = suffixes - FILE_BUILDERS.keys()
        if unknown or len({FILE_BUILDERS[s] for s in suffixes}) != 1:
            raise ValueError(
                f"data.files={files} mixes or uses unknown types {sorted(suffixes)} "
                f"(allowed: one of {', '.join(FILE_BUILDERS)})"
            )
        dataset = load_dataset(FILE_BUILDERS[suffixes.pop()], data_files=list(files), split=split, streaming=streaming)
    else:
        dataset = load_dataset(name, config, split=split, streaming=streaming)
    columns = dataset.column_names
    if columns is not None and text_column not in columns:
        raise ValueError(f"data.text_column={text_column!r} is not a column (allowed: {', '.join(columns)})")
    return (row[text_column] for row in dataset)


def tokenize_documents(
    documents: Iterable[str], tokenizer: Tokenizer, max_tokens: int, split_val: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate tokenized documents, each followed by EOS, up to max_tokens in all.
    With split_val, the documents config.held_out picks go to a second, held-out stream."""
    train: list[int] = []
    val: list[int] = []
    for i, text in enumerate(documents):
        if len(train) + len(val) >= max_tokens:
            break
        target = val if split_val and held_out(i) else train
        target.extend(tokenizer.encode(text))
        target.append(tokenizer.eos_id)
    return torch.tensor(train, dtype=torch.long), (torch.tensor(val, dtype=torch.long) if split_val else None)


def fingerprint(*streams: torch.Tensor, tokenizer_name: str) -> str:
    digest = hashlib.sha256(tokenizer_name.encode())
    for tokens in streams:
        digest.update(tokens.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()[:16]
