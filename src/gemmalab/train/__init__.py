"""Training: the LightningModule, the optimiser and schedule, the Trainer (no Hydra in here)."""

from .config import OptimConfig, TrainerConfig
from .fit import fit
from .module import Diverged, LMModule

__all__ = ["Diverged", "LMModule", "OptimConfig", "TrainerConfig", "fit"]
