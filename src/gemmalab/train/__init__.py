"""Training: the LightningModule, the optimiser and schedule, the Trainer (no Hydra in here).

The names below load their module on first use (PEP 562): importing a light part of the package
(gemmalab.train.config, .stability, .engagement) does not import Lightning, which costs seconds on
every command that only validates or answers --help."""

from importlib import import_module
from typing import Any

_HOME = {
    "OptimConfig": ".config",
    "TrainerConfig": ".config",
    "fit": ".fit",
    "Diverged": ".module",
    "LMModule": ".module",
    "StabilityConfig": ".stability",
    "stability_summary": ".stability",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOME[name], __name__), name)
    # kept as the package's attribute: importing the submodule .fit set `fit` to the module, not the function
    globals()[name] = value
    return value
