"""Logged runs into one tidy DataFrame: a row per run with its switches, seed, status and summary figures.

Three sources give the same frame for the same runs: the local run store (default),
offline W&B run directories (read with `wandb leet inspect --summary --json`), and an
online W&B project (`wandb.Api`, filtered by group).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from gemmalab.errors import ConfigError, DamagedFile, require_name
from gemmalab.migrations import ADDED_LATER
from gemmalab.runs.identity import BOOKKEEPING, is_under
from gemmalab.runs.store import RUNNING, RunDir, is_headline
from gemmalab.runs.sweep_dir import SweepDir


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = tuple(value) if isinstance(value, list) else value
    return flat


def run_row(run_id: str, name: str, config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run_id, "name": name, **ADDED_LATER}  # what a run older than a key did
    row.update({k: v for k, v in flatten(config).items() if not is_under(k, BOOKKEEPING)})
    for key, value in summary.items():
        missing = value is None or (isinstance(value, float) and not math.isfinite(value))  # W&B drops these
        if is_headline(key) and not missing:
            row[key] = value
    return row


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for key in ("val/loss", "val/loss_init", "test/loss"):
        if key in frame:
            frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame.sort_values("run_id").reset_index(drop=True)


def group_arg(value: str) -> str:
    """argparse's type for --group: a group name (one path component), or one line saying what is allowed."""
    try:
        return require_name("--group", value)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_group_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--run-root and --group (a sweep group, or `latest`: resolve_latest), as every analysis command takes them."""
    parser.add_argument("--run-root", default="runs", type=Path)
    parser.add_argument(
        "--group", required=required, type=group_arg, help="the sweep group sweep.py printed, or latest"
    )


def resolve_latest(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--group latest: the group whose members were recorded last (a parser error when there is none)."""
    if args.group == "latest":
        args.group = SweepDir.newest(args.run_root) or parser.error(f"--group latest: no sweep in {args.run_root}")


def group_runs(run_root: str | Path, group: str) -> dict[str, dict[str, Any]]:
    """The group's run ids, each with the labels (identity.LABELS) its first job in this sweep gave it."""
    sweep = SweepDir(run_root, group)
    if not sweep.members_path.exists():
        known = ", ".join(SweepDir.groups(run_root))
        raise FileNotFoundError(f"--group {group!r} has no runs in {run_root} (known groups: {known})")
    runs: dict[str, dict[str, Any]] = {}
    for member in sweep.latest_members():
        if member.get("run_id"):
            runs.setdefault(member["run_id"], member.get("labels") or {})  # sweeps before labels: config.yaml's
    return runs


def load_run_store(run_root: str | Path, group: str | None = None) -> pd.DataFrame:
    """Rows from <run_root>/<run_id>/{config.yaml,summary.json}; all runs, or those a sweep group asked for.
    A run that cannot be read (no directory, no summary yet, a damaged file) is no row: it is listed in
    frame.attrs["missing"] as "run_id: reason", so a report can say what it left out."""
    import yaml

    root = Path(run_root)
    if group:
        ids = group_runs(root, group)
    else:  # the whole store: each run as its config.yaml has it
        ids = {p.name: {} for p in sorted(root.iterdir()) if (p / "summary.json").exists()}
    rows, missing = [], []
    for run_id, labels in ids.items():
        run = RunDir(root, run_id)
        try:
            summary = run.summary()
            if summary is None:
                missing.append(f"{run_id}: no summary.json (never started, or its directory is gone)")
                continue
            config = yaml.safe_load(run.config_path.read_text())
        except (DamagedFile, OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            missing.append(f"{run_id}: {' '.join(str(err).split())}")
            continue
        if summary["status"] == RUNNING:
            missing.append(f"{summary.get('name', run_id)}: no result yet (still training, or stopped without a word)")
            continue
        rows.append(run_row(run_id, summary.get("name", run_id), {**config, **labels}, summary))
    if group:  # jobs that never made a run: refused when they started, or never started (a stopped sweep)
        sweep = SweepDir(root, group)
        members = sweep.latest_members()
        missing += [f"{m.get('name') or ' '.join(m['overrides'])}: {m['status']}" for m in members
                    if not m.get("run_id") and m.get("overrides")]  # fmt: skip
        planned = sweep.info()["jobs"]
        if (not_yet := planned - len(members)) > 0:  # planned, not begun (or every line lost)
            missing.append(f"{not_yet} of the sweep's {planned} jobs: not started yet")
    frame = _frame(rows)
    frame.attrs["missing"] = missing
    return frame


def wandb_cli() -> str:
    """The `wandb` command installed beside the running interpreter (a virtual environment that is not
    activated has it there, not on PATH); PATH's otherwise."""
    beside = Path(sys.executable).parent / "wandb"
    return str(beside) if beside.exists() else "wandb"


def load_wandb_offline(run_dirs: list[str | Path]) -> pd.DataFrame:
    """Rows from offline W&B run directories (offline-run-*), via `wandb leet inspect --summary --json`.
    A run resumed after a kill has one directory per attempt: the latest attempt's summary counts.
    A directory the CLI cannot read is listed in frame.attrs["missing"]."""
    latest: dict[str, dict[str, Any]] = {}
    missing = []
    for path in sorted(map(str, run_dirs)):  # offline-run-<date>_<time>-<id>: sorted = chronological
        out = subprocess.run(
            [wandb_cli(), "leet", "inspect", "--summary", "--json", path], capture_output=True, text=True
        )
        try:
            record = json.loads(out.stdout)
        except json.JSONDecodeError:
            missing.append(f"{path}: unreadable W&B run ({' '.join((out.stderr or 'no output').split())[:200]})")
            continue
        latest[record["run_id"]] = record
    rows = [run_row(r["run_id"], r["name"], r["config"], r["summary"]) for r in latest.values()]
    frame = _frame(rows)
    frame.attrs["missing"] = missing
    return frame


def load_wandb_api(project: str, group: str, entity: str | None = None) -> pd.DataFrame:
    """Rows from an online W&B project, the runs of one group (needs network access and a login)."""
    import wandb

    path = f"{entity}/{project}" if entity else project
    runs = wandb.Api().runs(path, filters={"group": group})
    rows = [run_row(r.id, r.name, dict(r.config), dict(r.summary)) for r in runs]
    return _frame(rows)
