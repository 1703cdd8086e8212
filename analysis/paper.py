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
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gemmalab.analysis import paper_text, report
from gemmalab.analysis.claims import CLAIMS, NOT_EXTENDED, Claim, Evidence, extension, scale_of, seeds_for, still_open
from gemmalab.analysis.claims import findings as findings_of
from gemmalab.analysis.evaluate import main as evaluate
from gemmalab.analysis.loaders import load_run_store
from gemmalab.analysis.paper_text import ROOT
from gemmalab.analysis.robustness import fragile
from gemmalab.analysis.sequential import LOOKS, looks_up_to, pocock_level, rule
from gemmalab.analysis.tables import to_markdown
from gemmalab.analysis.verdict import INCONCLUSIVE, NO_EFFECT, RULE
from gemmalab.errors import ConfigError
from gemmalab.runs.files import write_atomic
from gemmalab.runs.preflight import Plan, validate_all_jobs
from gemmalab.runs.store import RunDir, reports_dir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.schema import WANDB_MODES, LoggerConfig
from gemmalab.tune import TuneConfig


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
    # the dual-norm question at each arm's best LR: pre against dual at both initial post-norm gains, 5 seeds
    Study("norm_tuned_gain", "norm_init", ("+tune=lr", "tune.points=7", "seed=0,1,2,3,4"), smoke=("tune.points=3",)),
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


def check_publishable(repo: Path = ROOT) -> None:
    """--publish writes findings that name a commit: refused (one line) unless the code is that commit."""
    changed = paper_text.git("status", "--porcelain", repo=repo)
    if changed is None:
        raise SystemExit(f"error: --publish needs a git checkout ({repo} is not one): findings name the commit "
                         "that reproduces them")  # fmt: skip
    if changed:
        files = [line.split(maxsplit=1)[-1] for line in changed.splitlines()]  # "XY path": the status, the path
        raise SystemExit(f"error: --publish needs a clean working tree, and {len(files)} file(s) differ from the "
                         f"commit ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''}) (allowed: commit or "
                         "stash them first, so the published findings name a commit that reproduces them)")  # fmt: skip


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
    table, findings_md, strips = paper_text.write_paper(out, findings, frames, started, args.smoke,
                                                        [x.name for x in STUDIES if x.name not in frames])  # fmt: skip
    if args.wandb_mode != "disabled":
        settings = {"project": args.project, "entity": args.entity, "mode": args.wandb_mode}
        group = "paper-smoke" if args.smoke else "paper"
        paper_text.log_paper(findings, table, figures, out / "wandb", group, settings)
    if args.publish:
        paper_text.publish(args.publish, text, findings_md, findings, strips[:1])
    print(to_markdown(table[["claim", "measured (95% CI)", "verdict"]]))
    print(f"\n[paper] {out / 'paper.md'} (findings: {out / 'findings.json'}; tex: {out / 'paper.tex'})")
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
    if fragile(row):
        return f"decided at {row['n']} seeds, fragile" + (": the time budget ended the looks" if over_budget else "")
    if not (row["verdict"].startswith(NO_EFFECT) or row["verdict"] == INCONCLUSIVE):
        return f"decided at {row['n']} seeds"
    if claim.contrast is not None and claim.contrast.view in NOT_EXTENDED:
        return f"open at {row['n']} seeds, not extended: {NOT_EXTENDED[claim.contrast.view]}"
    needed = seeds_for(row, claim)
    would = f"; 80% power would need ~{needed} seeds" if needed else ""
    if over_budget:
        return f"open at {row['n']} seeds: the time budget (--budget-min) ended the looks{would}"
    return f"open at the maximum ({row['n']} seeds, looks at {', '.join(map(str, looks))}){would}"


if __name__ == "__main__":
    main()
