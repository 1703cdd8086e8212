"""W&B glue: one W&B run per job, offline by default, resumable into the same run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning.pytorch.loggers import WandbLogger


def make_wandb_logger(
    *,
    mode: str,
    project: str,
    entity: str | None = None,
    run_id: str,
    name: str,
    group: str,
    tags: list[str],
    config: dict[str, Any],
    save_dir: str,
) -> WandbLogger:
    import wandb  # W&B and Lightning: imported by a run that logs, not by every command
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(
        id=run_id,  # the run identity: a resumed job continues the same W&B run
        name=name,
        project=project,
        entity=entity,
        group=group,
        tags=tags,
        config=config,
        save_dir=save_dir,
        mode=mode,
        resume="allow",
        job_type="train",  # the report's run is job_type=report, an evaluation's eval
        log_model=False,
        settings=wandb.Settings(quiet=True),  # no run-summary footer on the console: summary.json has it
    )
    # Lightning passes anonymous=None, which W&B warns about on every run ("has no effect"); not passing
    # it at all is what W&B asks for.
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_wandb(logger: WandbLogger, summary: dict[str, Any]) -> None:
    """Write the run's summary (summary.json but its `final` values, which W&B keeps of itself) to the W&B
    summary and close the run, so the next job of a multirun starts a run of its own."""
    import wandb

    if wandb.run is None:
        return
    wandb.run.summary.update(summary)
    wandb.finish()
