"""Training data: the embedded corpus, Hugging Face / local datasets, synthetic tasks."""

from .config import DataConfig
from .datamodule import LMDataModule

__all__ = ["DataConfig", "LMDataModule"]
