"""A study run tuned (`+tune=lr`): each arm at its own best learning rate, chosen on the validation split.

    python sweep.py -m +ablation=norm +tune=lr

sweep.py runs two sweeps. Selection (group `select-<G>`): every arm on a log-spaced LR grid around the
recipe's LR, seeds 0 .. tune.seeds-1. Comparison (group `<G>`): every arm at the recipe's LR (`shared`) and
at its best LR (`tuned`), with fresh seeds (the study's plus tune.seed_offset); when the two LRs agree it
is the same run, trained once. The choice reads each selection run's status and val/loss, nothing else:
the test split (data/config.py split_of) is read by the report of the comparison alone.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gemmalab.errors import ConfigError, require_choice, require_int
from gemmalab.runs.identity import run_identity
from gemmalab.runs.store import FINISHED, RunDir, new_group
from gemmalab.runs.sweep_dir import SweepDir

if TYPE_CHECKING:
    from gemmalab.runs.preflight import Plan

STAGES = ("select", "compare")
ARM_LRS = ("shared", "tuned")


@dataclass
class TuneConfig:
    enabled: bool = False  # +tune=lr
    points: int = 5  # LR grid points, centred on optim.lr
    spacing: float = 0.5  # decades between neighbouring points (5 points: lr / 10 .. lr * 10)
    seeds: int = 1  # selection seeds per grid point: 0 .. seeds-1
    seed_offset: int = 1000  # the comparison's seeds: the study's own plus this, none of them a selection seed
    stage: str | None = None  # set by sweep.py: select | compare
    selection: str | None = None  # set by sweep.py: the selection sweep's group
    arm_lr: str = "shared"  # compare stage: shared (the recipe's LR) | tuned (the arm's best)

    def __post_init__(self) -> None:
        require_int("tune.points", self.points, minimum=3, allowed=">= 3 (an edge must be told from the best)")
        require_int("tune.seeds", self.seeds)
        if not self.spacing > 0:
            raise ConfigError(f"tune.spacing={self.spacing} is not allowed (allowed: decades > 0, e.g. 0.5)")
        if self.stage is not None:
            require_choice("tune.stage", self.stage, STAGES)
        require_choice("tune.arm_lr", self.arm_lr, ARM_LRS)


def lr_grid(lr: float, points: int, spacing: float) -> list[float]:
    """`points` learning rates `spacing` decades apart, centred on `lr` (3 significant digits)."""
    return [float(f"{lr * 10 ** (spacing * (i - (points - 1) / 2)):.3g}") for i in range(points)]


def arm_key(config: dict[str, Any]) -> str:
    """What makes a run one arm of the study: its identity without its learning rate and seed."""
    blind = copy.deepcopy(config)
    blind["optim"]["lr"], blind["seed"] = 0.0, 0
    return run_identity(blind)


@dataclass
class Choice:
    lr: float  # the LR of the lowest mean val/loss over the selection seeds
    losses: dict[float, float] = field(default_factory=dict)  # per grid LR; inf where no seed finished
    edge: bool = False  # the best LR is the grid's smallest or largest: widen the grid, it is not tuned


def choose(run_root: str | Path, selection: str) -> dict[str, Choice]:
    """Per arm (arm_key), the best LR of the selection sweep, from its runs' status and val/loss alone."""
    runs: dict[str, dict[float, list[float]]] = {}
    for member in SweepDir(run_root, selection).latest_members():
        if not member.get("run_id"):
            continue
        run = RunDir(run_root, member["run_id"])
        summary, config = run.summary() or {}, yaml.safe_load(run.config_path.read_text())
        loss = summary.get("val/loss") if summary.get("status") == FINISHED else None
        by_lr = runs.setdefault(arm_key(config), {})
        by_lr.setdefault(float(config["optim"]["lr"]), []).append(math.inf if loss is None else float(loss))
    choices = {}
    for arm, by_lr in runs.items():
        losses = {lr: sum(v) / len(v) for lr, v in sorted(by_lr.items())}
        best = min(losses, key=losses.get)
        choices[arm] = Choice(best, losses, edge=best in (min(losses), max(losses)) or math.isinf(losses[best]))
    return choices


def tuned_lr(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its arm's chosen LR, for a comparison job with tune.arm_lr=tuned; else as it is."""
    tune = TuneConfig(**config["tune"])
    if tune.stage != "compare" or tune.arm_lr != "tuned":
        return config
    choices = choose(config["run_root"], tune.selection)
    if (choice := choices.get(arm_key(config))) is None:
        raise ConfigError(f"tune.selection={tune.selection} has no run of this arm (allowed: the group of the "
                          f"selection sweep of this very study; it has {len(choices)} arm(s))")  # fmt: skip
    config = copy.deepcopy(config)
    config["optim"]["lr"] = choice.lr
    return config


def tuned(argv: list[str], plan: Plan, launch: Callable[[list[str]], int]) -> int:
    """+tune=lr: the selection sweep on the LR grid, then the comparison at the shared and
    the tuned LRs with fresh seeds, each a sweep of its own (sweep.py's `launch`); the exit code of the worse."""
    if plan.swept is None or "optim.lr" in plan.swept or len(plan.lrs) != 1:
        print(f"error: +tune=lr chooses optim.lr itself (allowed: one optim.lr, the grid's centre, and -m; "
              f"given: {', '.join(map(str, plan.lrs))})", file=sys.stderr)  # fmt: skip
        return 2
    tune = TuneConfig(**plan.tune)
    group = plan.group or new_group(plan.ablation)
    grid = ",".join(map(str, lr_grid(plan.lrs[0], tune.points, tune.spacing)))
    stages = [
        [f"optim.lr={grid}", f"seed={','.join(map(str, range(tune.seeds)))}", "tune.stage=select",
         f"group=select-{group}"],
        [f"seed={','.join(str(s + tune.seed_offset) for s in plan.seeds)}", "tune.stage=compare",
         f"tune.selection=select-{group}", "tune.arm_lr=shared,tuned", f"group={group}"],
    ]  # fmt: skip
    worst = 0
    for extra in stages:
        code = launch([*argv, *extra])
        worst = max(worst, code)
        if code == 2 or code >= 128:  # refused, or stopped: the comparison would not be the one asked for
            break
    return worst
