"""Turn a sweep's logged runs into its report: tables (Markdown, LaTeX, CSV), seaborn figures
(PNG, PDF) and report.md; the tables (as text and as numbers) and the figures also go to the sweep's W&B
group, as a report run (job_type=report) in the runs' own logger.mode / project / entity.

    python analysis/report.py --group 2026-11-27_10-51-45            # the group sweep.py printed
    python analysis/report.py --study softcap                       # the latest run of ablations/softcap.yaml
    python analysis/report.py --group G --source wandb-offline      # read the W&B offline files instead
    python analysis/report.py --group G --source wandb --project gemmalab --entity me
    python analysis/report.py --group G --sync-command               # `wandb sync` for exactly G's W&B runs
    python analysis/report.py --real-scale                          # Gemma 1 / 2 at real size, from the presets
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from gemmalab.analysis import plots, scaling, studies, tuning
from gemmalab.analysis.engagement import engagement_lines, engagement_table
from gemmalab.analysis.evaluate import inference_table, units_note
from gemmalab.analysis.latex import build_pdf, report_document, to_latex
from gemmalab.analysis.loaders import (
    add_group_arguments,
    group_runs,
    load_run_store,
    load_wandb_api,
    load_wandb_offline,
    resolve_latest,
)
from gemmalab.analysis.power import power_note
from gemmalab.analysis.tables import QUALITY, STABILITY, aggregate, to_markdown, varying_switches
from gemmalab.analysis.wandb_run import add_wandb_arguments, wandb_settings
from gemmalab.runs.metrics_file import line_numbers
from gemmalab.runs.store import SWEEPS, RunDir, reports_dir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.schema import LoggerConfig
from gemmalab.train.stability import SpikeRule, StabilityConfig, spike_rule, stability_summary


def latest_group(run_root: Path, study: str) -> str:
    groups = SweepDir.groups(run_root, f"{study}_")
    if not groups:
        raise SystemExit(f"error: --study {study} has no sweep in {run_root / SWEEPS} "
                         f"(run: python sweep.py -m +ablation={study})")  # fmt: skip
    return groups[-1]


def study_of(run_root: Path, group: str) -> str | None:
    """The ablation a sweep ran (its `+ablation=NAME` override), if any."""
    multirun = SweepDir(run_root, group).path / "multirun.yaml"
    if not multirun.exists():
        return None
    overrides = yaml.safe_load(multirun.read_text())["hydra"]["overrides"]["task"]
    names = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("ablation=")]
    return names[0] if names else None


def load(args: argparse.Namespace, run_root: Path, group: str) -> tuple[pd.DataFrame, list[str]]:
    """The group's runs from the chosen source, and a line for each run it could not read (a damaged or
    missing file, a W&B run directory that is gone, the run store and W&B disagreeing)."""
    store = load_run_store(run_root, group)
    missing = list(store.attrs["missing"])
    if args.source == "runstore":
        return store, missing
    if args.source == "wandb":
        frame = load_wandb_api(args.project or LoggerConfig.project, group, args.entity)
    else:
        dirs = {i: sorted((run_root / i / "wandb").glob("offline-run-*")) for i in store["run_id"]}
        missing += [f"{i}: no W&B offline run in {run_root / i / 'wandb'}" for i, found in dirs.items() if not found]
        frame = load_wandb_offline([d for found in dirs.values() for d in found])
        missing += frame.attrs["missing"]
    return frame, missing + disagreements(store, frame)


def disagreements(store: pd.DataFrame, other: pd.DataFrame) -> list[str]:
    """Runs whose status or val/loss differ between the run store and W&B (e.g. the W&B directory of the
    latest attempt is gone, and an earlier attempt's summary is read instead)."""
    if store.empty or other.empty:
        return []
    ours, theirs = store.set_index("run_id"), other.set_index("run_id")
    lines = []
    for run_id in ours.index.intersection(theirs.index):
        for key in ("status", "val/loss"):
            a, b = (f.at[run_id, key] if key in f else None for f in (ours, theirs))
            if str(a) != str(b) and not (pd.isna(a) and pd.isna(b)):
                lines.append(f"{run_id}: the run store and W&B disagree on {key} ({a} vs {b})")
    return lines


def integrity_notes(frame: pd.DataFrame, missing: list[str], run_root: Path) -> list[str]:
    """Lines under the main table: the runs left out and why, and metric lines skipped as damaged."""
    notes = []
    if missing:
        notes.append(f"Missing: {len(missing)} of {len(frame) + len(missing)} runs are not in these tables: "
                     + "; ".join(missing) + ".")  # fmt: skip
    for run_id in frame["run_id"]:
        if lines := RunDir(run_root, run_id).damaged_metric_lines():
            notes.append(f"Damaged: {len(lines)} line(s) of {run_root / run_id / 'metrics.jsonl'} skipped "
                         f"({line_numbers(lines)}).")  # fmt: skip
    return notes


TRAINED = "What was trained"  # the report's first section; its tables follow


def what_was_trained(frame: pd.DataFrame, command: str | None) -> list[str]:
    """The report's opening lines: the command, the data (source, content fingerprint, token cache), the model,
    the steps and the seeds, so a report of one sweep is never taken for another's."""

    def values(*keys: str) -> list[str]:
        rows = frame[[k for k in keys if k in frame]].drop_duplicates()
        return [", ".join(f"{k.split('.')[-1]} {v}" for k, v in row.items() if v is not None and v == v)
                for _, row in rows.iterrows()]  # fmt: skip

    where = {"files": "data.files", "hf": "data.name"}
    data = []
    for _, row in frame.drop_duplicates([c for c in ("data.source", "data/fingerprint") if c in frame]).iterrows():
        origin = where.get(row["data.source"])
        named = f" {origin}={row[origin]}" if origin else ""
        content = f", content {row['data/source']}" if pd.notna(row.get("data/source")) else ""
        cache = f", token cache {row['data/fingerprint']}" if pd.notna(row.get("data/fingerprint")) else ""
        data.append(f"{row['data.source']}{named}, tokenizer {row['data.tokenizer']}{content}{cache}")
    epochs = frame["data/epochs"].max() if "data/epochs" in frame else float("nan")
    repeated = f" Repeated data: up to {epochs:.2f} passes over the training split." if epochs > 1 else ""
    sizes = sorted(frame["parameters"].dropna().astype(int).unique()) if "parameters" in frame else []
    parameters = f"; {sizes[0]:,} to {sizes[-1]:,} parameters" if len(sizes) > 1 else (
        f"; {sizes[0]:,} parameters" if sizes else "")  # fmt: skip
    steps = sorted(frame["trainer.max_steps"].unique().tolist())
    per_step = (frame["data.batch_size"] * frame["data.seq_len"] * frame["trainer.accumulate_grad_batches"]).unique()
    return [
        f"Command: `{command}`." if command else "Command: not recorded (a sweep from before gemmalab recorded it).",
        "Data: " + "; ".join(data) + "." + repeated,
        "Model: "
        + "; ".join(
            values(
                "model.d_model", "model.n_layers", "model.n_heads", "attn.kv_heads", "model.d_ff", "model.vocab_size"
            )
        )
        + parameters
        + ".",  # fmt: skip
        f"Training: {', '.join(map(str, steps))} steps of {', '.join(f'{t:,}' for t in sorted(per_step))} tokens; "
        f"seeds {sorted(frame['seed'].unique().tolist())}.",
    ]


def check_baseline(pairs: list[str], by: list[str], group: str) -> dict[str, str] | None:
    """--baseline key=value ... as a dict; every key must be a switch the group varies."""
    if bad := [p for p in pairs if "=" not in p]:
        raise SystemExit(f"error: --baseline {bad[0]} is not allowed (allowed: key=value, e.g. norm=pre)")
    baseline = dict(p.split("=", 1) for p in pairs)
    for key in baseline:
        if key not in by:
            raise SystemExit(f"error: --baseline {key}={baseline[key]}: {key} does not vary in group {group} "
                             f"(allowed keys: {', '.join(by) or 'none: nothing varies'})")  # fmt: skip
    return baseline or None


def recount_spikes(frame: pd.DataFrame, run_root: Path, rule: str) -> pd.DataFrame:
    """Stability figures recomputed from metrics.jsonl with another spike rule."""
    frame = frame.copy()
    for i, row in frame.iterrows():
        cfg = StabilityConfig(spike_rule=rule, diverge_factor=float(row.get("stability.diverge_factor", 2.0)))
        summary = stability_summary(RunDir(run_root, row["run_id"]).metrics(), cfg,
                                    int(row.get("optim.warmup_steps", 0)), int(row["model.vocab_size"]))  # fmt: skip
        for key, value in summary.items():
            frame.loc[i, key] = value
    return frame


def rule_of_runs(frame: pd.DataFrame) -> SpikeRule:
    """The spike rule the runs were counted with (their stability.* config; the first run's if they differ,
    which the caption then shows)."""
    row = frame.iloc[0]

    def setting(key: str) -> object:
        value = row.get(key)
        return None if value is None or pd.isna(value) else value

    window = setting("stability.spike_window")
    return spike_rule(setting("stability.spike_rule") or "absolute", window and int(window),
                      setting("stability.spike_threshold"))  # fmt: skip


def write_table(out: Path, name: str, table: pd.DataFrame, caption: str, label: str, notes: list[str] = ()) -> str:
    """The table as Markdown, LaTeX and CSV; notes (engagement lines, warnings) go under it."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = "\n\n".join([to_markdown(table), *notes])
    (out / f"{name}.md").write_text(markdown + "\n")
    (out / f"{name}.tex").write_text(to_latex(table, caption, label, notes) + "\n")
    table.to_csv(out / f"{name}.csv", index=False)
    return markdown


def log_to_wandb(tables: dict[str, pd.DataFrame], numbers: dict[str, pd.DataFrame], figures: list[Path],
                 settings: dict[str, str | None], group: str, members: list[str], out: Path) -> None:  # fmt: skip
    """One report run in the sweep's W&B group (job_type=report), listing the runs it read in its config
    (a run reused from an earlier sweep keeps its first W&B group: this list is where the later sweep names
    it). The display tables as text, the same figures as numeric tables (mean, CI half-width and n in
    columns of their own; one row per run), the figures as images."""
    import wandb

    run = wandb.init(project=settings["project"], entity=settings["entity"], mode=settings["mode"], group=group,
                     job_type="report", name=f"report {group}", dir=str(out), reinit="finish_previous",
                     config={"group": group, "members": members})  # fmt: skip
    run.log({
        **{f"tables/{name}": wandb.Table(dataframe=t.astype(str)) for name, t in tables.items()},
        **{f"numbers/{name}": wandb.Table(dataframe=t) for name, t in numbers.items()},
        **{f"figures/{p.stem}": wandb.Image(str(p)) for p in figures if p.suffix == ".png"},
    })  # fmt: skip
    run.finish()


def sync_command(run_root: Path, group: str) -> str:
    """`wandb sync` for the group's offline W&B runs, nothing of other groups: the members that ran once and the
    group's report runs in one command; a resumed member (one directory per attempt, one W&B run) in a command
    of its own, `--id <run>`, which W&B syncs in order of start time into that one run. Raises SystemExit when
    the group has no W&B run: a bare `wandb sync` would sync every unsynced run in ./wandb."""
    attempts = {i: sorted((run_root / i / "wandb").glob("offline-run-*")) for i in group_runs(run_root, group)}
    once = [d for found in attempts.values() if len(found) == 1 for d in found]
    once += sorted((reports_dir(run_root) / group / "wandb").glob("offline-run-*"))
    commands = [["wandb", "sync", *map(str, once)]] if once else []
    commands += [["wandb", "sync", "--id", i, *map(str, found)] for i, found in attempts.items() if len(found) > 1]
    if not commands:
        raise SystemExit(f"error: group {group} has no W&B offline runs in {run_root} (nothing to sync: its runs were "
                         "logged with logger=csv or none, or never started)")  # fmt: skip
    return " && ".join(map(shlex.join, commands))


def numeric_tables(frame: pd.DataFrame, by: list[str]) -> dict[str, pd.DataFrame]:
    """The report's figures as numbers: per setting of the switches that vary, the mean, 95% CI half-width
    and n of each metric (finished seeds), and every run's own values."""
    metrics = [m for m in (QUALITY, *STABILITY) if m in frame]
    summary = aggregate(frame, by, metrics).frame
    summary = summary.drop(columns=[c for c in summary if c.endswith("_values")])
    columns = ["run_id", "name", "seed", "status", *by, *metrics]
    return {"summary": summary, "runs": frame[[c for c in dict.fromkeys(columns) if c in frame]]}


def draw(
    frame: pd.DataFrame, run_root: Path, by: list[str], rule: SpikeRule, drawn: dict | None, folder: Path
) -> list[Path]:
    """The report's figures (PNG and PDF): loss curves, gradient norms, max logit and engagement per layer, and
    where the study has them LR vs loss, the effect across scale, recall by distance."""
    figures = plots.loss_curves(frame, run_root, by, rule, folder)
    figures += plots.grad_norm_distribution(frame, run_root, by, int(frame["optim.warmup_steps"].max()),
                                            folder)  # fmt: skip
    figures += plots.max_logit_over_training(frame, run_root, by, folder)
    figures += plots.engagement_over_training(frame, run_root, by, folder)
    if "optim.lr" in by:
        figures += plots.lr_vs_loss(frame, by, folder)
    if drawn is not None:
        figures += plots.effect_vs_parameters(drawn, folder)
    if any(c.startswith("val/accuracy_by_distance/") for c in frame.columns):
        figures += plots.accuracy_by_distance(frame, by, folder)
    return figures


@dataclass
class Report:
    """A sweep's report as a value: what the writers (Markdown, LaTeX, CSV, W&B) turn into files and a run."""

    title: str
    trained: list[str]  # what was trained: command, data, model, steps, seeds
    intro: str
    tables: dict[str, pd.DataFrame]  # the main table first
    notes: dict[str, list[str]]  # lines under a table
    numbers: dict[str, pd.DataFrame]  # the figures as numbers (W&B)
    label: str  # the study's name (or "sweep"), in captions and LaTeX labels
    group: str
    runs: int
    by: list[str]  # the switches that vary: the figures' hue
    benchmarks: list[str]  # the benchmark tables of the run store (benchmarks/*.py), appended
    ladder_fit: dict | None = None  # a ladder's fit, for the effect-across-scale figure
    figures: list[Path] = field(default_factory=list)  # drawn after it is built (draw)

    @property
    def main(self) -> str:
        return next(iter(self.tables))


def build(frame: pd.DataFrame, missing: list[str], run_root: Path, group: str, study: str | None,
          baseline_pairs: list[str], rule: SpikeRule, command: str | None) -> Report:  # fmt: skip
    """The report of a group's runs: its tables (the study's own, the ladder's or the tuned comparison's first),
    the notes under them (power, engagement, integrity), and its opening lines. Raises SystemExit on a
    --baseline that names no row, or a ladder that cannot be fitted."""
    by = varying_switches(frame)
    baseline = check_baseline(baseline_pairs, by, group)
    try:
        tables = {"runs": studies.generic(frame, baseline)}
    except ValueError as err:  # the baseline names no row, or several
        raise SystemExit(f"error: --baseline {' '.join(baseline_pairs)}: {err}") from None
    on_ladder = "scale.rung" in frame and frame["scale.ladder"].notna().all() and frame["scale.rung"].nunique() > 1
    drawn = None
    if on_ladder:  # the study across sizes: its own table would average over them
        try:
            tables["ladder"], tables["ladder_fit"], drawn = scaling.ladder(frame)
        except ValueError as err:
            raise SystemExit(f"error: group {group}: {err}") from None
    elif study in studies.STUDY_TABLES:
        tables[study] = studies.STUDY_TABLES[study](frame)
    if "tune.stage" in frame and frame["tune.stage"].eq("compare").all():
        tables["tuned"] = tuning.tuned(frame, run_root)
    if "optim.lr" in by and not {"lr_sensitivity", "tuned"} & set(tables):
        tables["lr_sensitivity"] = studies.lr_sensitivity(frame)
    evaluated = inference_table(frame, run_root, [b for b in by if b != "attn.window"])
    if evaluated is not None:  # analysis/evaluate.py scored these runs at other settings
        tables["inference_settings"] = evaluated
    main_name = next(n for n in ("tuned", "ladder", study, "inference_settings", "runs") if n in tables)
    engaged, warnings = engagement_lines(frame, by)
    if engaged:
        tables["engagement"] = engagement_table(frame, by)
    # a ladder's arms differ by size too: its power is that of one size, the largest (where its claims are read)
    powered = frame[frame["scale.rung"] == frame["scale.rung"].max()] if on_ladder else frame
    metrics = [QUALITY, "stability/loss_spikes", "stability/grad_norm_var"]
    power = power_note(powered, by, metrics, QUALITY) if by else ""
    if power and on_ladder:
        power = f"At the ladder's largest rung ({powered['scale.rung'].iloc[0]}): {power}"
    notes = {main_name: [power, "Engaged: " + "; ".join(engaged) + "." if engaged else "", *warnings,
                         *integrity_notes(frame, missing, run_root)]}  # fmt: skip
    if "inference_settings" in tables:
        notes.setdefault("inference_settings", []).insert(0, units_note(frame))
    rules = sorted(frame["stability/spike_rule"].dropna().unique()) if "stability/spike_rule" in frame else []
    intro = (f"{len(frame)} runs; switches that vary: {', '.join(by) or 'none'}; seeds: "
             f"{sorted(frame['seed'].unique().tolist())}. Cells: mean ± 95% CI half-width over finished seeds "
             "(Student t), n; diverged and failed runs are counted, never averaged in. "
             "Δ: difference to the baseline row ± its 95% CI, by a paired t-test over seeds where the runs pair "
             "up (model.init=paired: same seed, same batches), else Welch's; with more than one comparison in a "
             "table, p-values are Holm-adjusted (* p<0.05, ** p<0.01, *** p<0.001); in LaTeX, a bold mean is "
             "better than every other row at adjusted p<0.05. "
             f"Quality: final {QUALITY}. Loss spikes: {'; '.join(rules) or rule.describe()} (distinct events; "
             "'not evaluable': the run is shorter than the rule's window).")  # fmt: skip
    benchmarks = sorted((run_root / "_benchmarks").glob("*.md"))  # written by benchmarks/*.py
    return Report(
        f"Report: {study or 'sweep'} ({group})", what_was_trained(frame, command), intro,
        dict(sorted(tables.items(), key=lambda kv: kv[0] != main_name)),
        {name: [n for n in lines if n] for name, lines in notes.items()}, numeric_tables(frame, by),
        label=study or "sweep", group=group, runs=len(frame), by=by,
        benchmarks=[p.read_text().replace("## ", "### ", 1) for p in benchmarks], ladder_fit=drawn,
    )  # fmt: skip


def write(report: Report, out: Path) -> None:
    """The report's files: each table as Markdown, LaTeX and CSV (out/tables), report.md, report.tex (and its
    PDF where a LaTeX engine is installed)."""
    sections = [f"# {report.title}", "", f"## {TRAINED}", "", *[f"- {line}" for line in report.trained], "",
                report.intro, ""]  # fmt: skip
    for name, table in report.tables.items():
        caption = (f"{report.label}: {name}. Cells: mean ± 95% CI over finished seeds (Student t). "
                   f"Runs: sweep group {report.group} ({report.runs} runs).")  # fmt: skip
        markdown = write_table(out / "tables", name, table, caption, f"tab:{report.label}-{name}",
                               report.notes.get(name, []))  # fmt: skip
        sections += [f"## {name}", "", markdown, ""]
    sections += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in report.figures if p.suffix == ".png"]
    if report.benchmarks:
        sections += ["", "## Benchmarks", "", *report.benchmarks]
    (out / "report.md").write_text("\n".join(sections) + "\n")
    tex = out / "report.tex"
    tex.write_text(report_document(report.title, " ".join(report.trained).replace("`", "") + "\n\n" + report.intro,
                                   [(n, n) for n in report.tables],
                                   [p for p in report.figures if p.suffix == ".pdf"]))  # fmt: skip
    print(f"[gemmalab] {build_pdf(tex)}")


def written(frame: pd.DataFrame, missing: list[str], run_root: Path, group: str, study: str | None, out: Path,
            rule: SpikeRule | None = None, baseline_pairs: list[str] = (), figures: bool = True) -> Report:  # fmt: skip
    """The group's report built, its figures drawn, its files written to `out`; returned for its caller (the
    W&B writer, the paper). `rule`: the spike rule the runs were counted with, unless given."""
    if frame.empty:
        raise SystemExit(f"error: group {group} has no readable runs in {run_root}"
                         + (f" ({'; '.join(missing)})" if missing else ""))  # fmt: skip
    rule = rule or rule_of_runs(frame)
    report = build(frame, missing, run_root, group, study, list(baseline_pairs), rule,
                   SweepDir(run_root, group).info().get("command"))  # fmt: skip
    if figures:
        report.figures = draw(frame, run_root, report.by, rule, report.ladder_fit, out / "figures")
    write(report, out)
    return report


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_group_arguments(parser, required=False)
    parser.add_argument("--study", help="a study in ablations/ (default: the one the group ran, if any)")
    parser.add_argument("--source", choices=("runstore", "wandb-offline", "wandb"), default="runstore")
    add_wandb_arguments(parser, "report")
    parser.add_argument("--out", type=Path, help="default: <run-root>/_reports/<group>")
    parser.add_argument("--baseline", nargs="*", default=[], help="key=value: the row others are compared with")
    parser.add_argument("--spike-rule", help="recount spikes with this rule (absolute, olmo_core, olmo2)")
    parser.add_argument("--no-figures", action="store_true", help="tables only (no seaborn figures)")
    parser.add_argument(
        "--sync-command",
        action="store_true",
        help="print the `wandb sync` command for exactly this group's W&B runs, then exit",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="exit 0 even when some runs of the group could not be read (they are listed)",
    )
    parser.add_argument("--real-scale", action="store_true", help="print the analytic real-scale table and exit")
    args = parser.parse_args(argv)

    if args.real_scale:
        table = studies.real_scale()
        print(to_markdown(table) + "\n\n" + to_markdown(studies.real_scale_vs_brief(table)))
        return None
    if not args.group and not args.study:
        parser.error("give --group (printed by sweep.py) or --study NAME")
    resolve_latest(parser, args)
    group = args.group or latest_group(args.run_root, args.study)
    study = args.study or study_of(args.run_root, group)
    if args.sync_command:
        print(sync_command(args.run_root, group))
        return None
    try:
        frame, missing = load(args, args.run_root, group)
    except FileNotFoundError as err:  # an unknown group: the message lists the known ones
        raise SystemExit(f"error: {err}") from None
    if args.spike_rule and not frame.empty:
        frame = recount_spikes(frame, args.run_root, args.spike_rule)
    rule = spike_rule(args.spike_rule) if args.spike_rule else None
    out = args.out or reports_dir(args.run_root) / group
    report = written(frame, missing, args.run_root, group, study, out, rule, args.baseline, not args.no_figures)
    if not args.no_wandb:
        members = frame["run_id"].tolist()
        log_to_wandb(report.tables, report.numbers, report.figures, wandb_settings(args, args.run_root, members),
                     group, members, out)  # fmt: skip
    print(to_markdown(report.tables[report.main]))
    print(f"\n[gemmalab] report: {out / 'report.md'} (tables: {out / 'tables'}, figures: {out / 'figures'})")
    if missing:
        print(f"[gemmalab] {len(missing)} run(s) of group {group} are not in the report:\n  " + "\n  ".join(missing),
              file=sys.stderr)  # fmt: skip
        if not args.allow_missing:
            raise SystemExit(f"error: {len(missing)} run(s) missing from the report (--allow-missing to accept)")
    return out


if __name__ == "__main__":
    main()
