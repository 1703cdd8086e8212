"""One job = one training run, from a resolved config (a plain dict) to a run directory.

Validation happens first, so a bad config costs nothing and leaves nothing behind.
A finished or diverged run is skipped; an interrupted one resumes from its last
checkpoint into the same W&B run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gemmalab.data import DataConfig, LMDataModule
from gemmalab.data.cache import cache_root, check_data, data_changed
from gemmalab.errors import ConfigError, refuse, require_choice
from gemmalab.model import ModelConfig, count_parameters, model_config
from gemmalab.schema import check_known_keys
from gemmalab.switches import tags as switch_tags
from gemmalab.train import Diverged, LMModule, OptimConfig, StabilityConfig, TrainerConfig, fit, stability_summary
from gemmalab.train.cluster import check_world, ranks_started_outside
from gemmalab.train.distill import (
    DistillConfig,
    check_teacher_compatible,
    load_teacher,
    teacher_config,
    teacher_run_dir,
)
from gemmalab.train.engagement import engagement_summary, initial_val_loss, trained_val_loss

from .aliases import ALIAS_PREFIX, resolve_teacher, write_alias
from .identity import run_identity, run_name
from .ranks import END, handed_over, job_from_rank_zero
from .requeue import requeue_signal
from .store import (
    FINISHED,
    INTERRUPTED,
    RunDir,
    RunStoreLogger,
    last_values,
    line_numbers,
    read_metrics,
    record_sweep_member,
)
from .wandb_logger import MODES as WANDB_MODES
from .wandb_logger import finish_wandb, make_wandb_logger

LOGGER_KINDS = ("wandb", "csv", "none")
FAULT_SIGNALS = ("KILL", "TERM", "INT", "USR2")  # a crash, a scheduler's stop, Ctrl-C, submitit's preemption


@dataclass
class JobSpec:
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    trainer: TrainerConfig
    stability: StabilityConfig
    distill: DistillConfig
    seed: int
    fault: tuple[int, signal.Signals] | None = None  # testing only: (step, signal)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> JobSpec:
        """Every config object built and validated; raises ConfigError naming the first bad key."""
        check_known_keys(config)
        model = model_config(config)
        seed = config.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:  # numpy's seed range
            refuse("seed", seed, "an integer from 0 to 2**32 - 1")
        require_choice("logger.kind", config["logger"]["kind"], LOGGER_KINDS)
        if config["logger"]["kind"] == "wandb":
            require_choice("logger.mode", config["logger"].get("mode"), WANDB_MODES)
        distill = DistillConfig(**{k: v for k, v in config["distill"].items() if k != "teacher_run"})
        if distill.enabled and not distill.teacher.startswith(ALIAS_PREFIX):  # an alias may not exist yet
            check_teacher_compatible(teacher_config(distill.teacher), config)
        data = DataConfig(**config["data"])
        check_data(data, cache_root(data, config["run_root"]))
        trainer = TrainerConfig(**config["trainer"])
        check_world(trainer)
        fault = config.get("fault", {})
        fault_step, fault_signal = fault.get("kill_at_step"), fault.get("signal", "KILL")
        require_choice("fault.signal", fault_signal, FAULT_SIGNALS)
        return cls(
            model=model,
            data=data,
            optim=OptimConfig(**config["optim"]),
            trainer=trainer,
            stability=StabilityConfig(**config["stability"]),
            distill=distill,
            seed=config["seed"],
            fault=None if fault_step is None else (fault_step, signal.Signals[f"SIG{fault_signal}"]),
        )


def run_job(config: dict[str, Any], overrides: list[str], group: str, swept: set[str] | None = None) -> dict[str, Any]:
    """Train one run (or skip / resume it); returns its summary. Raises ConfigError before any work.
    The steps: resolve the run's identity, skip it if done, start an attempt (set damaged files aside,
    pick the checkpoint to resume from), fit, summarise from the logged metrics."""
    spec = JobSpec.from_config(config)
    root = Path(config["run_root"])
    if spec.distill.enabled:
        pin_teacher(spec, config, root)
    run = RunDir(root, run_identity(config))
    name = run_name(overrides, spec.seed, swept)
    member = {"run_id": run.run_id, "name": name, "overrides": overrides}
    with run.claim():  # one process at a time trains a run; raises RunBusy naming the holder
        damage = run.repair_summary()
        if change := data_changed(spec.data, run.summary()):  # never mix two datasets in one run
            raise ConfigError(f"run {run.run_id} ({name}) {change} (allowed: the data it was trained on; for "
                              f"new runs on the new data, another run_root or remove {run.path})")  # fmt: skip
        if run.is_done():
            summary = run.summary()
            if config.get("alias") and summary["status"] == FINISHED:
                write_alias(root, config["alias"], run.run_id)
            print(f"[gemmalab] skip {name}: {summary['status']} ({run.path})")
            record_sweep_member(root, group, {**member, "status": summary["status"], "skipped": True})
            return summary

        record_sweep_member(root, group, {**member, "status": "started"})
        started = time.time()
        resume_from = start_attempt(run, config, name, group, damage)
        status, diverged_step, wandb_logger = train(run, spec, config, name, group, resume_from)
        headline = summarise(run, spec, status, diverged_step)
        summary = run.update_summary(**headline, wall_seconds=time.time() - started)  # this attempt only
        if config.get("alias") and status == FINISHED:
            write_alias(root, config["alias"], run.run_id)
        if wandb_logger is not None:
            finish_wandb(wandb_logger, {k: v for k, v in headline.items() if k != "final"})
        if status == FINISHED and (run.path / "error.txt").exists():  # from an earlier attempt that failed
            (run.path / "error.txt").unlink()
        record_sweep_member(root, group, {**member, "status": status})
    loss, step = headline["val/loss"], headline["val/loss_step"]
    shown = "none after step 0" if loss is None else f"{loss:.4f}"
    after = f" (step {step}, the last before it diverged)" if diverged_step is not None and step else ""
    print(f"[gemmalab] {status}: {name}  val/loss={shown}{after}")
    return summary


def pin_teacher(spec: JobSpec, config: dict[str, Any], root: Path) -> None:
    """Resolve a student's teacher (an alias, a run, a checkpoint) and record which run and checkpoint it
    is in the config: the student's identity follows the teacher, wherever its run store lies."""
    spec.distill.teacher = resolve_teacher(root, spec.distill.teacher)
    check_teacher_compatible(teacher_config(spec.distill.teacher), config)
    checkpoint = Path(spec.distill.teacher).name if spec.distill.teacher.endswith(".ckpt") else "last.ckpt"
    teacher_run = f"{teacher_run_dir(spec.distill.teacher).name}/{checkpoint}"
    config["distill"] = {**config["distill"], "teacher": spec.distill.teacher, "teacher_run": teacher_run}


def start_attempt(run: RunDir, config: dict[str, Any], name: str, group: str, damage: list[str]) -> Path | None:
    """Create the run directory, set damaged checkpoints aside and say what this attempt does; returns
    the checkpoint to resume from (None: from scratch)."""
    run.create(yaml.safe_dump(config, sort_keys=False))
    damage = damage + run.repair_checkpoints()
    resume_from = run.last_checkpoint()
    for line in damage:
        print(f"[gemmalab] damaged: {line}")
    run.update_summary(
        status="running", run_id=run.run_id, name=name, group=group,
        resumed_from=str(resume_from) if resume_from else None,
        damaged=(run.summary() or {}).get("damaged", []) + damage,
    )  # fmt: skip
    how = f"resume {name} from {resume_from.name}" if resume_from else f"train {name}"
    scratch = " from scratch (no intact checkpoint)" if damage and not resume_from else ""
    print(f"[gemmalab] {how}{scratch} -> {run.path}")
    return resume_from


def train(
    run: RunDir, spec: JobSpec, config: dict[str, Any], name: str, group: str, resume_from: Path | None
) -> tuple[str, int | None, WandbLogger | None]:
    """Fit the run; (status, divergence step, the W&B logger to finish). A failure is recorded with its
    traceback in error.txt, so the other jobs of a sweep still run."""
    wandb_logger = None
    try:
        module, datamodule = build(spec, config)
        run.update_summary(parameters=count_parameters(module.model), **datamodule.prepare())
        loggers = [RunStoreLogger(run)]
        if config["logger"]["kind"] == "wandb":
            wandb_logger = make_wandb_logger(
                **{k: v for k, v in config["logger"].items() if k != "kind"},
                run_id=run.run_id, name=name, group=group, tags=switch_tags(config), config=config,
                save_dir=str(run.path),
            )  # fmt: skip
            loggers.append(wandb_logger)
        elif config["logger"]["kind"] == "csv":
            loggers.append(CSVLogger(str(run.path), name="csv", version=""))
        with handed_over({"config": config, "run_id": run.run_id, "resume_from": resume_from and str(resume_from)}):
            fit(module, datamodule, spec.trainer, run.checkpoint_dir, loggers, resume_from, spec.fault)
        return FINISHED, None, wandb_logger
    except Diverged as err:
        return f"diverged at step {err.step}", err.step, wandb_logger
    except SIGTERMException:  # preempted (SIGTERM, or Ctrl-C in sweep.py): the step it stopped at is saved
        return INTERRUPTED, None, wandb_logger
    except Exception as err:
        (run.path / "error.txt").write_text(traceback.format_exc())
        return f"failed: {type(err).__name__}: {err}".splitlines()[0], None, wandb_logger


def build(spec: JobSpec, config: dict[str, Any]) -> tuple[LMModule, LMDataModule]:
    """The seeded model and its data, alike on every rank."""
    L.seed_everything(spec.seed, workers=True, verbose=False)
    datamodule = LMDataModule(spec.data, spec.seed, spec.trainer.max_steps, spec.model.vocab_size,
                              cache_root(spec.data, config["run_root"]))  # fmt: skip
    teacher = load_teacher(spec.distill.teacher) if spec.distill.enabled else None
    return LMModule(spec.model, spec.optim, spec.trainer, spec.stability, spec.distill, teacher), datamodule


def train_rank(job: dict[str, Any]) -> None:
    """A DDP rank > 0 of a job: trains its slice of every global batch beside rank 0 and writes nothing.
    Rank 0 alone claims the run, logs (the run store, W&B, the console), checkpoints and records the
    sweep member; it decided what to resume from before the ranks started."""
    config = job["config"]
    spec = JobSpec.from_config(config)
    module, datamodule = build(spec, config)
    resume_from = Path(job["resume_from"]) if job["resume_from"] else None
    checkpoint_dir = RunDir(Path(config["run_root"]), job["run_id"]).checkpoint_dir
    try:
        fit(module, datamodule, spec.trainer, checkpoint_dir, [], resume_from)
    except (Diverged, SIGTERMException):  # rank 0 records it
        pass


def follow_rank_zero(whole_sweep: bool) -> None:
    """A DDP rank > 0: train what rank 0 hands over, one message per job, until END when torchrun or
    SLURM started this rank to run sweep.py, else one job. Ctrl-C and SLURM signal every process of a
    job; rank 0 alone acts on them, and stops all ranks at one step (train/fit.py StopOnRequest)."""
    for signum in (signal.SIGINT, signal.SIGTERM, requeue_signal()):
        signal.signal(signum, signal.SIG_IGN)
    while (job := job_from_rank_zero()) != END:
        if job:
            with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):  # rank 0's lines, once
                train_rank(job)
        if not (whole_sweep and ranks_started_outside()):
            return


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
        "damaged_metric_lines": len(damaged_lines),
        **{k: v for k, v in final.items() if k.startswith(("val/accuracy", "val/queries"))},
        **stability_summary(metrics, spec.stability, spec.optim.warmup_steps, spec.model.vocab_size),
        **engagement_summary(metrics),
        "final": final,
    }
    if "teacher/val_loss" in metrics.get(0, {}):
        headline["teacher/val_loss"] = metrics[0]["teacher/val_loss"]
    return headline
