"""Build the Lightning Trainer for one run and fit, resuming from a checkpoint when given one."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .checkpoints import SafeCheckpointIO
from .config import TrainerConfig


def progress_bar() -> Callback:
    """Lightning's own bar, labelled `train` rather than `Epoch 0/-2` (a run counts steps; with
    max_epochs=-1 the epoch it shows means nothing); TQDM's where rich is not installed."""
    try:

        class StepsBar(RichProgressBar):
            def _get_train_description(self, current_epoch: int) -> str:
                return "train"

        return StepsBar()
    except ModuleNotFoundError:  # RichProgressBar needs rich
        return TQDMProgressBar()


# What Lightning's subprocess launcher sets in the launching process for its DDP ranks.
LAUNCHER_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

# Set by sweep.py on SIGTERM / SIGINT, whenever it arrives (also before Lightning's own handler exists).
stop_requested = threading.Event()


class StopOnRequest(Callback):
    """Stop after the current step once a stop was requested: raise Lightning's SIGTERMException, which
    ends the fit as a scheduler's SIGTERM would; that step is saved as last.ckpt first, so the rerun
    resumes exactly there."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if stop_requested.is_set():
            raise SIGTERMException

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)


class KillAtStep(Callback):
    """Fault injection for resume tests: SIGKILL this process once `step` optimizer steps are done."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def one_task_slurm_job() -> list[LightningEnvironment]:
    """In a SLURM job of one task (hydra/launcher=slurm keeps tasks_per_node=1), Lightning's own launcher
    starts one rank per device, as outside SLURM; Lightning's SLURM environment would instead insist on
    one SLURM task per device and refuse trainer.devices > 1."""
    return [LightningEnvironment()] if os.environ.get("SLURM_NTASKS") == "1" else []


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    cfg: TrainerConfig,
    checkpoint_dir: Path,
    loggers: list[Logger],
    resume_from: Path | None = None,
    kill_at_step: int | None = None,
) -> L.Trainer:
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir, every_n_train_steps=cfg.ckpt_every, save_last=True, save_top_k=0
    )
    callbacks: list[Callback] = [checkpoint, StopOnRequest(checkpoint_dir / "last.ckpt")]
    if cfg.progress_bar:
        callbacks.append(progress_bar())
    if kill_at_step is not None:
        callbacks.append(KillAtStep(kill_at_step))
    trainer = L.Trainer(
        max_steps=cfg.max_steps,
        max_epochs=-1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.precision,
        logger=loggers,
        callbacks=callbacks,
        val_check_interval=cfg.val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        default_root_dir=checkpoint_dir.parent,
        plugins=[SafeCheckpointIO(), *one_task_slurm_job()],
        use_distributed_sampler=False,  # the datamodule's sampler gives each rank its slice of the global batch
    )
    if cfg.compile:
        module = torch.compile(module)  # Lightning fits a compiled LightningModule as it is
    launched_by = {k: os.environ.get(k) for k in LAUNCHER_ENV}
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    finally:
        # Lightning's launcher leaves its process group up and its variables set (with LOCAL_RANK set, the
        # next Trainer would wait for ranks started by someone else): the next job of a sweep starts afresh
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in launched_by.items():
            if value is None:
                os.environ.pop(key, None)
    return trainer
