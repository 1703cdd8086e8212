"""One job = one training run, from a resolved config (a plain dict) to a run directory.

Validation happens first, so a bad config costs nothing and leaves nothing behind.
A finished or diverged run is skipped; an interrupted one resumes from its last
checkpoint into the same W&B run.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.loggers import CSVLogger

from gemmalab.data import DataConfig, LMDataModule
from gemmalab.model import ConfigError, ModelConfig, count_parameters
from gemmalab.train import Diverged, LMModule, OptimConfig, StabilityConfig, TrainerConfig, fit, stability_summary
from gemmalab.train.distill import (
    DistillConfig,
    check_teacher_compatible,
    load_teacher,
    teacher_config,
    teacher_run_dir,
)
from gemmalab.train.engagement import engagement_summary, initial_val_loss

from .aliases import ALIAS_PREFIX, resolve_teacher, write_alias
from .identity import run_identity, run_name
from .store import FINISHED, RunDir, RunStoreLogger, last_values, record_sweep_member
from .wandb_logger import finish_wandb, make_wandb_logger

LOGGER_KINDS = ("wandb", "csv", "none")


@dataclass
class JobSpec:
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    trainer: TrainerConfig
    stability: StabilityConfig
    distill: DistillConfig
    seed: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> JobSpec:
        """Every config object built and validated; raises ConfigError naming the first bad key."""
        model = ModelConfig(**config["model"], norm=config["norm"], attn=config["attn"], softcap=config["softcap"])
        if not isinstance(config.get("seed"), int):
            raise ConfigError(f"seed={config.get('seed')!r} is not allowed (allowed: an integer)")
        if config["logger"]["kind"] not in LOGGER_KINDS:
            raise ConfigError(f"logger.kind={config['logger']['kind']!r} is not allowed (allowed: wandb, csv, none)")
        distill = DistillConfig(**{k: v for k, v in config["distill"].items() if k != "teacher_run"})
        if distill.enabled and not distill.teacher.startswith(ALIAS_PREFIX):  # an alias may not exist yet
            check_teacher_compatible(teacher_config(distill.teacher), config)
        return cls(
            model=model,
            data=DataConfig(**config["data"]),
            optim=OptimConfig(**config["optim"]),
            trainer=TrainerConfig(**config["trainer"]),
            stability=StabilityConfig(**config["stability"]),
            distill=distill,
            seed=config["seed"],
        )


def switch_tags(model: ModelConfig) -> list[str]:
    """The Gemma 2 switches of a run, as W&B tags (filterable in the dashboard)."""
    a, s = model.attn, model.softcap
    return [
        f"attn.pattern={a.pattern}", f"attn.local_global_ratio={a.local_global_ratio}", f"attn.window={a.window}",
        f"attn.first={a.first}", f"attn.kv_heads={a.kv_heads}", f"attn.qk_norm={a.qk_norm}",
        f"softcap.attn={s.attn}", f"softcap.final={s.final}", f"norm={model.norm}", f"d_model={model.d_model}",
    ]  # fmt: skip


def run_job(config: dict[str, Any], overrides: list[str], group: str, swept: set[str] | None = None) -> dict[str, Any]:
    """Train one run (or skip / resume it); returns its summary. Raises ConfigError before any work."""
    spec = JobSpec.from_config(config)
    root = Path(config["run_root"])
    if spec.distill.enabled:
        spec.distill.teacher = resolve_teacher(root, spec.distill.teacher)
        check_teacher_compatible(teacher_config(spec.distill.teacher), config)
        # identity follows the teacher run (and checkpoint), wherever its run store lies
        checkpoint = Path(spec.distill.teacher).name if spec.distill.teacher.endswith(".ckpt") else "last.ckpt"
        teacher_run = f"{teacher_run_dir(spec.distill.teacher).name}/{checkpoint}"
        config["distill"] = {**config["distill"], "teacher": spec.distill.teacher, "teacher_run": teacher_run}
    run = RunDir(root, run_identity(config))
    name = run_name(overrides, spec.seed, swept)
    member = {"run_id": run.run_id, "name": name, "overrides": overrides}
    if run.is_done():
        summary = run.summary()
        if config.get("alias") and summary["status"] == FINISHED:
            write_alias(root, config["alias"], run.run_id)
        print(f"[gemmalab] skip {name}: {summary['status']} ({run.path})")
        record_sweep_member(root, group, {**member, "status": summary["status"], "skipped": True})
        return summary

    run.create(yaml.safe_dump(config, sort_keys=False))
    resume_from = run.last_checkpoint()
    started = time.time()
    run.update_summary(
        status="running", run_id=run.run_id, name=name, group=group,
        resumed_from=str(resume_from) if resume_from else None,
    )  # fmt: skip
    print(f"[gemmalab] {'resume' if resume_from else 'train'} {name} -> {run.path}")
    wandb_logger = None
    try:
        L.seed_everything(spec.seed, workers=True, verbose=False)
        datamodule = LMDataModule(spec.data, spec.seed, spec.trainer.max_steps, spec.model.vocab_size)
        teacher = load_teacher(spec.distill.teacher) if spec.distill.enabled else None
        module = LMModule(spec.model, spec.optim, spec.trainer, spec.stability, spec.distill, teacher)
        run.update_summary(parameters=count_parameters(module.model), **datamodule.prepare())
        loggers = [RunStoreLogger(run)]
        if config["logger"]["kind"] == "wandb":
            wandb_logger = make_wandb_logger(
                **{k: v for k, v in config["logger"].items() if k != "kind"},
                run_id=run.run_id, name=name, group=group, tags=switch_tags(spec.model), config=config,
                save_dir=str(run.path),
            )  # fmt: skip
            loggers.append(wandb_logger)
        elif config["logger"]["kind"] == "csv":
            loggers.append(CSVLogger(str(run.path), name="csv", version=""))
        fit(module, datamodule, spec.trainer, run.checkpoint_dir, loggers, resume_from,
            config.get("fault", {}).get("kill_at_step"))  # fmt: skip
        status, diverged_step = FINISHED, None
    except Diverged as err:
        status, diverged_step = f"diverged at step {err.step}", err.step
    except Exception as err:  # recorded, so the other jobs of a sweep still run
        status, diverged_step = f"failed: {type(err).__name__}: {err}".splitlines()[0], None
        (run.path / "error.txt").write_text(traceback.format_exc())
    metrics = run.metrics()
    final = last_values(metrics)
    headline = {
        "status": status,
        "diverged": diverged_step is not None,
        "diverged_step": diverged_step,
        "val/loss": final.get("val/loss"),
        "val/loss_init": initial_val_loss(metrics),
        **{k: v for k, v in final.items() if k.startswith(("val/accuracy", "val/queries"))},
        **stability_summary(metrics, spec.stability, spec.optim.warmup_steps),
        **engagement_summary(metrics),
    }
    if "teacher/val_loss" in metrics.get(0, {}):
        headline["teacher/val_loss"] = metrics[0]["teacher/val_loss"]
    summary = run.update_summary(**headline, wall_seconds=time.time() - started, final=final)  # this attempt only
    if config.get("alias") and status == FINISHED:
        write_alias(root, config["alias"], run.run_id)
    if wandb_logger is not None:
        finish_wandb(wandb_logger, headline)
    record_sweep_member(root, group, {**member, "status": status})
    print(f"[gemmalab] {status}: {name}  val/loss={final.get('val/loss', float('nan')):.4f}")
    return summary
