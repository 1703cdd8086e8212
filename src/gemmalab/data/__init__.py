"""Training data: the embedded corpus, Hugging Face / local datasets, synthetic tasks.

LMDataModule loads on first use (PEP 562): the data's configuration and sources are read by every
command's validation, Lightning only by a run that trains."""

from typing import Any

from .config import DataConfig

__all__ = ["DataConfig", "LMDataModule"]


def __getattr__(name: str) -> Any:
    if name == "LMDataModule":
        from .datamodule import LMDataModule

        return LMDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
