"""The findings, regenerated: every study through the normal sweep machinery, then one paper with a verdict on
every claim (analysis/claims.py, by the rule of analysis/verdict.py).

    python analysis/paper.py                                   # every study; finished runs are reused
    python analysis/paper.py hydra/launcher=joblib hydra.launcher.n_jobs=2   # any sweep.py override or launcher
    python analysis/paper.py --smoke                           # the whole pipeline at tiny scale (CI)
    python analysis/paper.py --only softcap,norm               # some studies (the claims of the others: not measured)
    python analysis/paper.py --publish .                       # also FINDINGS.md, findings.json, README's block

Writes <run-root>/_reports/paper/ (--smoke: paper-smoke/): paper.md, paper.tex (paper.pdf with a LaTeX
engine), findings.json (per claim: the measured value, CI, n, detectable effect, engagement, verdict; byte for
byte the same when rebuilt from the same runs), findings.md, and each study's report under studies/<name>/.
An interrupted paper resumes: run the same command again.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from gemmalab.analysis import plots, report
from gemmalab.analysis.claims import CLAIMS, NOT_EXTENDED, Claim, Evidence, extension, scale_of, seeds_for, still_open
from gemmalab.analysis.claims import findings as findings_of
from gemmalab.analysis.evaluate import main as evaluate
from gemmalab.analysis.latex import PREAMBLE, build_pdf, escape, to_latex
from gemmalab.analysis.loaders import load_run_store
from gemmalab.analysis.sequential import LOOKS, looks_up_to, pocock_level, rule
from gemmalab.analysis.tables import to_markdown
from gemmalab.analysis.verdict import INCONCLUSIVE, NO_EFFECT, RULE, estimate

from gemmalab.errors import ConfigError
from gemmalab.runs.files import write_atomic
from gemmalab.runs.preflight import Plan, validate_all_jobs
from gemmalab.runs.store import RunDir, reports_dir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.schema import WANDB_MODES, LoggerConfig
from gemmalab.tune import TuneConfig

ROOT = Path(__file__).resolve().parent.parent  # the checkout: sweep.py, conf/, README.md
PER_SEED = "findings_per_seed"  # the per-seed figure, beside findings.md and FINDINGS.md
README_BEGIN, README_END = "<!-- findings: begin (python analysis/paper.py --publish .) -->", "<!-- findings: end -->"


@dataclass(frozen=True)
class Study:
    name: str
    ablation: str
    overrides: tuple[str, ...] = ()  # beyond +ablation=<ablation>
    evaluate: tuple[str, ...] = ()  # analysis/evaluate.py settings once trained (Table 10)
    smoke: tuple[str, ...] = ()  # what --smoke changes beyond SMOKE
    in_order: bool = False  # its jobs need the ones before (a student its teacher): one at a time, whatever launcher


STUDIES = (
    Study("softcap", "softcap"),
    Study("norm", "norm"),
    Study("norm_init", "norm_init", smoke=("norm=pre,dual",)),
    Study("norm_horizon", "norm_horizon", smoke=("trainer.max_steps=12",)),
    Study("kv_heads", "kv_heads"),
    Study(
        "attn_pattern", "attn_pattern", smoke=("attn.pattern=alt,local", "attn.local_global_ratio=1", "attn.window=16")
    ),
    Study("lr_sensitivity", "lr_sensitivity", smoke=("optim.lr=1e-3,1e-1",)),
    Study("cascade", "cascade", smoke=("+cascade=teacher,middle_scratch,middle_distilled",), in_order=True),
    Study("deep_wide", "deep_wide"),
    Study("window_at_inference", "window_at_inference", evaluate=("attn.window=64,32,16",)),
    Study("mqar", "mqar", smoke=("attn.pattern=full,local", "attn.window=16")),
    Study("instability", "instability", smoke=("+mitigation=none,softcap",)),
    Study("softcap_stability", "softcap_stability", smoke=("optim.lr=1e-2",)),
    Study("norm_stability", "norm_stability"),
    Study("norm_tuned", "norm", ("+tune=lr", "tune.points=7"), smoke=("tune.points=3", "norm=pre,dual")),
    Study(
        "softcap_ladder",
        "softcap",
        ("+scale=cpu", "scale.tokens_per_param=1"),
        smoke=("scale.tokens_per_param=null", "scale.rung=0,1,2"),
    ),
    Study(
        "deep_wide_ladder",
        "deep_wide",
        ("+scale=cpu", "scale.tokens_per_param=1"),
        smoke=("scale.tokens_per_param=null", "scale.rung=0,1,2"),
    ),
)
# tiny scale: a few steps of the tiny model (the MQAR and cascade studies keep their own models), 2 seeds,
# grids cut where a study's claims need fewer points
SMOKE = ("trainer.max_steps=6", "trainer.val_every=3", "trainer.ckpt_every=6", "trainer.stats_every=2",
         "data.val_batches=1", "data.batch_size=4", "data.seq_len=64", "stability.spike_window=2", "seed=0,1",
         "logger=none")  # fmt: skip
FIRST_LOOK_SMOKE = 2  # the smoke's seeds: no later look unless --max-seeds asks
SMOKE_FIGURES = ("softcap",)  # the smoke draws one study's figures: the plots and W&B's images exercised, in seconds
OWN_MODEL = ("mqar", "cascade", "lr_sensitivity", "instability", "softcap_stability", "norm_stability",
             "softcap_ladder", "deep_wide_ladder")  # fmt: skip


def sweep_module():
    """sweep.py, imported once: the studies run in this process through its launch()."""
    spec = importlib.util.spec_from_file_location("gemmalab_sweep", ROOT / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arguments(study: Study, smoke: bool, run_root: Path, extra: list[str], group: str | None = None) -> list[str]:
    """The study's sweep.py command line: its ablation and overrides, the paper's group, the user's extras."""
    tiny = [*SMOKE, *([] if study.name in OWN_MODEL else ["model=tiny"]), *study.smoke] if smoke else []
    if study.in_order:  # the default launcher runs the jobs one after another, in the study's order
        extra = [o for o in extra if not o.startswith(("hydra/launcher=", "hydra.launcher."))]
    return ["sweep.py", "-m", f"+ablation={study.ablation}", *study.overrides, *tiny, f"run_root={run_root}",
            f"group={group or group_of(study, smoke)}", *extra]  # fmt: skip


def group_of(study: Study, smoke: bool) -> str:
    return f"paper-{'smoke-' if smoke else ''}{study.name}"


def planned(plan: Plan) -> int:
    """Jobs the study will run: a tuned study adds its selection grid and runs every arm at two LRs."""
    if not plan.tune.get("enabled"):
        return plan.jobs
    tune = TuneConfig(**plan.tune)
    arms = plan.jobs // max(1, len(plan.seeds))
    return arms * tune.points * tune.seeds + 2 * plan.jobs


class Progress:
    """Runs done and to go over the whole paper, with an ETA from the runs this invocation trained."""

    def __init__(self, plans: dict[str, Plan], run_root: Path) -> None:
        self.plans, self.run_root = plans, run_root
        self.trained, self.seconds = 0, 0.0

    def to_go(self, name: str) -> int:
        plan = self.plans[name]
        if not plan.tune.get("enabled"):
            return sum(not RunDir(self.run_root, i).is_done() for i in dict.fromkeys(plan.run_ids))
        members = [m for g in (plan.group, f"select-{plan.group}") for m in SweepDir(self.run_root, g).latest_members()]
        done = sum(bool(m.get("run_id")) and RunDir(self.run_root, m["run_id"]).is_done() for m in members)
        return max(0, planned(plan) - done)  # jobs, not runs: a tuned study's comparison LRs are chosen as it goes

    def line(self, index: int, name: str) -> str:
        left = {n: self.to_go(n) for n in list(self.plans)[index:]}
        eta = "ETA after the first run"
        if self.trained:
            per_run = self.seconds / self.trained
            eta = f"ETA ~{sum(left.values()) * per_run / 60:.0f} min at {per_run:.0f} s per run so far"
        return (f"[paper] study {index + 1}/{len(self.plans)} {name}: {planned(self.plans[name])} jobs, "
                f"{left[name]} runs to train; {sum(left.values())} to go in all; {eta}")  # fmt: skip

    def ran(self, before: int, after: int, seconds: float) -> None:
        if before > after:
            self.trained, self.seconds = self.trained + before - after, self.seconds + seconds


def git(*args: str, repo: Path = ROOT) -> str | None:
    """git's output in the repository, None where it fails (not a checkout, no git)."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def check_publishable(repo: Path = ROOT) -> None:
    """--publish writes findings that name a commit: refused (one line) unless the code is that commit."""
    changed = git("status", "--porcelain", repo=repo)
    if changed is None:
        raise SystemExit(f"error: --publish needs a git checkout ({repo} is not one): findings name the commit "
                         "that reproduces them")  # fmt: skip
    if changed:
        files = [line.split(maxsplit=1)[-1] for line in changed.splitlines()]  # "XY path": the status, the path
        raise SystemExit(f"error: --publish needs a clean working tree, and {len(files)} file(s) differ from the "
                         f"commit ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''}) (allowed: commit or "
                         "stash them first, so the published findings name a commit that reproduces them)")  # fmt: skip


def stamp(frames: dict[str, pd.DataFrame], started: float, smoke: bool) -> list[str]:
    """What the paper was run on: commit, machine, Python, torch, data, wall time, runs and their scale."""
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    runs = pd.concat([f for f in frames.values() if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    fingerprints = sorted(runs["data/fingerprint"].dropna().astype(str).unique()) if "data/fingerprint" in runs else []
    training = runs.drop_duplicates("run_id")["wall_seconds"].sum() if "wall_seconds" in runs else float("nan")
    lines = [
        f"- commit: {git('rev-parse', '--short=12', 'HEAD') or 'unknown'}{dirty}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"{'CUDA: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}. The machine is "
        "part of the noise: a run is bitwise reproducible on this machine, not on another (one seed of a ladder "
        "rung moved 0.086 nats between two machines of the same kind, about the seed SD): compare per-seed "
        "values across machines as new seeds, not as the same ones",
        f"- Python {platform.python_version()}, torch {torch.__version__}",
        f"- data fingerprints: {', '.join(fingerprints) or '–'}",
        f"- this invocation: {(time.time() - started) / 60:.1f} min wall time; training time of the runs read "
        f"(their own wall_seconds, summed): {training / 60:.1f} min over {len(runs.drop_duplicates('run_id'))} runs",
    ]  # fmt: skip
    if left_out := [s.name for s in STUDIES if s.name not in frames]:
        lines.insert(0, f"- **PARTIAL**: --only left out {', '.join(left_out)}; their claims read `not measured (the "
                        "study has no runs)`")  # fmt: skip
    if smoke:
        lines.insert(0, "- **SMOKE RUN**: tiny model, a few steps, 2 seeds. Its verdicts exercise the pipeline; "
                        "they are not findings.")  # fmt: skip
    return lines


P_COLUMN = "p (Holm-adjusted in its family)"
SEEDS_COLUMN = "seeds (looks; why it stopped)"


def verdict_table(findings: list[dict]) -> pd.DataFrame:
    """One row per claim, as a reader reads it."""
    rows = []
    for f in findings:
        if f["value"] is None:
            measured = "–"
        elif f["n"] is None and not f["ci"]:
            measured = f"{f['value']:.4g} (exact)"
        else:
            measured = estimate(f["value"], f["ci"]) + (f" (n={f['n']}, {f['test']})" if f["n"] else "")
        gauge = f["gauge"]
        rows.append({
            "claim": f"{f['claim']} [{f['source']}]", "quantity": f["quantity"],
            "claimed": f["claimed"] + (f" (d = {f['margin']:g})" if f.get("margin") else ""),
            "measured (95% CI)": measured + (f"; 90% CI ±{f['ci90']:.2g}" if f.get("ci90") and f.get("judged_by", "")
                                             .startswith("90%") else ""),  # fmt: skip
            "detectable": "–" if f["detectable"] is None else f"±{f['detectable']:.3g}",
            P_COLUMN: "–" if f.get("p") is None else f"{f['p']:.2g}" + (
                "" if f.get("p_holm") is None else f" ({f['p_holm']:.2g})"),  # fmt: skip
            "engagement": "–" if gauge is None else f"{gauge['value']:.3g} (needs {gauge['threshold']:g})",
            "verdict": f["verdict"], SEEDS_COLUMN: looks_of(f),
            "study (scale)": f"{f['study']} ({f['scale']})",
        })  # fmt: skip
    table = pd.DataFrame(rows)
    # findings published before p-values or looks were recorded have none to show
    absent = [c for c, key in ((P_COLUMN, "p"), (SEEDS_COLUMN, "stopped")) if all(f.get(key) is None for f in findings)]
    return table.drop(columns=absent)


def looks_of(finding: dict) -> str:
    """`3 -> 5 -> 8; open at the maximum ...`: the seeds of each look the claim took, and why it stopped."""
    looks = [str(look["seeds"]) for look in finding.get("looks", []) if look["seeds"]]
    return f"{' -> '.join(dict.fromkeys(looks)) or '–'}; {finding.get('stopped')}"


def readme_block(findings: dict) -> str:
    """The README's findings: one line per claim from findings.json (the test compares the two)."""
    lines = [README_BEGIN, "", "| claim | measured | verdict |", "|---|---|---|"]
    for f in findings["claims"]:
        measured = "–" if f["value"] is None else f"{f['value']:.4g}"
        if f["value"] is not None and f["ci"]:
            measured = estimate(f["value"], f["ci"])
        lines.append(f"| {f['claim']} ({f['source']}) | {measured} | {f['verdict']} |")
    return "\n".join([*lines, "", README_END])


def study_sections(out: Path, findings: dict) -> tuple[list[str], list[str]]:
    """Markdown and LaTeX sections: each study's main table (its report's first) and figures."""
    md, tex = [], []
    for name, info in findings["studies"].items():
        folder = out / "studies" / name
        table = info.get("main_table")
        md += [f"## {name}", "", f"`{info['command']}` ({info['runs']} runs, {info['scale']})", ""]
        tex += [rf"\subsection*{{{escape(name)}}}", escape(f"{info['command']} ({info['runs']} runs, {info['scale']})")]
        if table and (folder / "tables" / f"{table}.md").exists():
            md += [(folder / "tables" / f"{table}.md").read_text(), ""]
            tex += [rf"\input{{studies/{name}/tables/{table}.tex}}"]
        figures = sorted((folder / "figures").glob("*.png"))
        md += [f"![{p.stem}](studies/{name}/figures/{p.name})" for p in figures] + [""]
        tex += [rf"\includegraphics[width=\linewidth]{{studies/{name}/figures/{p.stem}.pdf}}" for p in figures
                if p.with_suffix(".pdf").exists()] + [r"\clearpage"]  # fmt: skip
    return md, tex


def log_paper(
    findings: dict, table: pd.DataFrame, figures: list[Path], out: Path, group: str, settings: dict[str, str | None]
) -> None:
    """One W&B report run in the paper's group: the verdicts as a numeric table, every figure as an image."""
    numbers = pd.DataFrame([{
        "id": f["id"], "topic": f["topic"], "source": f["source"], "claimed": f["claimed"], "study": f["study"],
        "value": f["value"], "ci": f["ci"], "n": f["n"], "detectable": f["detectable"],
        "engagement": (f["gauge"] or {}).get("value"), "engagement_threshold": (f["gauge"] or {}).get("threshold"),
        "verdict": f["verdict"]} for f in findings["claims"]])  # fmt: skip
    numeric = ("value", "ci", "n", "detectable", "engagement", "engagement_threshold")
    numbers = numbers.astype({c: float for c in numeric})
    members = sorted({i for info in findings["studies"].values() for i in info["run_ids"]})
    report.log_to_wandb({"verdicts": table}, {"verdicts": numbers}, figures, settings, group, members, out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-root", default=Path("runs"), type=Path)
    parser.add_argument("--smoke", action="store_true", help="the whole pipeline at tiny scale (not findings)")
    parser.add_argument("--only", help="comma-separated studies (default: all): " + ", ".join(s.name for s in STUDIES))
    parser.add_argument("--publish", type=Path, help="also write FINDINGS.md, findings.json and README's block here")
    parser.add_argument(
        "--max-seeds",
        type=int,
        help="most seeds a claim still open gets over the later looks "
        f"(analysis/sequential.py; default {LOOKS[-1]}, --smoke: no later look)",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=math.inf,
        help="start no later look once the paper has run this many minutes",
    )
    parser.add_argument("--wandb-mode", default=LoggerConfig.mode, choices=WANDB_MODES)
    parser.add_argument("--project", default=LoggerConfig.project, help="the W&B project of the paper's report run")
    parser.add_argument("--entity", help="its W&B entity")
    args, extra = parser.parse_known_args(argv)
    started = time.time()
    names = [s.name for s in STUDIES]
    chosen = names if not args.only else args.only.split(",")
    if unknown := [n for n in chosen if n not in names]:
        raise SystemExit(f"error: --only {unknown[0]} is not a study (allowed: {', '.join(names)})")
    args.max_seeds = args.max_seeds or (FIRST_LOOK_SMOKE if args.smoke else LOOKS[-1])
    first = FIRST_LOOK_SMOKE if args.smoke else LOOKS[0]
    if args.max_seeds < first:
        raise SystemExit(f"error: --max-seeds {args.max_seeds} is below the first look's {first} seeds "
                         f"(allowed: {first} or more)")  # fmt: skip
    if args.publish and args.smoke:
        raise SystemExit("error: --publish with --smoke is not allowed (a smoke run's verdicts are not findings)")
    if args.publish:
        check_publishable()
    if bad := [o for o in extra if o.startswith(("group=", "run_root=", "+ablation="))]:
        raise SystemExit(f"error: {bad[0]} is not allowed (the paper names its groups and studies; allowed: "
                         "--run-root, and any other sweep.py override or launcher)")  # fmt: skip
    studies = [s for s in STUDIES if s.name in chosen]
    handlers, argv_before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}, sys.argv
    try:
        return run_paper(args, extra, studies, started)
    finally:  # sweep.py's handlers stop the sweep they were set for; the caller's come back
        sys.argv = argv_before
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def run_paper(args: argparse.Namespace, extra: list[str], studies: list[Study], started: float) -> Path:
    sweep = sweep_module()
    plans = {}
    for study in studies:  # every study composed and validated before the first trains
        try:
            plans[study.name] = validate_all_jobs(arguments(study, args.smoke, args.run_root, extra)[1:], sweep.CONF)
        except ConfigError as err:
            raise SystemExit(f"error: study {study.name}: {err}") from None
    progress = Progress(plans, args.run_root)
    out = reports_dir(args.run_root) / ("paper-smoke" if args.smoke else "paper")
    frames, info, figures = {}, {}, []
    for index, study in enumerate(studies):
        print(progress.line(index, study.name), flush=True)
        before, t0 = progress.to_go(study.name), time.time()
        command = arguments(study, args.smoke, args.run_root, extra)
        code = sweep.launch(command, plans[study.name])
        t1 = time.time()
        progress.ran(before, progress.to_go(study.name), t1 - t0)
        if code == 2 or code >= 128:
            raise SystemExit(f"[paper] study {study.name} stopped (exit {code}): run the same command again to resume")
        group = group_of(study, args.smoke)
        if study.evaluate:
            evaluate(["--run-root", str(args.run_root), "--group", group, "--no-wandb", *study.evaluate])
        folder = out / "studies" / study.name
        frames[study.name] = frame = load_run_store(args.run_root, group)
        written = report.written(frame, list(frame.attrs["missing"]), args.run_root, group, study.ablation, folder,
                                 figures=not args.smoke or study.name in SMOKE_FIGURES)  # fmt: skip
        print(
            f"[paper] {study.name}: sweep {t1 - t0:.0f} s, evaluation and report {time.time() - t1:.0f} s", flush=True
        )
        figures += [p for p in written.figures if p.suffix == ".png"]
        info[study.name] = {
            "group": group, "command": " ".join(["python", *arguments(study, args.smoke, args.run_root, [])[:-2]]),
            "runs": len(frame),
            "finished": int(frame["status"].astype(str).eq("finished").sum()) if len(frame) else 0,
            "scale": scale_of(frame if len(frame) else None), "main_table": written.main,
            "run_ids": sorted(frame["run_id"]) if len(frame) else [],
        }  # fmt: skip
    looks = looks_up_to(args.max_seeds, FIRST_LOOK_SMOKE if args.smoke else LOOKS[0])
    claims = take_looks(args, extra, sweep, looks, frames, info, started)
    findings = {"format": 1, "smoke": args.smoke, "rule": f"{RULE} {rule(looks)}", "studies": info,
                "claims": claims}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(findings, indent=1, sort_keys=True) + "\n"
    write_atomic(out / "findings.json", text)
    table = verdict_table(findings["claims"])
    head = stamp(frames, started, args.smoke)
    title = "gemmalab: Gemma 2's ideas, measured" + (" (smoke run: not findings)" if args.smoke else "")
    md_sections, tex_sections = study_sections(out, findings)
    strips = plots.per_seed_values(findings["claims"], out)  # findings_per_seed.png / .pdf
    shown = ["", "Every value behind each verdict, per seed (findings.json's `per_seed`):", "",
             f"![per-seed values]({PER_SEED}.png)", ""] if strips else []  # fmt: skip
    findings_md = "\n".join([f"# {title}", "", *head, "", "## Verdicts", "", to_markdown(table), "", findings["rule"],
                             *shown, ""])  # fmt: skip
    write_atomic(out / "findings.md", findings_md)
    write_atomic(out / "paper.md", findings_md + "\n" + "\n".join(md_sections) + "\n")
    tex = out / "paper.tex"
    write_atomic(tex, "\n".join([PREAMBLE, r"\begin{document}", rf"\section*{{{escape(title)}}}",
                                 escape(" ".join(h.lstrip("- ") for h in head)), r"\subsection*{Verdicts}",
                                 to_latex(table, "Every claim, its measurement and its verdict.", "tab:verdicts",
                                          [findings["rule"]]),
                                 *([rf"\includegraphics[width=\linewidth]{{{PER_SEED}.pdf}}"] if strips else []),
                                 r"\clearpage", *tex_sections, r"\end{document}", ""]))  # fmt: skip
    print(f"[paper] {build_pdf(tex)}")
    if args.wandb_mode != "disabled":
        settings = {"project": args.project, "entity": args.entity, "mode": args.wandb_mode}
        log_paper(findings, table, figures, out / "wandb", "paper-smoke" if args.smoke else "paper", settings)
    if args.publish:
        publish(args.publish, text, findings_md, findings, strips[:1])
    print(to_markdown(table[["claim", "measured (95% CI)", "verdict"]]))
    print(f"\n[paper] {out / 'paper.md'} (findings: {out / 'findings.json'}; tex: {tex})")
    return out


def take_looks(args: argparse.Namespace, extra: list[str], sweep, looks: tuple[int, ...],
               frames: dict[str, pd.DataFrame], info: dict, started: float) -> list[dict]:  # fmt: skip
    """The claims' findings after the looks (analysis/sequential.py): every verdict at the looks' constant
    level; a claim still open gets the next look's seeds for its two arms, until decided, at --max-seeds, or
    past --budget-min. Each row records its looks and why it stopped."""
    level = pocock_level(looks)
    history: dict[str, list[dict]] = {c.id: [] for c in CLAIMS}
    for index, seeds in enumerate(looks):
        rows = findings_of(CLAIMS, Evidence(frames, args.run_root), level)
        for row in rows:
            history[row["id"]].append({"seeds": row["n"], "verdict": row["verdict"]})
        later = looks[index + 1] if index + 1 < len(looks) else None
        open_claims = [c for c, r in zip(CLAIMS, rows, strict=True) if later and still_open(c, r, later)]
        over_budget = (time.time() - started) / 60 > args.budget_min
        if not open_claims or over_budget:
            break
        for name, overrides in extension(open_claims).items():
            study = next(s for s in STUDIES if s.name == name)
            group = f"{group_of(study, args.smoke)}-seeds{later}"
            command = [*arguments(study, args.smoke, args.run_root, extra, group), *overrides,
                       f"seed={','.join(map(str, range(seeds, later)))}"]  # fmt: skip
            print(f"[paper] look {index + 2}: {name} to {later} seeds for "
                  f"{', '.join(c.id for c in open_claims if c.study == name)}", flush=True)  # fmt: skip
            code = sweep.launch(command, validate_all_jobs(command[1:], sweep.CONF))
            if code == 2 or code >= 128:
                raise SystemExit(f"[paper] look {index + 2} of {name} stopped (exit {code}): run the same command "
                                 "again to resume")  # fmt: skip
            if study.evaluate:
                evaluate(["--run-root", str(args.run_root), "--group", group, "--no-wandb", *study.evaluate])
            frames[name] = pd.concat([frames[name], load_run_store(args.run_root, group)]).drop_duplicates("run_id")
            info[name]["later_looks"] = [*info[name].get("later_looks", []), {"group": group, "overrides": overrides,
                                         "seeds": later}]  # fmt: skip
            info[name]["run_ids"] = sorted(frames[name]["run_id"])
    for claim, row in zip(CLAIMS, rows, strict=True):
        row["looks"] = history[claim.id]
        row["stopped"] = stopped(claim, row, looks, over_budget)
    return rows


def stopped(claim: Claim, row: dict, looks: tuple[int, ...], over_budget: bool) -> str:
    """Why the claim took no further look: decided, not open to one, or at the maximum (with the seeds its
    margin, else its measured effect, would need for 80% power)."""
    if row["n"] is None or row["verdict"].startswith(("not measured", "not engaged")):
        return "no look decides it: " + row["verdict"]
    if not (row["verdict"].startswith(NO_EFFECT) or row["verdict"] == INCONCLUSIVE):
        return f"decided at {row['n']} seeds"
    if claim.contrast is not None and claim.contrast.view in NOT_EXTENDED:
        return f"open at {row['n']} seeds, not extended: {NOT_EXTENDED[claim.contrast.view]}"
    needed = seeds_for(row, claim)
    would = f"; 80% power would need ~{needed} seeds" if needed else ""
    if over_budget:
        return f"open at {row['n']} seeds: the time budget (--budget-min) ended the looks{would}"
    return f"open at the maximum ({row['n']} seeds, looks at {', '.join(map(str, looks))}){would}"


def publish(where: Path, text: str, findings_md: str, findings: dict, figures: list[Path] = ()) -> None:
    """FINDINGS.md, findings.json and the per-seed figure beside the README, and the README's findings block
    rewritten from them."""
    write_atomic(where / "findings.json", text)
    write_atomic(where / "FINDINGS.md", findings_md)
    for figure in figures:
        shutil.copyfile(figure, where / figure.name)
    readme = where / "README.md"
    if readme.exists() and README_BEGIN in (body := readme.read_text()):
        start, end = body.index(README_BEGIN), body.index(README_END) + len(README_END)
        write_atomic(readme, body[:start] + readme_block(findings) + body[end:])
    print(f"[paper] published: {where / 'FINDINGS.md'}, {where / 'findings.json'}, {readme}")


if __name__ == "__main__":
    main()
