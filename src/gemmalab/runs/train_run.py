"""Train the run in a directory: what every process that trains a run does, and all it needs to know.

    python -m gemmalab.runs.train_run runs/<run_id>

The job (runs/job.py) has already claimed the run and written its attempt.json: the config this
attempt trains, its name and group, the checkpoint to resume from. Every process reads that file:
the job's own process (one device), the process the job starts for a DDP fit, the ranks Lightning's
launcher starts from that same command line, and ranks torchrun or SLURM started all at once (each
running sweep.py or a submitit job), which rank 0 tells the directory of each run it trains.
Rank 0 alone writes: metrics, checkpoints, W&B, then the run's summary from its metrics.jsonl.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gemmalab.data import LMDataModule
from gemmalab.model import count_parameters
from gemmalab.switches import tags as switch_tags
from gemmalab.train import Diverged, LMModule, fit, stability_summary
from gemmalab.train.cluster import join_process_group, ranks_started_outside
from gemmalab.train.engagement import engagement_summary, initial_val_loss, trained_val_loss

from .aliases import teacher_model
from .console import quiet
from .launchers import share_cores_among_ranks
from .metrics_file import last_values, line_numbers, read_metrics
from .metrics_logger import RunStoreLogger
from .requeue import requeue_signal
from .spec import JobSpec, callbacks, data_cache, train_sequences
from .stops import stop_check
from .store import FINAL_FIGURES, FINISHED, INTERRUPTED, RunDir, readable_summary
from .sweep_dir import SweepDir
from .wandb_logger import finish_wandb, make_wandb_logger


def train_run(run: RunDir, parent: int | None = None) -> str:
    """Fit the run its attempt.json describes and return how it ended (finished, diverged at step N,
    interrupted, failed: reason); on rank 0 the summary says so too. A failure is recorded with its
    traceback in error.txt, so the other jobs of a sweep still run. `parent`: the job's process, when
    this one was started for the run (it stops once that one is gone)."""
    attempt = run.attempt()
    config = attempt["config"]
    spec = JobSpec.from_config(config)
    rank_zero = rank_zero_only.rank == 0
    resume_from = Path(attempt["resume_from"]) if attempt["resume_from"] else None
    should_stop = stop_check(SweepDir(config["run_root"], attempt["group"]), run, parent)
    status, diverged_step, wandb_logger = FINISHED, None, None
    try:
        module, datamodule = build(spec, config)
        loggers: list[Logger] = []
        if rank_zero:
            run.update_summary(parameters=count_parameters(module.model), **datamodule.prepare())
            if not spec.trainer.fast_dev_run:  # Lightning's meaning: a check of the code path, nothing logged
                loggers, wandb_logger = make_loggers(run, config, attempt)
            announce(str(run.path))  # ranks torchrun or SLURM started train this run beside this one
        fit(module, datamodule, spec.trainer, run.last_checkpoint_path, run.previous_checkpoint_path, loggers,
            should_stop, resume_from, callbacks(config))  # fmt: skip
    except Diverged as err:
        status, diverged_step = f"diverged at step {err.step}", err.step
    except SIGTERMException:  # a stop (runs/stops.py) or a SIGTERM Lightning caught: the step it stopped at is saved
        status = INTERRUPTED
    except Exception as err:
        status = f"failed: {type(err).__name__}: {err}".splitlines()[0]
        if rank_zero:
            written_or_said(lambda: run.error_path.write_text(traceback.format_exc()), f"{run.error_path}")
    if rank_zero:
        headline = {"status": status}

        def record() -> None:  # the summary from metrics.jsonl, then the W&B run closed with it
            headline.update(summarise(run, spec, status, diverged_step))
            run.update_summary(**headline, wall_seconds=time.time() - attempt["started"])  # this attempt only

        if not written_or_said(record, f"{run.summary_path}") and not status.startswith("failed"):
            status = f"failed: its summary could not be written in {run.path}"
        if wandb_logger is not None:
            whole = {**readable_summary(run), **headline}  # parameters, data/*, wall time too
            written_or_said(lambda: finish_wandb(wandb_logger, {k: v for k, v in whole.items() if k != "final"}),
                            "the W&B run")  # fmt: skip
    return status


def written_or_said(write: Callable[[], object], what: str) -> bool:
    """A write on the way out of a fit: when the run store fails under it (disk full, the run directory
    removed) the failure is said on stderr instead of replacing the one being recorded."""
    try:
        write()
        return True
    except OSError as err:
        print(f"[gemmalab] could not write {what}: {type(err).__name__}: {err}", file=sys.stderr)
        return False


def build(spec: JobSpec, config: dict[str, Any]) -> tuple[LMModule, LMDataModule]:
    """The seeded model and its data, alike on every rank."""
    L.seed_everything(spec.seed, workers=True, verbose=False)
    if spec.trainer.compile:
        keep_compiled_graphs(data_cache(config) / "inductor")
    datamodule = LMDataModule(spec.data, spec.seed, spec.trainer.max_steps, spec.model.vocab_size,
                              data_cache(config), train_sequences(spec.data, spec.trainer))  # fmt: skip
    teacher = teacher_model(spec.distill.teacher) if spec.distill.enabled else None
    return LMModule(spec.model, spec.optim, spec.trainer, spec.stability, spec.distill, teacher), datamodule


def keep_compiled_graphs(where: Path) -> None:
    """torch.compile's caches (inductor's FX graphs, AOTAutograd's) in `where`, beside the token cache: every
    later run of the run store, in this process or another, reuses the graphs compiled for an earlier one.
    A TORCHINDUCTOR_CACHE_DIR the user set is kept; torch's own default (a folder of /tmp, set in the
    environment by its first import) is not a choice."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(where)


def make_loggers(run: RunDir, config: dict[str, Any], attempt: dict[str, Any]) -> tuple[list[Logger], Any]:
    """The run store's logger and the one logger.kind asks for; the W&B logger is also returned, to finish."""
    loggers: list[Logger] = [RunStoreLogger(run)]
    wandb_logger = None
    if config["logger"]["kind"] == "wandb":
        wandb_logger = make_wandb_logger(
            **{k: v for k, v in config["logger"].items() if k != "kind"},
            run_id=run.run_id, name=attempt["name"], group=attempt.get("run_group", attempt["group"]),
            tags=switch_tags(config), config=config, save_dir=str(run.path),
        )  # fmt: skip
        loggers.append(wandb_logger)
    elif config["logger"]["kind"] == "csv":
        loggers.append(CSVLogger(str(run.path), name="csv", version=""))
    return loggers, wandb_logger


def summarise(run: RunDir, spec: JobSpec, status: str, diverged_step: int | None) -> dict[str, Any]:
    """The run's headline figures, from metrics.jsonl alone (damaged lines skipped and counted)."""
    damaged_lines: list[int] = []
    metrics = read_metrics(run.metrics_path, damaged_lines)
    if damaged_lines:
        print(f"[gemmalab] damaged: {run.metrics_path}: {len(damaged_lines)} line(s) skipped "
              f"({line_numbers(damaged_lines)})")  # fmt: skip
    final = last_values(metrics)
    val_loss, val_step = trained_val_loss(metrics)
    headline = {
        "status": status,
        "diverged": diverged_step is not None,
        "diverged_step": diverged_step,
        "val/loss": val_loss,  # a diverged run: the last one before it diverged, if any
        "val/loss_step": val_step,
        "val/loss_init": initial_val_loss(metrics),
        "trained_steps": max((step + 1 for step, values in metrics.items() if "train/loss" in values), default=0),
        "damaged_metric_lines": len(damaged_lines),
        **{k: v for k, v in final.items() if k.startswith(FINAL_FIGURES)},
        **stability_summary(metrics, spec.stability, spec.optim.warmup_steps, spec.model.vocab_size),
        **engagement_summary(metrics),
        "final": final,
    }
    if "teacher/val_loss" in metrics.get(0, {}):
        headline["teacher/val_loss"] = metrics[0]["teacher/val_loss"]
    return headline


@contextlib.contextmanager
def as_helper() -> Iterator[None]:
    """A process that trains a run for a job (a DDP rank, or the job's own process for a DDP fit): signals
    are the job's to act on (Ctrl-C, SLURM and a sweep's stop reach this process through the stop files,
    runs/stops.py; all ranks stop at one step, train/lightning_fixes.py StopOnRequest); ranks > 0 print nothing (rank
    0's lines, once)."""
    for signum in (signal.SIGINT, signal.SIGTERM, requeue_signal()):
        signal.signal(signum, signal.SIG_IGN)
    quiet()
    os.environ.pop("WANDB_SERVICE", None)  # its own W&B service (see sweep.py)
    with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere if rank_zero_only.rank else sys.stdout):
        yield


END = ""  # rank 0's process ended: the others stop waiting


def announce(run_dir: str) -> str:
    """Ranks started outside: rank 0 names the run directory it trains next; the others pass END and get it."""
    if ranks_started_outside() is None:
        return run_dir
    box = [run_dir]
    dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


def lead_ranks() -> None:
    """Rank 0 of ranks started outside, before its first job: the others wait for its runs (END at its exit)."""
    join_process_group(at_exit=lambda: announce(END))


def follow_rank_zero() -> None:
    """A DDP rank > 0 that torchrun or SLURM started: train each run rank 0 names, beside it, until its end."""
    with as_helper():
        lead_ranks()
        while (run_dir := announce(END)) != END:
            train_run(RunDir.at(run_dir))


if __name__ == "__main__":  # a job's DDP fit, and the ranks Lightning's launcher starts from this command line
    with as_helper():
        trained = RunDir.at(sys.argv[1])
        share_cores_among_ranks(trained.attempt()["config"]["trainer"]["devices"])
        train_run(trained, parent=os.getppid())
