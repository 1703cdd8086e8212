"""A W&B workspace per study, as code (wandb-workspaces: `pip install -e ".[workspaces]"`): the sweep's runs,
selected by run id (so a run reused from an earlier sweep, which keeps that sweep's W&B group, is in too),
grouped by the switches the sweep varied, with a section of line plots per family of logged metrics and bar
charts of the headline figures.

    python analysis/workspace.py --group G                      # build it: <run-root>/_reports/<G>/workspace.json
    python analysis/workspace.py --group latest --save --entity ME   # also save it to W&B (online; wandb login)

Building needs no server: the workspace is serialised as the view W&B would store. Saving needs one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gemmalab.analysis.loaders import add_group_arguments, group_runs, resolve_latest
from gemmalab.analysis.tables import QUALITY
from gemmalab.analysis.wandb_run import add_wandb_arguments, wandb_settings
from gemmalab.runs.files import write_atomic
from gemmalab.runs.store import RunDir, reports_dir
from gemmalab.runs.sweep_dir import SweepDir

# metric families, each a section: the prefix of their names as the training runs log them
SECTIONS = {"train/": "Training", "val/": "Validation", "attn/": "Attention logits", "output/": "Output logits",
            "softcap/": "Cap engagement", "window/": "Window"}  # fmt: skip
HEADLINES = (QUALITY, "val/loss", "stability/loss_spikes", "stability/grad_norm_var")  # W&B summary keys


def logged_metrics(run_root: Path, run_ids: list[str]) -> list[str]:
    """Every metric name the group's runs logged (their metrics.jsonl), sorted."""
    names: set[str] = set()
    for run_id in run_ids:
        for values in RunDir(run_root, run_id).metrics().values():
            names.update(values)
    return sorted(names)


def build_workspace(entity: str, project: str, group: str, run_ids: list[str], swept: list[str],
                    metrics: list[str]):  # fmt: skip
    """The workspace of one sweep: its runs by id, grouped by the swept switches, one section per family."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    sections = [ws.Section(name="Headline figures", is_open=True,
                           panels=[wr.BarPlot(title=m, metrics=[m]) for m in HEADLINES])]  # fmt: skip
    for prefix, title in SECTIONS.items():
        if family := [m for m in metrics if m.startswith(prefix)]:
            sections.append(
                ws.Section(
                    name=title,
                    is_open=prefix in ("train/", "val/"),
                    panels=[wr.LinePlot(title=m, x="trainer/global_step", y=[m]) for m in family],
                )
            )
    runs = ws.RunsetSettings(filters=ws.And(ws.Metric("ID").isin(run_ids)), groupby=[ws.Config(k) for k in swept])
    return ws.Workspace(entity=entity, project=project, name=f"gemmalab {group}", sections=sections,
                        runset_settings=runs)  # fmt: skip


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_group_arguments(parser)
    parser.add_argument("--save", action="store_true", help="also save the workspace to W&B (needs a server)")
    add_wandb_arguments(parser, "workspace")
    args = parser.parse_args(argv)
    resolve_latest(parser, args)
    try:
        import wandb_workspaces  # noqa: F401
    except ModuleNotFoundError:
        parser.error('wandb-workspaces is not installed (allowed: pip install -e ".[workspaces]")')
    try:
        run_ids = list(group_runs(args.run_root, args.group))
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None
    settings = wandb_settings(args, args.run_root, run_ids)
    if args.save and not settings["entity"]:
        parser.error("--save needs the W&B entity the workspace belongs to (allowed: --entity NAME, or logger.entity)")
    swept = sorted(set(SweepDir(args.run_root, args.group).swept() or ()) - {"seed"})  # seeds: averaged, not grouped
    workspace = build_workspace(settings["entity"] or "", settings["project"], args.group, run_ids, swept,
                                logged_metrics(args.run_root, run_ids))  # fmt: skip
    out = reports_dir(args.run_root) / args.group / "workspace.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, workspace._to_model().model_dump_json(indent=2))  # the view as W&B stores it
    print(f"[gemmalab] workspace of {len(run_ids)} run(s), grouped by {', '.join(swept) or 'nothing'}: {out}")
    if args.save:
        workspace.save()
        print(f"[gemmalab] saved: {workspace.url}")
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
