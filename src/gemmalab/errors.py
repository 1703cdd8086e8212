"""The two errors every part of gemmalab raises, kept apart from any one package."""

from __future__ import annotations


class ConfigError(ValueError):
    """An impossible configuration; the message is one line naming key, value and what is allowed."""


class DamagedFile(ValueError):
    """A run-store file that cannot be what was written; the message names the file and the cause."""
