"""Faults a test injects into a real fit through the job's config (`callbacks.<name>._target_`), outside
the production schema and code: `python sweep.py ... *fault(6)` kills the job in its 7th step."""

from __future__ import annotations

import os
import shutil
import signal as signals
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

SIGNALS = ("KILL", "TERM", "INT", "USR2")  # a crash, a scheduler's stop, Ctrl-C, submitit's preemption


class SignalAtStep(Callback):
    """Send this process `signal` once `step` optimizer steps are done (rank 0 alone)."""

    def __init__(self, step: int, signal: str = "KILL") -> None:
        if signal not in SIGNALS:
            raise ValueError(f"signal={signal!r} is not allowed (allowed: {', '.join(SIGNALS)})")
        self.step, self.signum = step, signals.Signals[f"SIG{signal}"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.kill(os.getpid(), self.signum)


def fault(step: int, signum: str = "KILL") -> list[str]:
    """The overrides that inject SignalAtStep into a job."""
    target = f"{__name__}.{SignalAtStep.__name__}"
    return [f"+callbacks.fault._target_={target}", f"+callbacks.fault.step={step}", f"+callbacks.fault.signal={signum}"]


class RemoveRunDirAtStep(Callback):
    """Delete the run's directory (the Trainer's root) once `step` optimizer steps are done: a user's `rm -rf`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            shutil.rmtree(trainer.default_root_dir)


class SignalDuringValidation(Callback):
    """Send this process `signal` in the middle of the validation that follows optimizer step `step`."""

    def __init__(self, step: int, signal: str = "TERM") -> None:
        self.step, self.signum = step, signals.Signals[f"SIG{signal}"]

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.global_step == self.step and batch_idx == 0 and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)


class WaitAtStep(Callback):
    """Hold the fit once `step` optimizer steps are done, for up to `seconds`, until a signal has asked it to
    stop: the moment a test's scheduler signals the job (`waiting` in the run directory says it has come).
    The signal arrives mid-training at a known step, whatever the machine's speed."""

    def __init__(self, step: int, seconds: float = 120.0) -> None:
        self.step, self.seconds = step, seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step or not trainer.is_global_zero:
            return
        run_dir = Path(trainer.default_root_dir)
        (run_dir / "waiting").write_text(str(self.step))
        deadline = time.monotonic() + self.seconds
        asked = [cb for cb in trainer.callbacks if hasattr(cb, "signalled")]  # train/lightning_fixes.py StopOnRequest
        while time.monotonic() < deadline and not (any(cb.signalled for cb in asked) or (run_dir / "requeue").exists()):
            time.sleep(0.05)


def wait_at(step: int) -> list[str]:
    """The overrides that hold a job at `step` until it is signalled (WaitAtStep)."""
    return [f"+callbacks.wait._target_={__name__}.{WaitAtStep.__name__}", f"+callbacks.wait.step={step}"]
