"""Build the Lightning Trainer for one run and fit, resuming from a checkpoint when given one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler

from .cluster import slurm_environment
from .config import PROFILERS as PROFILER_NAMES
from .config import TrainerConfig
from .lightning_fixes import RunCheckpoint, SafeCheckpointIO, StopOnRequest, progress_bar

# trainer.profiler's names (checked in config.py, before any work) to Lightning's classes
PROFILERS: dict[str, type[Profiler]] = dict(zip(PROFILER_NAMES, (SimpleProfiler, AdvancedProfiler, PyTorchProfiler),
                                                strict=True))  # fmt: skip


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    cfg: TrainerConfig,
    last: Path,
    spare: Path,
    loggers: list[Logger],
    should_stop: Callable[[], bool],
    resume_from: Path | None = None,
    extra_callbacks: list[Callback] = (),
) -> L.Trainer:
    """Fit with checkpoints at `last` (the one it replaces kept as `spare`), stopping after the step at which
    `should_stop()` turns true; resumes from `resume_from` when given."""
    checkpoint = RunCheckpoint(  # one last.ckpt, also over one that StopOnRequest wrote (never last-v1.ckpt)
        dirpath=last.parent, every_n_train_steps=cfg.ckpt_every, save_last=True, save_top_k=0,
        enable_version_counter=False,
    )  # fmt: skip
    checkpoint.CHECKPOINT_NAME_LAST = last.stem  # the run store's name
    callbacks: list[Callback] = [checkpoint, StopOnRequest(last, should_stop), *extra_callbacks]
    if cfg.progress_bar:
        callbacks.append(progress_bar())
    trainer = L.Trainer(
        max_steps=cfg.max_steps,
        max_epochs=-1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        logger=loggers,
        callbacks=callbacks,
        val_check_interval=cfg.val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        log_every_n_steps=cfg.log_every_n_steps,
        # all of them: Lightning's default, given as None (given as 1.0, it says so on every fit)
        limit_val_batches=None
        if cfg.limit_val_batches == 1.0 and isinstance(cfg.limit_val_batches, float)
        else cfg.limit_val_batches,
        fast_dev_run=cfg.fast_dev_run,
        overfit_batches=cfg.overfit_batches,
        deterministic=cfg.deterministic,
        # its report in the run directory (fit-profile.txt), beside what it profiled
        profiler=PROFILERS[cfg.profiler](dirpath=last.parent.parent, filename="profile") if cfg.profiler else None,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        default_root_dir=last.parent.parent,
        plugins=[SafeCheckpointIO(spare), *slurm_environment()],
        use_distributed_sampler=False,  # the datamodule's sampler gives each rank its slice of the global batch
    )
    if cfg.compile:
        # the Decoder compiled in place (nn.Module.compile): its state_dict keys, and so the checkpoints, stay
        # those of an eager run, and the step's own Python (logging, the step counter) stays outside the graph
        module.model.compile()
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    return trainer
