"""Where gemmalab changes what Lightning does, each in one class: what Lightning does, what it does here and
why, and the test that fails without it. Written against Lightning 2.6 (2.6.6 installed when written;
pyproject asks for >= 2.4): on an upgrade, run those tests first.

- WholeRunTotal / progress_bar: the bar counts the whole run (Lightning counts the steps left, so a resumed
  run read 200/161) and is labelled `train`, not `Epoch 0/-2`.
  tests/train/test_fit.py::test_a_resumed_runs_bar_counts_on_the_whole_runs_scale
- RunCheckpoint: last.ckpt is also written at the final step when it falls between two periodic saves.
  tests/train/test_fit.py::test_the_last_step_is_saved_even_between_two_periodic_checkpoints
- StopOnRequest: a stop file or SIGTERM ends the fit after the current step, saved, in step on every DDP
  rank (Lightning's own SIGTERM handler raises inside a validation pass and can deadlock DDP ranks).
  tests/runs/test_stops.py::test_a_stop_file_or_a_requeue_mark_stops_the_fit, tests/test_sweep.py
- SafeCheckpointIO: checkpoints written atomically with the one before kept, and read weights-only.
  tests/runs/test_store.py::test_checkpoints_are_written_atomically_and_the_one_before_is_kept
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .checkpoints import load_weights


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint writer, made atomic and keeping one spare: the new file is written under
    a temporary name unique to this process and flushed to disk; the checkpoint it replaces becomes
    `spare` (the run store's previous.ckpt); then it is renamed into place. A kill during a save never
    leaves half a file under a checkpoint's name, and a damaged last.ckpt has an older one to fall back on."""

    def __init__(self, spare: Path) -> None:
        super().__init__()
        self.spare = spare

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        except BaseException:  # disk full, the directory removed, a kill: no half file left behind
            tmp.unlink(missing_ok=True)
            raise
        if path.exists():
            os.replace(path, self.spare)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        """Lightning's resume: weights-only whatever `weights_only` or the environment says (load_weights)."""
        return load_weights(Path(path), map_location)


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
