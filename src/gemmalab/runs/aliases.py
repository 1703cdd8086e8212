"""Run aliases: a finished run with `alias: NAME` is findable as `alias:NAME`, so a later job of the
same sweep (a distillation student) can name a teacher whose run id is not known in advance."""

from __future__ import annotations

from pathlib import Path

from gemmalab.errors import ConfigError

from .store import write_atomic

ALIAS_PREFIX = "alias:"


def write_alias(run_root: Path, alias: str, run_id: str) -> None:
    path = Path(run_root) / "_aliases" / alias
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, run_id + "\n")  # two sweeps finishing the same alias: one whole file wins


def resolve_teacher(run_root: Path, spec: str) -> str:
    """A teacher spec as a path: `alias:NAME` becomes the run directory the alias names."""
    if not spec.startswith(ALIAS_PREFIX):
        return spec
    path = Path(run_root) / "_aliases" / spec.removeprefix(ALIAS_PREFIX)
    if not path.exists():
        known = sorted(p.name for p in path.parent.glob("*")) if path.parent.exists() else []
        raise ConfigError(f"distill.teacher={spec!r} names no finished run (allowed: {', '.join(known) or 'none yet'})")
    return str(Path(run_root) / path.read_text().strip())
