"""The embedded default corpus: the Python standard library's own source, read from this interpreter.

No download: every Python installation carries megabytes of real code and prose
(docstrings, comments). Files are taken in sorted order (tests and vendored
packages left out) until the byte budget is reached; every 20th file (the first
included) is held out for validation, so the split is by file, not by position. Which bytes were
used differs between Python versions, so each run records the corpus fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from pathlib import Path

import torch

from .config import held_out

EXCLUDED_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "ensurepip"}


@functools.lru_cache(maxsize=4)
def embedded_corpus(max_bytes: int = 6_000_000) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train bytes, validation bytes, fingerprint) as int64 tensors; documents end with byte 0."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(_source_files(root))
    train, val, used, digest = [], [], 0, hashlib.sha256()
    for i, path in enumerate(files):
        data = path.read_bytes().replace(b"\x00", b"") + b"\x00"
        (val if held_out(i) else train).append(data)
        digest.update(path.relative_to(root).as_posix().encode() + b"\x00" + data)
        used += len(data)
        if used >= max_bytes:
            break
    return _as_tensor(train), _as_tensor(val), f"stdlib-py{sysconfig.get_python_version()}-{digest.hexdigest()[:16]}"


def _source_files(root: Path) -> list[Path]:
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in EXCLUDED_PARTS]
        found.extend(Path(folder) / name for name in names if name.endswith(".py"))
    return found


def _as_tensor(chunks: list[bytes]) -> torch.Tensor:
    data = b"".join(chunks)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long() if data else torch.empty(0, dtype=torch.long)
