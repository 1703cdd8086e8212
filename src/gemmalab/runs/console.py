"""A quiet console: the lines a user reads past, dropped one by one by their exact text.

Only messages named here are dropped; every other warning and log line still shows.
"""

from __future__ import annotations

import logging
import warnings

# Lightning's advert for its cloud logger, printed once per Trainer.
_TIPS = ("💡 Tip: For seamless cloud logging",)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_TIPS)


def quiet() -> None:
    """Drop Lightning's tip banner and the pytree deprecation Lightning 2.6 triggers in torch 2.13 on
    every fit (Lightning's code, not ours: nothing a user can act on)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())  # rank_zero_info's logger
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
