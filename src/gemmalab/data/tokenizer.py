"""Tokenizers: bytes by default (no download, no vocabulary file), or a local Hugging Face tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens; byte 0 (absent from text) separates documents."""

    name = "bytes"
    vocab_size = 256
    eos_id = 0

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_tensor(self, text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


class LocalHFTokenizer:
    """A tokenizer saved on disk (tokenizer.json and friends), loaded without network access."""

    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer

        if not Path(path).exists():
            raise FileNotFoundError(f"data.tokenizer={path!r} does not exist (allowed: bytes, or a local directory)")
        self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.name = str(Path(path).resolve())
        self.vocab_size = len(self._tok)
        eos = self._tok.eos_token_id
        self.eos_id = eos if eos is not None else 0

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False)


def load_tokenizer(spec: str) -> Tokenizer:
    return ByteTokenizer() if spec == "bytes" else LocalHFTokenizer(spec)
