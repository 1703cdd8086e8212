"""Build the Lightning Trainer for one run and fit, resuming from a checkpoint when given one."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .checkpoints import SafeCheckpointIO
from .cluster import slurm_environment
from .config import PROFILERS as PROFILER_NAMES
from .config import TrainerConfig


class WholeRunTotal:
    """A bar's total: the run's batches (max_steps x accumulate_grad_batches), the scale its count is on.
    Lightning's own, the steps left, is right only from step 0: a resumed run counts on from its restored
    batch, so its bar read 200/161."""

    @property
    def total_train_batches(self) -> int | float:
        trainer = self.trainer
        return min(trainer.num_training_batches, trainer.max_steps * trainer.accumulate_grad_batches)


def progress_bar() -> Callback:
    """Lightning's own bar, labelled `train` rather than `Epoch 0/-2` (a run counts steps; with
    max_epochs=-1 the epoch it shows means nothing); TQDM's where rich is not installed."""
    try:

        class StepsBar(WholeRunTotal, RichProgressBar):
            def _get_train_description(self, current_epoch: int) -> str:
                return "train"

        return StepsBar()
    except ModuleNotFoundError:  # RichProgressBar needs rich

        class StepsTQDMBar(WholeRunTotal, TQDMProgressBar):
            pass

        return StepsTQDMBar()


class RunCheckpoint(ModelCheckpoint):
    """Lightning's periodic last.ckpt (every trainer.ckpt_every steps), and the final step's whatever the
    period: a run's last.ckpt is always the model it trained (evaluation and teachers load it)."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step and not trainer.fast_dev_run:  # it keeps nothing
            last = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
            trainer.save_checkpoint(last, weights_only=False)  # the whole state: a run resumes from it
            self._last_global_step_saved = trainer.global_step


class StopOnRequest(Callback):
    """Stop after the current step once `should_stop()` says so (a stop file of the run store, asked at the
    end of every step: a stat or two, no thread and no state in memory). The step is saved as last.ckpt where
    ModelCheckpoint saves (the end of the step, the state Lightning's resume expects), its metrics are
    logged and a validation due after it runs; then, before the next step starts, Lightning's
    SIGTERMException ends the fit as a scheduler's SIGTERM would. The rerun resumes exactly there, with
    every step logged once. A SIGTERM that Lightning catches itself ends the fit after the step too;
    that step is saved on the way out. Under DDP the ranks agree at every step (one all-reduce of a
    flag), so all of them stop at the same step, whichever rank was asked, and save together."""

    def __init__(self, path: Path, should_stop: Callable[[], bool]) -> None:
        self.path, self.should_stop = path, should_stop
        self.saved_step: int | None = None
        self.signalled = False
        self.sigterm_before_fit = signal.getsignal(signal.SIGTERM)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning's own SIGTERM handler makes its loops raise at once, inside a validation pass too (that
        # step's validation would be lost for good: the rerun resumes after it), and under DDP it broadcasts
        # from inside the handler, which deadlocks when a rank is in another collective (seen: two gloo
        # ranks hung for good). Here a SIGTERM only requests the stop, taken at the end of a step; a process
        # that ignores SIGTERM (a DDP helper: its job decides) goes on ignoring it.
        if self.sigterm_before_fit != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.signalled = True
        if callable(self.sigterm_before_fit):  # sweep.py's: the other jobs of the sweep stop too
            self.sigterm_before_fit(signum, frame)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:  # within a step: a resume starts at a step's start
            return
        stop = self.signalled or self.should_stop()
        if trainer.world_size > 1:  # an all-reduce every step: a file may appear between two ranks' checks
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)  # any rank
        if stop:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.saved_step is not None:
            raise SIGTERMException

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and self.saved_step != trainer.global_step:
            trainer.save_checkpoint(self.path, weights_only=False)


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
