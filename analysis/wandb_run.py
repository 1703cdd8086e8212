"""The W&B run of an analysis step (a report: job_type=report; an evaluation: job_type=eval): where it goes,
as the command line says, else as the group's training runs were logged."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from gemmalab.runs.store import RunDir
from gemmalab.schema import WANDB_MODES, LoggerConfig


def add_wandb_arguments(parser: argparse.ArgumentParser, job_type: str) -> None:
    """Where a report's (or an evaluation's) own W&B run goes; each default: as the group's runs were logged."""
    parser.add_argument("--project", help="W&B project (default: the runs' logger.project, else gemmalab)")
    parser.add_argument("--entity", help="W&B entity (default: the runs' logger.entity)")
    parser.add_argument(
        "--wandb-mode",
        choices=WANDB_MODES,
        help=f"the {job_type} run's W&B mode (default: the runs' logger.mode, else offline)",
    )
    parser.add_argument("--no-wandb", action="store_true", help=f"no W&B run (job_type={job_type})")


def wandb_settings(args: argparse.Namespace, run_root: Path, run_ids: list[str]) -> dict[str, str | None]:
    """Where the report run goes: --project / --entity / --wandb-mode as given, else as the group's runs were
    logged (their logger.project, logger.entity, logger.mode: the first run's), else gemmalab, offline."""
    logged: dict = {}
    for run_id in run_ids:
        config = RunDir(run_root, run_id).config_path
        if config.exists():
            logged = (yaml.safe_load(config.read_text()) or {}).get("logger", {})
            break
    return {
        "project": args.project or logged.get("project") or LoggerConfig.project,
        "entity": args.entity or logged.get("entity"),
        "mode": args.wandb_mode or logged.get("mode") or LoggerConfig.mode,
    }
