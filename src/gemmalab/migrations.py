"""Runs from before a change, read as they were: every allowance for an older run directory lives here.

- ADDED_LATER: config keys added after runs existed, with the value that reproduces what those runs did.
  Their run ids leave such a key out at that value (runs/identity.py), so an older run keeps its id; the
  analysis fills it into an older run's row (analysis/loaders.py), so no table asks whether it is there.
- older_block_keys: checkpoints written before a post-LN block had its own residual norm kept that norm
  under *_out_norm (model/block.py reads them through it).
"""

from __future__ import annotations

from typing import Any

ADDED_LATER = {
    "model.init": "shared", "model.kernels": "auto", "trainer.num_nodes": 1, "data.val_max_tokens": None,
    "model.post_norm_init_gain": 1.0,
    # Lightning's Trainer arguments: what a run trains on (the step's batch), what it validates on, what it
    # records and whether it is a fast_dev_run, so each is part of what the run is
    "trainer.accumulate_grad_batches": 1, "trainer.limit_val_batches": 1.0, "trainer.log_every_n_steps": 1,
    "trainer.fast_dev_run": False, "trainer.overfit_batches": 0.0,
}  # fmt: skip


def older_block_keys(state: dict[str, Any], prefix: str, *args: Any) -> None:
    """A post-LN block's state_dict pre-hook: *_out_norm.weight of a checkpoint written before norm_res existed
    is what is now *_res_norm.weight."""
    for sub in ("attn", "mlp"):
        if (old := f"{prefix}{sub}_out_norm.weight") in state:
            state[f"{prefix}{sub}_res_norm.weight"] = state.pop(old)
