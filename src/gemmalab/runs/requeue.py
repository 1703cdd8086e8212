"""Preemption, requeues and time limits under submitit (hydra/launcher=slurm | slurm_cpu | submitit_local):
save the current step, then let the job be requeued.

In every job it runs, submitit handles its preemption signal (USR2, which SLURM sends signal_delay_s
before the time limit, and on preemption where SlurmctldParameters=preempt_send_user_signal) by pickling
the job and requeueing it at once, wherever training is: the requeued run would resume from the last
periodic checkpoint and redo up to trainer.ckpt_every steps. SLURM itself sends SIGTERM when it requeues
a job (`scontrol requeue`) or preempts it without that setting, and submitit ignores SIGTERM.

Here, while the job trains its run, either signal only marks the run directory (RunDir.requeue_path) with
who requeues the job: every process training the run stops after its current step (runs/stops.py), which
is saved as last.ckpt and recorded `interrupted`; then requeue_if_asked hands over to submitit (USR2, a
preemption: `scontrol requeue` from the job) or ends the job without a result (SLURM is requeueing it
already). The requeued job resumes from exactly that step into the same run and W&B run. A SIGTERM that
means neither (`scancel`) is a stop, as anywhere else (train/lightning_fixes.py StopOnRequest).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from submitit.core.job_environment import JobEnvironment, SignalHandler
from submitit.slurm.slurm import SlurmJobEnvironment

from .store import RunDir

BY_SUBMITIT, BY_SLURM = "submitit", "slurm"  # what a requeue mark says: who requeues the job


def requeue_signal() -> signal.Signals:
    """submitit's preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return JobEnvironment._usr_sig()


def slurm_job_state() -> dict[str, str]:
    """This SLURM job as the controller sees it (`scontrol show job -o`), {} when it cannot say. A task of a
    job array (submitit submits a sweep as one) is named <array>_<task>: its SLURM_JOB_ID may be the
    array's own, which names every task."""
    job = os.environ["SLURM_JOB_ID"]
    if task := os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{task}"
    command = ["scontrol", "show", "job", "-o", job]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def in_slurm_job() -> bool:
    handler = getattr(signal.getsignal(requeue_signal()), "__self__", None)
    return isinstance(handler, SignalHandler) and isinstance(handler.env, SlurmJobEnvironment)


def who_requeues() -> str | None:
    """Who requeues this SLURM job, as its controller says (what a SIGTERM to it means): SLURM itself
    (`scontrol requeue` counts the restart at once: Restarts passes this attempt's SLURM_RESTART_COUNT), the
    job, through submitit, in a preemption's grace time (PreemptTime set), or nobody: a stop (`scancel`)."""
    state = slurm_job_state()
    if int(state.get("Restarts", 0)) > int(os.environ.get("SLURM_RESTART_COUNT", 0)):
        return BY_SLURM
    if state.get("PreemptTime", "None") not in ("None", "Unknown"):
        return BY_SUBMITIT
    return None


@contextlib.contextmanager
def deferred_requeue(run: RunDir) -> Iterator[None]:
    """In a submitit job, while `run` trains: its preemption signal (and in a SLURM job a requeue's or a
    preemption's SIGTERM) marks the run instead of requeueing at once; requeue_if_asked hands over
    afterwards. Elsewhere nothing changes."""
    submitit_handler = signal.getsignal(requeue_signal())
    if not isinstance(getattr(submitit_handler, "__self__", None), SignalHandler):
        yield  # not a submitit job
        return
    sigterm_handler = signal.getsignal(signal.SIGTERM)

    def mark(who: str, why: str) -> None:
        if not run.requeue_path.exists():
            print(f"[gemmalab] {why}: saving the current step, then requeueing", file=sys.stderr)
            run.requeue_path.write_text(who)

    def on_requeue_signal(signum: int, _frame: object) -> None:
        mark(BY_SUBMITIT, f"{signal.Signals(signum).name} (preempted or at the time limit)")

    def on_sigterm(
        _signum: int, _frame: object
    ) -> None:  # else a stop, which train/lightning_fixes.py StopOnRequest takes
        if who := who_requeues():
            mark(who, "SIGTERM (SLURM requeues the job)" if who == BY_SLURM else "SIGTERM (preempted)")

    if in_slurm_job():  # asked while submitit's handler is in place
        signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(requeue_signal(), on_requeue_signal)
    try:
        yield
    finally:
        signal.signal(requeue_signal(), submitit_handler)
        signal.signal(signal.SIGTERM, sigterm_handler)


def requeue_if_asked(run: RunDir) -> None:
    """Once the job is saved and recorded: when the run was marked, hand over to submitit's handler, which
    requeues the job (or says why not, e.g. too many timeouts) and ends this process; or, when SLURM is
    requeueing the job already, end it without a result, so that submitit waits for the requeued job."""
    if not run.requeue_path.exists():
        return
    who = run.requeue_path.read_text()
    run.requeue_path.unlink()
    if who == BY_SLURM or (in_slurm_job() and who_requeues() == BY_SLURM):  # requeued meanwhile
        print("[gemmalab] saved; SLURM restarts this job, which resumes from this step", file=sys.stderr)
        sys.exit(1)  # as submitit's own handler ends a job it requeued: no result is written
    signal.getsignal(requeue_signal())(requeue_signal(), None)
