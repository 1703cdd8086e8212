"""Checkpoints that survive a kill and admit damage: written atomically with one spare kept, checked
by their archive's CRCs before anything reads them."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gemmalab.errors import DamagedFile


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint writer, made atomic and keeping one spare: the new file is written under
    a temporary name unique to this process and flushed to disk; the checkpoint it replaces becomes
    `spare` (the run store's previous.ckpt); then it is renamed into place. A kill during a save never
    leaves half a file under a checkpoint's name, and a damaged last.ckpt has an older one to fall back on."""

    def __init__(self, spare: Path) -> None:
        super().__init__()
        self.spare = spare

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        except BaseException:  # disk full, the directory removed, a kill: no half file left behind
            tmp.unlink(missing_ok=True)
            raise
        if path.exists():
            os.replace(path, self.spare)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        """Lightning's resume: weights-only whatever `weights_only` or the environment says (load_weights)."""
        return load_weights(Path(path), map_location)


def load_weights(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """torch.load with weights_only=True passed explicitly, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn
    off: tensors and plain values, nothing else is unpickled. A file holding anything else raises DamagedFile
    (a checkpoint gemmalab wrote never does; unpickling it could run its code)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        what = found.group(1) if found else "objects beyond tensors and plain values"
        raise DamagedFile(
            f"{path} holds {what}, which loading would run as code: not loaded (gemmalab's "
            "checkpoints hold only tensors and plain values; set the file aside to resume from the "
            "one before, or retrain)"
        ) from None


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint cannot be trusted, or None when it is intact: torch.save writes a zip archive
    whose members carry CRCs, so a cut-short or overwritten file fails this without being unpickled."""
    try:
        if not zipfile.is_zipfile(path):
            return "not a complete torch checkpoint (cut short or overwritten)"
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return f"checksum mismatch in {bad}" if bad else None
    except (OSError, zipfile.BadZipFile, EOFError) as err:  # e.g. a member cut short
        return f"unreadable ({type(err).__name__}: {err})"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors and plain values (weights_only: nothing is unpickled beyond them), after its
    CRCs are checked; a damaged one raises DamagedFile naming it."""
    if problem := checkpoint_problem(path):
        raise DamagedFile(f"{path} is damaged ({problem}); the run's logged figures stand, but its weights "
                          "must be retrained to use them")  # fmt: skip
    return load_weights(path)
