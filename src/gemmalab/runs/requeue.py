"""Preemption and time limits under submitit (hydra/launcher=slurm | submitit_local): save, then requeue.

In every job it runs, submitit handles its preemption signal (USR2, which SLURM sends
signal_delay_s before the time limit or on preemption) by pickling the job and requeueing it at
once, wherever training is: the requeued run would resume from the last periodic checkpoint and
redo up to trainer.ckpt_every steps. Here the signal only asks the fit to stop after its current
step, which is saved as last.ckpt and recorded `interrupted`; submitit's own handler runs after
that, and the requeued job resumes from exactly that step into the same run and W&B run.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from submitit.core.job_environment import JobEnvironment, SignalHandler

from gemmalab.train.fit import stop_requested

_deferred: list[Any] = []  # submitit's handler, once its signal arrived


def requeue_signal() -> signal.Signals:
    """submitit's preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return JobEnvironment._usr_sig()


def defer_submitit_requeue() -> None:
    """In a submitit job: its preemption signal stops the fit after the current step instead of
    requeueing at once (requeue_if_asked does that afterwards). Elsewhere nothing changes."""
    submitit_handler = signal.getsignal(requeue_signal())
    if not isinstance(getattr(submitit_handler, "__self__", None), SignalHandler):
        return  # not a submitit job, or already deferred

    def save_then_requeue(signum: int, _frame: object) -> None:
        if not _deferred:
            print(f"[gemmalab] {signal.Signals(signum).name} (preempted or at the time limit): saving the "
                  "current step, then requeueing", file=sys.stderr)  # fmt: skip
            _deferred.append(submitit_handler)
        stop_requested.set()

    signal.signal(requeue_signal(), save_then_requeue)


def requeue_if_asked() -> None:
    """Once the job is saved and recorded: hand over to submitit's handler, which requeues the job
    (or says why not, e.g. too many timeouts) and ends this process."""
    if _deferred:
        _deferred[0](requeue_signal(), None)
