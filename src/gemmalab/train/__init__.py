"""Training: the LightningModule, the optimiser and schedule, the Trainer (no Hydra in here)."""

from .config import OptimConfig, TrainerConfig
from .fit import fit
from .module import Diverged, LMModule
from .stability import StabilityConfig, stability_summary

__all__ = ["Diverged", "LMModule", "OptimConfig", "StabilityConfig", "TrainerConfig", "fit", "stability_summary"]
