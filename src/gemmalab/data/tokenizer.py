"""Tokenizers: bytes by default (no download, no vocabulary file), or a local Hugging Face tokenizer."""

from __future__ import annotations

import json
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
    """A Hugging Face tokenizer saved on disk (tokenizer.json, and tokenizer_config.json or
    special_tokens_map.json for its end-of-text token), read with the `tokenizers` library: no network,
    no transformers."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        folder = Path(path)
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"data.tokenizer={path!r} has no tokenizer.json (allowed: bytes, or a directory "
                                    "a Hugging Face tokenizer was saved to)")  # fmt: skip
        self._tok = HFTokenizer.from_file(str(folder / "tokenizer.json"))
        self.name = str(folder.resolve())
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        eos = _eos_token(folder)
        eos_id = self._tok.token_to_id(eos) if eos else None
        self.eos_id = eos_id if eos_id is not None else 0

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids


def _eos_token(folder: Path) -> str | None:
    """The end-of-text token as saved beside tokenizer.json (a string, or {"content": ...})."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (folder / name).is_file():
            token = json.loads((folder / name).read_text()).get("eos_token")
            if token:
                return token["content"] if isinstance(token, dict) else token
    return None


def load_tokenizer(spec: str) -> Tokenizer:
    return ByteTokenizer() if spec == "bytes" else LocalHFTokenizer(spec)
