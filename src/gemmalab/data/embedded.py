"""The embedded default corpus: the Python standard library's own source, read from this interpreter.

No download: every Python installation carries megabytes of real code and prose
(docstrings, comments). Each file (tests and vendored packages left out) is one document,
in sorted order; the token cache (data/cache.py) takes them until the budget is reached and
holds every 20th out for validation, so the split is by file, not by position. Which files
exist differs between Python versions, so the fingerprint covers every file's name and bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

EXCLUDED_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "ensurepip"}
FILES_PER_BATCH = 64


@functools.lru_cache(maxsize=1)
def stdlib_files() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in EXCLUDED_PARTS]
        found.extend(Path(folder) / name for name in names if name.endswith(".py"))
    return tuple(sorted(found))


@functools.lru_cache(maxsize=1)
def embedded_fingerprint() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    digest = hashlib.sha256()
    for path in stdlib_files():
        digest.update(path.relative_to(root).as_posix().encode() + b"\x00" + path.read_bytes())
    return f"stdlib-py{sysconfig.get_python_version()}-{digest.hexdigest()[:16]}"


def embedded_documents() -> Iterator[list[str]]:
    """The files' text in batches; NUL bytes (the byte tokenizer's separator) removed."""
    files = stdlib_files()
    for start in range(0, len(files), FILES_PER_BATCH):
        yield [
            p.read_bytes().replace(b"\x00", b"").decode("utf-8", errors="replace")
            for p in files[start : start + FILES_PER_BATCH]
        ]
