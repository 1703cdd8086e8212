"""Teachers by name: a finished run with `alias: NAME` is findable as `alias:NAME`, so a later job of the
same sweep (a distillation student) can name a teacher whose run id is not known in advance; and what
a teacher spec (an alias, a run directory, a checkpoint in one) points at in the run store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gemmalab.errors import ConfigError, require_name
from gemmalab.model import Decoder
from gemmalab.train.distill import ALIAS_PREFIX, load_teacher

from .files import write_atomic
from .store import RunDir, aliases_dir


def write_alias(run_root: Path, alias: str, run_id: str) -> None:
    path = aliases_dir(run_root) / require_name("alias", alias)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, run_id + "\n")  # two sweeps finishing the same alias: one whole file wins


def resolve_teacher(run_root: Path, spec: str) -> str:
    """A teacher spec as a path: `alias:NAME` becomes the run directory the alias names."""
    if not spec.startswith(ALIAS_PREFIX):
        return spec
    path = aliases_dir(run_root) / require_name("distill.teacher", spec.removeprefix(ALIAS_PREFIX), ALIAS_PREFIX)
    if not path.exists():
        known = sorted(p.name for p in path.parent.glob("*")) if path.parent.exists() else []
        raise ConfigError(f"distill.teacher={spec!r} names no finished run (allowed: {', '.join(known) or 'none yet'})")
    return str(Path(run_root) / path.read_text().strip())


def teacher_run(spec: str) -> RunDir:
    """The run a teacher spec names: the directory itself or the one holding a checkpoint."""
    path = Path(spec)
    run = RunDir.at(path.parent.parent if path.suffix == ".ckpt" else path)
    if not run.config_path.exists():
        raise ConfigError(f"distill.teacher={spec!r} is not a run directory or a checkpoint in one "
                          "(allowed: runs/<run_id>, runs/<run_id>/checkpoints/last.ckpt, alias:NAME)")  # fmt: skip
    return run


def teacher_config(spec: str) -> dict[str, Any]:
    return yaml.safe_load(teacher_run(spec).config_path.read_text())


def teacher_checkpoint(spec: str) -> Path:
    """The checkpoint a teacher spec names: the one given, or its run's last one."""
    return Path(spec) if spec.endswith(".ckpt") else teacher_run(spec).last_checkpoint_path


def teacher_model(spec: str) -> Decoder:
    """The teacher a spec names, with its trained weights, frozen (train/distill.py load_teacher)."""
    return load_teacher(teacher_checkpoint(spec), teacher_config(spec))
