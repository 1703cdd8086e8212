"""Preemption and time limits under submitit (hydra/launcher=slurm | submitit_local): save, then requeue.

In every job it runs, submitit handles its preemption signal (USR2, which SLURM sends
signal_delay_s before the time limit or on preemption) by pickling the job and requeueing it at
once, wherever training is: the requeued run would resume from the last periodic checkpoint and
redo up to trainer.ckpt_every steps. Here, while the job trains its run, the signal only marks the
run directory (RunDir.requeue_path): every process training the run stops after its current step
(runs/stops.py), which is saved as last.ckpt and recorded `interrupted`; then submitit's own handler
runs, and the requeued job resumes from exactly that step into the same run and W&B run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

from submitit.core.job_environment import JobEnvironment, SignalHandler

from .store import RunDir


def requeue_signal() -> signal.Signals:
    """submitit's preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return JobEnvironment._usr_sig()


@contextlib.contextmanager
def deferred_requeue(run: RunDir) -> Iterator[None]:
    """In a submitit job, while `run` trains: its preemption signal marks the run instead of requeueing at
    once (requeue_if_asked hands over afterwards). Elsewhere nothing changes."""
    submitit_handler = signal.getsignal(requeue_signal())
    if not isinstance(getattr(submitit_handler, "__self__", None), SignalHandler):
        yield  # not a submitit job
        return

    def mark_the_run(signum: int, _frame: object) -> None:
        if not run.requeue_path.exists():
            print(f"[gemmalab] {signal.Signals(signum).name} (preempted or at the time limit): saving the "
                  "current step, then requeueing", file=sys.stderr)  # fmt: skip
            run.requeue_path.touch()

    signal.signal(requeue_signal(), mark_the_run)
    try:
        yield
    finally:
        signal.signal(requeue_signal(), submitit_handler)


def requeue_if_asked(run: RunDir) -> None:
    """Once the job is saved and recorded: when the run was marked, hand over to submitit's handler, which
    requeues the job (or says why not, e.g. too many timeouts) and ends this process."""
    if run.requeue_path.exists():
        run.requeue_path.unlink()
        signal.getsignal(requeue_signal())(requeue_signal(), None)
