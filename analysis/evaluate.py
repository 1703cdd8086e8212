"""Evaluate finished runs at other values of switches that change no parameter, without retraining
(Gemma 2's Table 10: the sliding window changed at inference only).

    python analysis/evaluate.py --group G attn.window=16,8          # each finished run of sweep G, W 16 and 8
    python analysis/evaluate.py --group G attn.pattern=full softcap.attn=null

Each run's final checkpoint is loaded into a model built with the overrides and scored on the run's
own validation batches; the figures go to <run>/evals/<setting>.json, beside the run and never over
its own summary. An evaluation that exists is skipped. Every run is also evaluated as trained, which
must give its logged val/loss exactly (the line printed says whether it does).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from gemmalab.analysis.loaders import add_group_arguments, group_runs, resolve_latest
from gemmalab.analysis.tables import aggregate, display
from gemmalab.analysis.wandb_run import add_wandb_arguments, wandb_settings
from gemmalab.data import DataConfig, LMDataModule
from gemmalab.errors import ConfigError, DamagedFile
from gemmalab.model import Decoder
from gemmalab.runs.files import set_aside, write_atomic
from gemmalab.runs.identity import ignored_keys
from gemmalab.runs.spec import JobSpec, data_cache
from gemmalab.runs.store import FINISHED, RunDir, reports_dir
from gemmalab.switches import AT_INFERENCE
from gemmalab.train.checkpoints import load_checkpoint
from gemmalab.train.module import evaluate

AS_TRAINED = "as-trained"


def parse_overrides(items: list[str]) -> list[dict[str, Any]]:
    """`key=a,b key2=c` -> every combination as {key: value}; values read as YAML (16, null, full)."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in AT_INFERENCE:
            raise ConfigError(f"{item!r} is not allowed (allowed: key=v1,v2 with key one of "
                              f"{', '.join(AT_INFERENCE)})")  # fmt: skip
        axes.append([(key, yaml.safe_load(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def setting_name(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={'null' if v is None else v}" for k, v in sorted(overrides.items())) or AS_TRAINED


def evaluate_run(run: RunDir, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's final weights, built with `overrides`, on its own validation batches."""
    config = {**yaml.safe_load(run.config_path.read_text()), "run_root": str(run.path.parent)}
    for key, value in overrides.items():
        group, field = key.split(".")
        config[group][field] = value
    spec = JobSpec.from_config(config, here=False)  # validates the setting like a training job; scored on the CPU
    checkpoint = load_checkpoint(run.last_checkpoint_path)
    model = Decoder(spec.model)
    model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    model.eval()
    seed = spec.seed if spec.data.source == "mqar" else 0  # a recall task draws its validation items by seed
    batches = validation_batches(str(data_cache(config)), json.dumps(config["data"], sort_keys=True),
                                 spec.model.vocab_size, seed)  # fmt: skip
    metrics = {k: float(v) for k, v in evaluate(model, batches).items()}
    return {"evaluated_with": overrides, "checkpoint_step": checkpoint["global_step"], **metrics}


@functools.lru_cache(maxsize=4)
def validation_batches(cache_root: str, data: str, vocab_size: int, seed: int) -> list[dict]:
    """A data config's validation batches, read once for every run and setting of a group that shares them
    (a text validation set depends on the data alone: seed 0 stands for every seed)."""
    datamodule = LMDataModule(DataConfig(**json.loads(data)), seed=seed, max_steps=1, vocab_size=vocab_size,
                              cache_root=Path(cache_root))  # fmt: skip
    return list(datamodule.val_dataloader())


def ignored_setting(config: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    """Why a setting means nothing for this run (its attention pattern never reads the key), or None."""
    unread = [k for k in overrides if k in ignored_keys(config)]
    return f"attn.pattern={config['attn']['pattern']} never reads {', '.join(unread)}" if unread else None


PAPER_TABLE_10 = {1.0: "1.63", 0.5: "1.63", 0.25: "1.64"}  # Gemma 2 Table 10: perplexity, trained at W=4096,
# evaluated at 4096 / 2048 / 1024; keyed by evaluated / trained window


def evaluations(frame: pd.DataFrame, run_root: Path) -> pd.DataFrame:
    """One row per stored evaluation of the frame's runs: the run's columns plus `evaluated with` and
    the evaluation's val/loss, val/ppl (the run's own figures replaced, never mixed)."""
    rows = []
    for _, run in frame.iterrows():
        for path in sorted((run_root / run["run_id"] / "evals").glob("*.json")):
            if (record := read_record(path)) is None:
                print(f"[gemmalab] damaged: {path} skipped (python analysis/evaluate.py evaluates it again)",
                      file=sys.stderr)  # fmt: skip
                continue
            rows.append(
                {
                    **run.to_dict(),
                    "evaluated with": record["setting"],
                    "val/loss": record["val/loss"],
                    "val/ppl": record["val/ppl"],
                    "eval/window": record["evaluated_with"].get("attn.window"),
                }
            )
    return pd.DataFrame(rows)  # fmt: skip


def read_record(path: Path) -> dict[str, Any] | None:
    """An evaluation record, None when it is not one whole (cut short, edited by hand)."""
    try:
        record = json.loads(path.read_text())
        return record if isinstance(record, dict) and {"setting", "val/loss", "evaluated_with"} <= set(record) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def units_note(frame: pd.DataFrame) -> str:
    """Why the paper's perplexities and these cannot be set side by side as values."""
    tokenizers = ", ".join(sorted(map(str, frame["data.tokenizer"].unique())))
    sizes = sorted(frame["parameters"].dropna().astype(int).unique()) if "parameters" in frame else []
    models = f" of {', '.join(f'{n:,}' for n in sizes)} parameters" if sizes else ""
    return (f"Units: Gemma 2's Table 10 perplexities are per token of its 256K-entry SentencePiece vocabulary, from "
            f"its 9B model; these are per token of data.tokenizer={tokenizers}, from models{models}. The values do "
            "not compare; the change from the trained window does (the paper's: 1.63 -> 1.63 -> 1.64).")  # fmt: skip


def inference_table(frame: pd.DataFrame, run_root: Path, by: list[str]) -> pd.DataFrame | None:
    """Trained with / evaluated with / val loss / ppl, mean ± 95% CI over seeds; with the window changed,
    beside Gemma 2's Table 10 (matched by the ratio of evaluated to trained window)."""
    evals = evaluations(frame, run_root)
    if evals.empty:
        return None
    evals["val/ppl"] = np.exp(evals["val/loss"])
    table = display(aggregate(evals, [*by, "attn.window", "evaluated with"], ["val/loss", "val/ppl"]))
    table = table.rename(columns={"attn.window": "trained: attn.window"})
    if evals["eval/window"].notna().any():
        ratio = (evals["eval/window"].fillna(evals["attn.window"]) / evals["attn.window"]).round(4)
        ratio[evals["attn.pattern"] != "alt"] = np.nan  # the paper's model alternates local and global layers
        keys = [*by, "attn.window", "evaluated with"]  # aggregate's rows: the same sorted groups
        ratios = evals.assign(ratio=ratio).groupby(keys, sort=True, dropna=False)["ratio"].first()
        table["paper ppl (Table 10)"] = [PAPER_TABLE_10.get(float(r), "–") for r in ratios]
    return table


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_group_arguments(parser)
    parser.add_argument("overrides", nargs="*", help="switch=v1,v2 (switches that change no parameter)")
    add_wandb_arguments(parser, "eval")
    args = parser.parse_args(argv)
    resolve_latest(parser, args)
    try:
        settings = [{}, *parse_overrides(args.overrides)]
        ids = list(group_runs(args.run_root, args.group))
    except (ConfigError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    written, damaged = [], []
    for run_id in ids:
        run = RunDir(args.run_root, run_id)
        try:
            written += evaluate_settings(run, settings)
        except DamagedFile as err:  # named, and the rest of the group still evaluated
            print(f"[gemmalab] damaged: {err}", file=sys.stderr)
            damaged.append(run_id)
    print(f"[gemmalab] {len(written)} evaluation(s) written; table: python analysis/report.py --group {args.group}")
    if not args.no_wandb and written:
        log_to_wandb(args, ids, written)
    if damaged:
        raise SystemExit(f"error: {len(damaged)} run(s) not evaluated, their files damaged: {', '.join(damaged)}")
    return written


def log_to_wandb(args: argparse.Namespace, run_ids: list[str], written: list[Path]) -> None:
    """One W&B run in the sweep's group (job_type=eval): this invocation's evaluations as a numeric table,
    one row per run and setting; its files lie with the group's report runs, which report.py --sync-command
    uploads with them."""
    import wandb

    settings = wandb_settings(args, args.run_root, run_ids)
    records = pd.DataFrame([json.loads(path.read_text()) for path in written])
    records = records.drop(columns="evaluated_with")  # a dict; `setting` names it
    run = wandb.init(project=settings["project"], entity=settings["entity"], mode=settings["mode"],
                     group=args.group, job_type="eval", name=f"eval {args.group}", reinit="finish_previous",
                     dir=str(reports_dir(args.run_root) / args.group),
                     config={"group": args.group, "members": run_ids, "settings": args.overrides})  # fmt: skip
    run.log({"evaluations": wandb.Table(dataframe=records)})
    run.finish()


def evaluate_settings(run: RunDir, settings: list[dict[str, Any]]) -> list[Path]:
    """Each setting not yet evaluated for a finished run (a damaged record is set aside and redone); the
    records written, each atomically. Raises DamagedFile for a damaged summary or checkpoint."""
    summary = run.summary() or {}
    if summary.get("status") != FINISHED:
        print(f"[gemmalab] skip {run.run_id}: {summary.get('status', 'no summary')} (only finished runs)")
        return []
    written = []
    config = yaml.safe_load(run.config_path.read_text())
    for overrides in settings:
        if why := ignored_setting(config, overrides):  # it would score the run as trained, under another name
            print(f"[gemmalab] skip {run.run_id} {setting_name(overrides)}: {why}")
            continue
        path = run.path / "evals" / f"{setting_name(overrides).replace(' ', '_')}.json"
        if path.exists() and read_record(path) is not None:
            print(f"[gemmalab] skip {run.run_id} {setting_name(overrides)}: evaluated ({path})")
            continue
        if path.exists():
            print(f"[gemmalab] damaged: {path}: moved to {set_aside(path).name}, evaluated again", file=sys.stderr)
        record = {"run_id": run.run_id, "setting": setting_name(overrides), **evaluate_run(run, overrides)}
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, json.dumps(record, indent=2))
        written.append(path)
        line = f"[gemmalab] {run.run_id} {record['setting']}: val/loss={record['val/loss']:.4f}"
        if not overrides:
            same = record["val/loss"] == summary.get("val/loss")
            line += f" ({'equals' if same else 'DIFFERS from'} the run's logged {summary.get('val/loss')})"
        print(line)
    return written


if __name__ == "__main__":
    main()
