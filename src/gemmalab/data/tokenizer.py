"""Tokenizers: bytes (the default), a byte-level BPE trained here (`bpe:N`), or a local Hugging Face
tokenizer directory. None needs a download or `transformers`.

`bpe:N` is trained with the `tokenizers` library on the source's training documents (the first
BPE_TRAIN_CHARS characters of them), once per (source, N): the same source and N give the same
vocabulary, so caches of different token budgets share it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from gemmalab.errors import ConfigError

BPE_PREFIX = "bpe:"
BPE_MIN = 512  # 256 byte symbols, the end-of-text token, and room for merges
BPE_TRAIN_CHARS = 20_000_000  # ~1 min of training on 2 cores; more text barely changes an 8k vocabulary
EOS_TOKEN = "<|endoftext|>"
SAVED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")  # a saved HF tokenizer


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eos_id: int

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens; byte 0 (absent from text) separates documents."""

    name = "bytes"
    vocab_size = 256
    eos_id = 0

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]


class LocalHFTokenizer:
    """A Hugging Face tokenizer saved on disk (tokenizer.json, and tokenizer_config.json or
    special_tokens_map.json for its end-of-text token), read with the `tokenizers` library: no network,
    no transformers. Batches are encoded by the library's Rust threads, on every core."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        folder = Path(path)
        if not (folder / SAVED_FILES[0]).is_file():
            raise ConfigError(f"data.tokenizer={str(path)!r} has no tokenizer.json (allowed: bytes, bpe:N, or a "
                              "directory a Hugging Face tokenizer was saved to)")  # fmt: skip
        try:
            self._tok = HFTokenizer.from_file(str(folder / SAVED_FILES[0]))
            eos = _eos_token(folder)
        except Exception as err:  # `tokenizers` raises a bare Exception for a file it cannot parse
            why = " ".join(str(err).split())
            raise ConfigError(f"data.tokenizer={str(path)!r} cannot be read ({why}) (allowed: a directory a "
                              "Hugging Face tokenizer was saved to, whole)") from None  # fmt: skip
        self.name = name or str(folder.resolve())
        digest = hashlib.sha256()
        for file in _saved_files(folder):
            digest.update(file.read_bytes())
        self.digest = digest.hexdigest()[:16]  # the saved files' content: what a token cache is keyed by
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        eos_id = self._tok.token_to_id(eos) if eos else None
        self.eos_id = eos_id if eos_id is not None else 0

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        encoded = self._tok.encode_batch_fast(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.uint32) for e in encoded]


def _saved_files(folder: Path) -> list[Path]:
    return [folder / name for name in SAVED_FILES if (folder / name).is_file()]


def load_saved(folder: str | Path) -> LocalHFTokenizer:
    """A saved tokenizer, read once per process while its files stay as they are (every composed job of a
    sweep asks for its vocabulary size, and a 256k-token tokenizer.json takes a while to parse)."""
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in _saved_files(Path(folder)))
    return _load_saved(str(Path(folder).resolve()), stamp)


@functools.lru_cache(maxsize=8)
def _load_saved(folder: str, stamp: tuple) -> LocalHFTokenizer:
    return LocalHFTokenizer(folder)


def _eos_token(folder: Path) -> str | None:
    """The end-of-text token as saved beside tokenizer.json (a string, or {"content": ...})."""
    for name in SAVED_FILES[1:]:
        if (folder / name).is_file():
            token = json.loads((folder / name).read_text()).get("eos_token")
            if token:
                return token["content"] if isinstance(token, dict) else token
    return None


def bpe_size(spec: str) -> int | None:
    """N for `bpe:N`, None for any other tokenizer; raises ConfigError for a malformed N."""
    if not spec.startswith(BPE_PREFIX):
        return None
    n = spec[len(BPE_PREFIX) :]
    if not n.isdigit() or int(n) < BPE_MIN:
        raise ConfigError(f"data.tokenizer={spec!r} is not allowed (allowed: bpe:N with N an integer >= {BPE_MIN})")
    return int(n)


def vocab_size_of(spec: str) -> int:
    """The vocabulary a model needs for tokenizer `spec`, known before any tokenizer is trained."""
    if spec == "bytes":
        return ByteTokenizer.vocab_size
    if (n := bpe_size(spec)) is not None:
        return n
    return load_saved(spec).vocab_size


def train_bpe(texts: Iterable[str], vocab_size: int, folder: Path) -> None:
    """A byte-level BPE (GPT-2's pre-tokenizer, no unknown tokens) with EOS_TOKEN as id 0, trained on
    `texts` and saved to `folder` as a Hugging Face tokenizer directory."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS_TOKEN], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS_TOKEN}) + "\n")
