"""Checkpoints that admit damage: checked by their archive's CRCs before anything reads them, and read
weights-only (a checkpoint is written atomically with one spare kept: lightning_fixes.SafeCheckpointIO)."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from gemmalab.errors import DamagedFile


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
