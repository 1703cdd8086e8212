"""Hydra entry point: one job = one training run.

    python sweep.py                                          # one run, embedded defaults
    python sweep.py -m attn.pattern=alt,full norm=dual,pre   # a 2x2 ablation
    python sweep.py -m +ablation=softcap                     # a named study from ablations/

Every job of a multirun is validated before the first one trains; a job that
fails while training is recorded with its reason and the others still run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gemmalab.errors import ConfigError
from gemmalab.runs.console import quiet
from gemmalab.runs.job import run_job
from gemmalab.runs.preflight import validate_all_jobs
from gemmalab.runs.store import record_sweep_member
from gemmalab.schema import register

register()
outcome: dict = {"failed": [], "group": None, "run_root": None, "runs": 0, "swept": None}


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    group = cfg.group or Path(hydra_cfg.sweep.dir if multirun else hydra_cfg.run.dir).name
    outcome.update(group=group, run_root=cfg.run_root, runs=outcome["runs"] + 1)
    config = OmegaConf.to_container(cfg, resolve=True)
    try:
        summary = run_job(config, list(hydra_cfg.overrides.task), group, outcome["swept"])
    except ConfigError as err:  # found only now, e.g. a student whose teacher alias never finished
        print(f"error: {err}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
        overrides = list(hydra_cfg.overrides.task)
        record_sweep_member(cfg.run_root, group, {"overrides": overrides, "status": f"failed: {err}"})
        outcome["failed"].append(f"{' '.join(overrides)}: {err}")
        return
    if summary["status"].startswith("failed"):
        outcome["failed"].append(f"{summary['name']}: {summary['status']}")


if __name__ == "__main__":
    # Own W&B service per sweep process: one inherited from a parent process would outlive a killed
    # job and keep holding its run id, so the job could not resume into the same W&B run.
    os.environ.pop("WANDB_SERVICE", None)
    quiet()
    try:
        _, outcome["swept"] = validate_all_jobs(sys.argv[1:], config_dir=Path(__file__).parent / "conf")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()
    if outcome["group"] is not None:
        root = Path(outcome["run_root"])
        print(f"\n[gemmalab] {outcome['runs']} run(s) in {root.resolve()} (group {outcome['group']})")
        print(f"[gemmalab] sweep members: {root / '_sweeps' / outcome['group'] / 'members.jsonl'}")
        print(f"[gemmalab] tables: python analysis/report.py --group {outcome['group']} --run-root {root}")
    if outcome["failed"]:
        print("[gemmalab] failed jobs:\n  " + "\n  ".join(outcome["failed"]), file=sys.stderr)
        sys.exit(1)
