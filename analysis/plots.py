"""Seaborn figures from the run store, each saved as PNG and as PDF with embedded fonts, sized for a
paper: one column (3.25 in) or the full width (6.75 in), 7-9 pt text, the colour-blind-safe
palette with one fixed colour per setting in every figure of a report."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from gemmalab.runs.store import RunDir  # noqa: E402
from gemmalab.train.stability import SpikeRule, series, spike_mask  # noqa: E402

from .tables import without_ignored  # noqa: E402

# PDF font subsetting logs every font table at INFO, which a root logger at INFO (Hydra's, after an in-process
# sweep: analysis/paper.py) prints as hundreds of lines
logging.getLogger("fontTools").setLevel(logging.WARNING)
ONE_COLUMN, FULL_WIDTH = 3.25, 6.75  # inches: a two-column paper's column and text width
plt.rcParams.update({
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "figure.titlesize": 9, "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType, embedded
})  # fmt: skip


def colours(labels: pd.Series) -> dict[str, object]:
    """One colour per setting, the same in every figure drawn from the same runs (sorted labels)."""
    order = sorted(set(labels))
    return dict(zip(order, sns.color_palette("colorblind", len(order)), strict=True))


def label_of(frame: pd.DataFrame, by: list[str]) -> pd.Series:
    if not by:
        return pd.Series(["all runs"] * len(frame), index=frame.index)
    columns = list(dict.fromkeys([*by, "attn.pattern"])) if "attn.pattern" in frame else by
    shown = without_ignored(frame[columns])  # so a pattern's ignored settings read `–`
    return shown[by].apply(lambda r: " ".join(f"{k}={v}" for k, v in zip(by, r, strict=True)), axis=1)


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
    """Training loss per configuration (mean and 95% CI over seeds), loss spikes marked per run. A log axis
    when the losses span more than a factor of 20 (a diverged run at 1e8 would flatten every healthy
    curve); a diverged run's last step is marked."""
    data = _steps(frame, run_root, by, "train/loss")
    data = data[np.isfinite(data["train/loss"])]
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 3.0))
    palette = colours(label_of(frame, by))
    sns.lineplot(data=data, x="step", y="train/loss", hue="config", errorbar=("ci", 95), ax=ax, linewidth=1,
                 palette=palette, hue_order=list(palette))  # fmt: skip
    spikes = []
    for _, run in data.groupby("run_id"):
        spiking, _ = spike_mask(run["train/loss"].to_numpy(), rule)
        spikes.append(run[spiking])
    if spikes and len(marked := pd.concat(spikes)):
        ax.scatter(marked["step"], marked["train/loss"], marker="x", color="black", s=25, zorder=5,
                   label=f"spike ({rule.name})")  # fmt: skip
    diverged = frame.loc[frame["status"].astype(str).str.startswith("diverged"), "run_id"]
    ends = data[data["run_id"].isin(diverged)].groupby("run_id").tail(1)
    if len(ends):
        ax.scatter(ends["step"], ends["train/loss"], marker="v", color="red", s=30, zorder=6, label="diverged")
    losses = data["train/loss"]
    if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 20:
        ax.set_yscale("log")
    ax.set_title(f"training loss; spikes: {rule.describe()}")
    ax.legend()
    return _save(fig, out, "loss_curves")


def grad_norm_distribution(frame: pd.DataFrame, run_root: Path, by: list[str], start: int, out: Path) -> list[Path]:
    data = _steps(frame, run_root, by, "train/grad_norm")
    data = data[data["step"] >= start]
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 3.0))
    palette = colours(label_of(frame, by))
    sns.boxplot(data=data, x="config", y="train/grad_norm", hue="config", ax=ax, palette=palette, order=list(palette),
                hue_order=list(palette), legend=False)  # fmt: skip
    ax.set_yscale("log")
    ax.set_title(f"global gradient norm before clipping, steps >= {start}")
    ax.tick_params(axis="x", rotation=20)
    return _save(fig, out, "grad_norm_distribution")


def lr_vs_loss(frame: pd.DataFrame, by: list[str], out: Path) -> list[Path]:
    """Final validation loss against peak LR; a diverged run is drawn at its initial loss (as Wortsman et al.)."""
    data = frame.copy()
    finished = data["status"].astype(str).eq("finished") & np.isfinite(data["val/loss"])
    data["final val/loss"] = np.where(
        finished, np.minimum(data["val/loss"], data["val/loss_init"]), data["val/loss_init"]
    )
    data["config"] = label_of(data, [b for b in by if b != "optim.lr"])
    fig, ax = plt.subplots(figsize=(ONE_COLUMN, 2.6))
    palette = colours(data["config"])
    sns.lineplot(data=data, x="optim.lr", y="final val/loss", hue="config", marker="o", errorbar=("ci", 95), ax=ax,
                 palette=palette, hue_order=list(palette))  # fmt: skip
    diverged = data[~finished]
    if len(diverged):
        ax.scatter(
            diverged["optim.lr"], diverged["final val/loss"], marker="x", color="red", label="diverged", zorder=5
        )
    ax.set_xscale("log")
    ax.legend()
    return _save(fig, out, "lr_vs_loss")


def _per_layer(frame: pd.DataFrame, run_root: Path, by: list[str], prefix: str, ylabel: str) -> pd.DataFrame:
    """One metric logged per layer (`<prefix><i>`), long form with a `layer` column."""
    logged = {k for run_id in frame["run_id"] for m in RunDir(run_root, run_id).metrics().values() for k in m}
    layers = sorted((k for k in logged if k.startswith(prefix)), key=lambda k: int(k.rsplit("_", 1)[1]))
    parts = [
        _steps(frame, run_root, by, key).rename(columns={key: ylabel}).assign(layer=key.rsplit("/", 1)[1])
        for key in layers
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _layer_grid(
    data: pd.DataFrame, palette: dict[str, object], ylabel: str, title: str, out: Path, name: str
) -> list[Path]:
    """One panel per layer, four to a row across the full text width; the legend under the panels."""
    if data.empty:
        return []
    palette = {k: v for k, v in palette.items() if k in set(data["config"])}
    grid = sns.relplot(data=data, x="step", y=ylabel, hue="config", col="layer", kind="line",
                       col_wrap=min(4, data["layer"].nunique()), height=FULL_WIDTH / 4 * 0.9, aspect=1.0,
                       errorbar=("ci", 95), palette=palette, hue_order=list(palette), legend=False)  # fmt: skip
    grid.set_titles("{col_name}")
    # the legend under the panels, drawn here: seaborn's own makes room on the right, and a long legend
    # beside two narrow panels leaves them no width at all
    handles = [Line2D([0], [0], color=colour) for colour in palette.values()]
    grid.figure.legend(handles, list(palette), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    grid.figure.suptitle(title, y=1.04)
    return _save(grid.figure, out, name)


def max_logit_over_training(frame: pd.DataFrame, run_root: Path, by: list[str], out: Path) -> list[Path]:
    label = "max pre-cap logit"
    data = _per_layer(frame, run_root, by, "attn/max_logit/layer_", label)
    title = "maximum attention logit before the cap, per layer"
    return _layer_grid(data, colours(label_of(frame, by)), label, title, out, "max_logit_per_layer")


def engagement_over_training(frame: pd.DataFrame, run_root: Path, by: list[str], out: Path) -> list[Path]:
    """Beside the max logit: the share of attention scores the cap bends (|s| > cap/2) per layer, and
    the share of each global layer's attention beyond the local window."""
    cap_label, mass_label = "% scores > cap/2", "% attention beyond W"
    caps = _per_layer(frame, run_root, by, "softcap/attn/beyond_half/layer_", cap_label)
    mass = _per_layer(frame, run_root, by, "window/mass_beyond/layer_", mass_label)
    for data, label in ((caps, cap_label), (mass, mass_label)):
        if not data.empty:
            data[label] *= 100
    palette = colours(label_of(frame, by))  # every run's setting: the same colours as the other figures
    return _layer_grid(
        caps, palette, cap_label, "attention scores bent by the cap (|s| > cap/2; off: against 50), per layer", out,
        "cap_engagement_per_layer",
    ) + _layer_grid(
        mass, palette, mass_label, "global layers: attention on keys beyond the local window, per layer", out,
        "window_mass_per_layer",
    )  # fmt: skip


def accuracy_by_distance(frame: pd.DataFrame, by: list[str], out: Path) -> list[Path]:
    """Recall accuracy against key-to-query distance (bucket centres; mean and 95% CI over seeds), the
    study's windows as dashed lines, chance (one of the vocabulary's values) dotted."""
    from .studies import distance_buckets_of

    parts = []
    for (_, run), label in zip(frame.iterrows(), label_of(frame, by), strict=True):
        buckets = distance_buckets_of(run)
        parts.append(buckets.assign(distance=(buckets["lo"] + 1 + buckets["hi"]) / 2, config=label))
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if data.empty:
        return []
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 3.0))
    palette = colours(label_of(frame, by))
    sns.lineplot(data=data, x="distance", y="accuracy", hue="config", marker="o", errorbar=("ci", 95), ax=ax,
                 palette=palette, hue_order=list(palette))  # fmt: skip
    for window in sorted({int(w) for w in frame["attn.window"].dropna()}):
        ax.axvline(window + 0.5, color="grey", linestyle="--", linewidth=1)
        ax.text(window + 0.5, 1.02, f"W={window}", ha="center", fontsize=7, transform=ax.get_xaxis_transform())
    vocab = int(frame["model.vocab_size"].max())
    ax.axhline(1 / (vocab - vocab // 2), color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel("key-to-query distance (tokens)")
    ax.set_ylabel("query accuracy")
    ax.legend()
    return _save(fig, out, "accuracy_by_distance")


def effect_vs_parameters(drawn: dict, out: Path) -> list[Path]:
    """A ladder's effect per rung (95% CI bars) against non-embedding parameters, with the weighted fit and its
    95% prediction band (analysis/scaling.py)."""
    if not drawn["points"]:
        return []
    x, y, _, ci = (np.array(v) for v in zip(*drawn["points"], strict=True))
    fig, ax = plt.subplots(figsize=(ONE_COLUMN, 2.6))
    ax.errorbar(10**x, y, yerr=ci, fmt="o", capsize=4, label="per rung (95% CI)")
    if (fit := drawn["fit"]) is not None:
        grid = np.linspace(x.min() - 0.2, x.max() + 0.2, 50)
        mean, half = (np.array(v) for v in zip(*(fit.predict(g) for g in grid), strict=True))
        ax.plot(10**grid, mean, color="C1", label=f"fit: {fit.slope:+.3g} / decade")
        ax.fill_between(10**grid, mean - half, mean + half, color="C1", alpha=0.2, label="95% prediction band")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set(xlabel="non-embedding parameters", ylabel=f"Δ {drawn['metric']}")
    ax.set_title(f"({drawn['other']}) - ({drawn['base']})", fontsize=7)
    ax.legend(fontsize=8)
    return _save(fig, out, "effect_vs_parameters")


def per_seed_values(claims: list[dict], out: Path, name: str = "findings_per_seed") -> list[Path]:
    """Every value behind each measured claim (findings.json's per_seed): a strip per claim with its two arms
    side by side, one seed's two values joined by a line, the verdict under the claim's id."""
    shown = [c for c in claims if c.get("per_seed")]
    if not shown:
        return []
    columns = min(4, len(shown))
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.7 * rows), squeeze=False)
    for ax, claim in zip(axes.flat, shown, strict=False):
        points = pd.DataFrame(claim["per_seed"])
        order = list(dict.fromkeys(points["arm"]))
        for _, seed in points.groupby("seed"):
            if len(seed) == 2:
                ax.plot([order.index(a) for a in seed["arm"]], seed["value"], color="0.7", lw=0.6, zorder=1)
        sns.stripplot(data=points, x="arm", y="value", order=order, hue="arm", hue_order=order, jitter=False,
                      size=4, legend=False, ax=ax, zorder=2)  # fmt: skip
        ax.set_title(f"{claim['id']}\n{claim['verdict'][:42]}", fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel(claim["quantity"].split(",")[0], fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, out, name)
