"""The table of a study run tuned (+tune=lr, gemmalab/tune.py): per arm the LR grid and the best LR chosen on
the selection sweep's val/loss (flagged when at the grid's edge), and the comparison's test/loss at the
shared LR and at each arm's own, with each arm's difference to the first arm (the idea off, where its switch
has such a value: norm=pre, softcap off; else the first in order) at both: paired over the
fresh seeds, Holm-adjusted over the arms, so the reader sees whether tuning changes the conclusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gemmalab.runs.store import RunDir
from gemmalab.switches import SWITCHES
from gemmalab.tune import arm_key, choose

from .tables import (
    aggregate,
    difference,
    fmt,
    holm,
    marker,
    pairs_up,
    same_value,
    varying_switches,
    without_ignored,
)

TEST = "test/loss"


def tuned(frame: pd.DataFrame, run_root: Path) -> pd.DataFrame:
    choices = choose(run_root, frame["tune.selection"].dropna().iloc[0])
    frame = frame.assign(_arm=[arm_key(yaml.safe_load(RunDir(run_root, i).config_path.read_text()))
                               for i in frame["run_id"]])  # fmt: skip
    switches = [k for k in varying_switches(frame) if k != "optim.lr"]
    shared_lr = float(frame.loc[frame["tune.arm_lr"] == "shared", "optim.lr"].iloc[0])
    arms = frame.groupby("_arm", sort=False).head(1).sort_values(switches)
    neutral = {s.key: s.neutral for s in SWITCHES if s.key in switches and s.neutral is not None}
    at_neutral = [all(same_value(r[k], v) for k, v in neutral.items()) for _, r in arms.iterrows()]
    arms = arms.iloc[sorted(range(len(arms)), key=lambda i: not at_neutral[i])]  # the idea off first: the reference
    rows, cells = [], {"shared": [], "tuned": []}
    for _, first in arms.iterrows():
        runs = frame[frame["_arm"] == first["_arm"]]
        choice = choices[first["_arm"]]
        row = dict(without_ignored(first[switches].to_frame().T).iloc[0]) if switches else {}
        grid = ", ".join(f"{lr:g}" for lr in choice.losses)
        best = f"{choice.lr:g}" + (" EDGE: widen the grid" if choice.edge else "")
        row.update({"LR grid": grid, "best LR (val/loss)": best,
                    "selection val/loss": f"{choice.losses[choice.lr]:.4f}"})  # fmt: skip
        for name, lr in (("shared", shared_lr), ("tuned", choice.lr)):
            at = runs[[same_value(v, lr) for v in runs["optim.lr"]]]
            agg = aggregate(at.assign(_all="x"), ["_all"], [TEST]).frame.iloc[0]
            untuned = name == "tuned" and choice.edge
            row[f"{TEST} at {name} LR"] = fmt(agg[f"{TEST}_mean"], agg[f"{TEST}_ci"], agg[f"{TEST}_n"], 4) + (
                " (not tuned: edge)" if untuned else "")  # fmt: skip
            cells[name].append((agg[f"{TEST}_values"], agg[f"{TEST}_seeds"], untuned))
        rows.append(row)
    table = pd.DataFrame(rows)
    paired = pairs_up(frame)
    verdicts = {}
    for name, arm_cells in cells.items():
        base_values, base_seeds, base_untuned = arm_cells[0]
        diffs = [difference(v, s, base_values, base_seeds, paired) for v, s, _ in arm_cells]
        p = holm([np.nan if i == 0 or untuned or base_untuned else d.p
                  for i, (d, (_, _, untuned)) in enumerate(zip(diffs, arm_cells, strict=True))])  # fmt: skip
        table[f"Δ vs first arm, {name} LR"] = [
            "(first arm)" if i == 0 else "not tuned (best LR at the grid's edge)" if untuned or base_untuned
            else f"{d.delta:+.4f}{f' ± {d.ci:.4f}' if np.isfinite(d.ci) else ''} ({d.test}) {marker(q)}".strip()
            for i, (d, q, (_, _, untuned)) in enumerate(zip(diffs, p, arm_cells, strict=True))
        ]  # fmt: skip
        verdicts[name] = [(np.sign(d.delta), np.isfinite(q) and q < 0.05) for d, q in zip(diffs, p, strict=True)]
    untuned = [c[2] or cells["tuned"][0][2] for c in cells["tuned"]]
    table["tuning changes the conclusion"] = [
        "–" if i == 0 or untuned[i] else "yes" if verdicts["shared"][i] != verdicts["tuned"][i] else "no"
        for i in range(len(table))
    ]
    return table
