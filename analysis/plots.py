"""Seaborn figures from the run store, each saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from gemmalab.runs.store import RunDir  # noqa: E402
from gemmalab.train.stability import SpikeRule, series, spike_mask  # noqa: E402


def label_of(frame: pd.DataFrame, by: list[str]) -> pd.Series:
    if not by:
        return pd.Series(["all runs"] * len(frame), index=frame.index)
    return frame[by].astype(str).apply(lambda r: " ".join(f"{k}={v}" for k, v in zip(by, r, strict=True)), axis=1)


def _steps(frame: pd.DataFrame, run_root: Path, by: list[str], key: str) -> pd.DataFrame:
    rows = []
    for (_, run), label in zip(frame.iterrows(), label_of(frame, by), strict=True):
        steps, values = series(RunDir(run_root, run["run_id"]).metrics(), key)
        rows.append(pd.DataFrame({"step": steps, key: values, "config": label, "seed": run["seed"],
                                  "run_id": run["run_id"]}))  # fmt: skip
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return paths


def loss_curves(frame: pd.DataFrame, run_root: Path, by: list[str], rule: SpikeRule, out: Path) -> list[Path]:
    """Training loss per configuration (mean and 95% CI over seeds), loss spikes marked per run."""
    data = _steps(frame, run_root, by, "train/loss")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(data=data, x="step", y="train/loss", hue="config", errorbar=("ci", 95), ax=ax, linewidth=1)
    spikes = []
    for _, run in data.groupby("run_id"):
        spiking, _ = spike_mask(run["train/loss"].to_numpy(), rule)
        spikes.append(run[spiking])
    if spikes and len(marked := pd.concat(spikes)):
        ax.scatter(marked["step"], marked["train/loss"], marker="x", color="black", s=25, zorder=5,
                   label=f"spike ({rule.name})")  # fmt: skip
    ax.set_title(f"training loss; spikes: {rule.describe()}")
    ax.legend(fontsize=7)
    return _save(fig, out, "loss_curves")


def grad_norm_distribution(frame: pd.DataFrame, run_root: Path, by: list[str], start: int, out: Path) -> list[Path]:
    data = _steps(frame, run_root, by, "train/grad_norm")
    data = data[data["step"] >= start]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.boxplot(data=data, x="config", y="train/grad_norm", ax=ax)
    ax.set_yscale("log")
    ax.set_title(f"global gradient norm before clipping, steps >= {start}")
    ax.tick_params(axis="x", rotation=20, labelsize=7)
    return _save(fig, out, "grad_norm_distribution")


def lr_vs_loss(frame: pd.DataFrame, by: list[str], out: Path) -> list[Path]:
    """Final validation loss against peak LR; a diverged run is drawn at its initial loss (as Wortsman et al.)."""
    data = frame.copy()
    finished = data["status"].astype(str).eq("finished") & np.isfinite(data["val/loss"])
    data["final val/loss"] = np.where(
        finished, np.minimum(data["val/loss"], data["val/loss_init"]), data["val/loss_init"]
    )
    data["config"] = label_of(data, [b for b in by if b != "optim.lr"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=data, x="optim.lr", y="final val/loss", hue="config", marker="o", errorbar=("ci", 95), ax=ax)
    diverged = data[~finished]
    if len(diverged):
        ax.scatter(
            diverged["optim.lr"], diverged["final val/loss"], marker="x", color="red", label="diverged", zorder=5
        )
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    return _save(fig, out, "lr_vs_loss")


def max_logit_over_training(frame: pd.DataFrame, run_root: Path, by: list[str], out: Path) -> list[Path]:
    logged = {k for run_id in frame["run_id"] for m in RunDir(run_root, run_id).metrics().values() for k in m}
    layers = [k for k in logged if k.startswith("attn/max_logit/layer_")]
    layers.sort(key=lambda k: int(k.rsplit("_", 1)[1]))
    parts = []
    for key in layers:
        part = _steps(frame, run_root, by, key).rename(columns={key: "max pre-cap logit"})
        parts.append(part.assign(layer=key.rsplit("/", 1)[1]))
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    grid = sns.relplot(data=data, x="step", y="max pre-cap logit", hue="config", col="layer", kind="line",
                       col_wrap=min(4, max(1, len(layers))), height=2.6, errorbar=("ci", 95))  # fmt: skip
    grid.figure.suptitle("maximum attention logit before the cap, per layer", y=1.02)
    return _save(grid.figure, out, "max_logit_per_layer")
