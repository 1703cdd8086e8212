"""Files that a kill or a crash never leaves half-written, and damaged files set aside rather than read."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name unique to this writer, flush it to disk, then rename over `path`:
    a reader (or a kill) sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_line(path: Path, line: str) -> None:
    """Append one line; a line a killed writer left cut short is ended first, so the new one stays whole
    (the cut one is skipped by readers, never glued onto the next)."""
    with path.open("a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((line + "\n").encode())


def set_aside(path: Path) -> Path:
    """Rename a damaged file to <name>.damaged (or .damaged-k) beside it; returns the new path."""
    aside, k = path.with_name(path.name + ".damaged"), 0
    while aside.exists():
        k += 1
        aside = path.with_name(f"{path.name}.damaged-{k}")
    os.replace(path, aside)
    return aside
