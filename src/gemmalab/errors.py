"""The two errors every part of gemmalab raises, and the config checks, kept apart from any one package."""

from __future__ import annotations

import math
import re
from typing import NoReturn


class ConfigError(ValueError):
    """An impossible configuration; the message is one line naming key, value and what is allowed."""


class DamagedFile(ValueError):
    """A run-store file that cannot be what was written; the message names the file and the cause."""


class RunBusy(RuntimeError):
    """Another live process is training this run; the message names the run and its holder."""


# The checks every config dataclass runs in __post_init__; each failure is one line naming the key as
# typed on the command line, the value, and what is allowed.


def refuse(key: str, value: object, allowed: str) -> NoReturn:
    raise ConfigError(f"{key}={value!r} is not allowed (allowed: {allowed})")


def is_number(value: object) -> bool:
    """A finite int or float (not a bool: True would pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(key: str, value: object, minimum: int = 1, allowed: str | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        refuse(key, value, allowed or f"an integer >= {minimum}")


def require_positive(key: str, value: object, allowed: str = "a finite number > 0") -> None:
    if not is_number(value) or value <= 0:
        refuse(key, value, allowed)


def require_range(key: str, value: object, low: float, high: float, allowed: str) -> None:
    """low <= value <= high, finite (high may be math.inf)."""
    if not is_number(value) or not low <= value <= high:
        refuse(key, value, allowed)


def require_choice(key: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        refuse(key, value, ", ".join(options))


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def require_name(key: str, value: object, shown: str = "") -> str:
    """A name that becomes a path in the run store (a group, an alias) is one path component of a safe
    alphabet: never `..`, `/abs/path` or `a/b`, which would write outside the store. `shown`: the value's
    prefix as typed (alias:)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        refuse(
            key,
            f"{shown}{value}" if isinstance(value, str) else value,
            "one name of letters, digits and . _ -, starting with a letter or digit",
        )
    return value
