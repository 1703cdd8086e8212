"""The console: a sweep's closing summary, and quiet about the lines a user reads past (dropped one by
one by their exact text; every other warning and log line still shows)."""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .store import INTERRUPTED, NOT_STARTED, STARTED
from .sweep_dir import SweepDir

# Lightning's advert for its cloud logger, the accelerators a run does not have, and that a fit reached its
# max_steps (the job's own `finished:` line says so): printed once per Trainer, nothing to act on.
_TIPS = ("💡 Tip: For seamless cloud logging", "GPU available: False", "TPU available: False", "HPU available: False",
         "`Trainer.fit` stopped: `max_steps=")  # fmt: skip


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_TIPS)


def quiet() -> None:
    """Drop the lines of _TIPS, the pytree deprecation Lightning 2.6 triggers in torch 2.13 on every fit
    (Lightning's code, not ours: nothing a user can act on) and Lightning's srun hint. Once per process,
    however often it is called."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # rank_zero_info's
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Once srun is on PATH, Lightning says so on every fit that srun did not start: here none needs it (a
    # one-task SLURM job, a workstation); the ranks of a multi-task job are started by srun, as it asks.
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")


def closing_summary(sweep: SweepDir) -> int:
    """What every job of the sweep recorded, and the exit code: 0 when every job finished or diverged
    (a result), 1 when one failed, 128 + the signal when the sweep was stopped."""
    jobs, planned = sweep.latest_members(), sweep.info()["jobs"]
    unrecorded = planned - len(jobs)  # a job whose every line was lost (a cut file, a crash)
    statuses = [j["status"] for j in jobs]
    kinds = {"finished": "finished", "diverged": "diverged", "failed": "failed", INTERRUPTED: INTERRUPTED,
             NOT_STARTED: "not started", STARTED: "lost"}  # fmt: skip
    counts = {k: sum(s.startswith(k) for s in statuses) for k in kinds}
    print(f"\n[gemmalab] group {sweep.group}: " + ", ".join(f"{n} {kinds[k]}" for k, n in counts.items() if n)
          + f" ({len(jobs)} job(s); runs in {sweep.root.resolve()})")  # fmt: skip
    for job in jobs:
        if not job["status"].startswith(("finished", "diverged")):
            lost = " (its process ended without recording how: killed?)" if job["status"] == STARTED else ""
            print(f"  {job['name']}: {job['status']}{lost}", file=sys.stderr)
    if unrecorded > 0:
        print(f"  {unrecorded} of {planned} job(s) recorded nothing (never started, or every line lost)",
              file=sys.stderr)  # fmt: skip
    print(f"[gemmalab] sweep members: {sweep.members_path}")
    print(f"[gemmalab] tables: python analysis/report.py --group {shlex.quote(sweep.group)} "
          f"--run-root {shlex.quote(str(sweep.root))}")  # fmt: skip
    if counts[INTERRUPTED] or counts[NOT_STARTED]:
        print("[gemmalab] stopped: rerun the same command to resume the interrupted run and the rest", file=sys.stderr)
        return 128 + (sweep.stop_signal() or signal.SIGTERM)
    return 1 if counts["failed"] or counts[STARTED] or unrecorded > 0 else 0


_REDRAW = re.compile(r"\r|\x1b\[")  # a progress bar redrawing itself (tqdm's carriage returns, rich's escapes)


class _Tee:
    """A console stream that also appends each complete line to a log file, except a progress bar's redraws."""

    def __init__(self, console: TextIO, log: TextIO) -> None:
        self.console, self.log, self.pending = console, log, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        kept = [line for line in lines if not _REDRAW.search(line)]
        if kept:
            self.log.write("".join(f"{line}\n" for line in kept))
            self.log.flush()
        return self.console.write(text)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, flush...: the console's
        return getattr(self.console, name)


@contextlib.contextmanager
def job_log(path: Path) -> Iterator[None]:
    """The job's console lines (what it prints and what Lightning says) also in Hydra's per-job log file
    (`<sweep dir>/job<N>/sweep.log`), beside Hydra's own log lines, so each job's account stays with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log:
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = streams
