"""The paper as text, from its findings: the stamp, the verdict table, each study's section, findings.md,
paper.md and paper.tex, the W&B report run, and the published FINDINGS.md and README block. analysis/paper.py
runs the studies and takes the looks; this module only writes what they found."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import torch

from gemmalab.analysis import plots, report
from gemmalab.analysis.latex import PREAMBLE, build_pdf, escape, to_latex
from gemmalab.analysis.robustness import MACHINE_NOISE, kind, shown
from gemmalab.analysis.tables import to_markdown
from gemmalab.analysis.verdict import estimate
from gemmalab.runs.files import write_atomic

ROOT = Path(__file__).resolve().parent.parent  # the checkout: sweep.py, conf/, README.md
PER_SEED = "findings_per_seed"  # the per-seed figure, beside findings.md and FINDINGS.md
README_BEGIN, README_END = "<!-- findings: begin (python analysis/paper.py --publish .) -->", "<!-- findings: end -->"


def git(*args: str, repo: Path = ROOT) -> str | None:
    """git's output in the repository, None where it fails (not a checkout, no git)."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def stamp(frames: dict[str, pd.DataFrame], started: float, smoke: bool, left_out: list[str]) -> list[str]:
    """What the paper was run on: commit, machine, Python, torch, data, wall time, runs and their scale; the
    studies `left_out` (--only)."""
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    runs = pd.concat([f for f in frames.values() if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    fingerprints = sorted(runs["data/fingerprint"].dropna().astype(str).unique()) if "data/fingerprint" in runs else []
    training = runs.drop_duplicates("run_id")["wall_seconds"].sum() if "wall_seconds" in runs else float("nan")
    lines = [
        f"- commit: {git('rev-parse', '--short=12', 'HEAD') or 'unknown'}{dirty}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"{'CUDA: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}. The machine is "
        "part of the noise: a run is bitwise reproducible on this machine, not on another (one seed of a ladder "
        f"rung moved {MACHINE_NOISE} nats between two machines of the same kind, about the seed SD): compare "
        "per-seed values across machines as new seeds, not as the same ones; a verdict that one seed moving by as "
        "much would change is marked fragile (analysis/robustness.py) and takes the next look",
        f"- Python {platform.python_version()}, torch {torch.__version__}",
        f"- data fingerprints: {', '.join(fingerprints) or '–'}",
        f"- this invocation: {(time.time() - started) / 60:.1f} min wall time; training time of the runs read "
        f"(their own wall_seconds, summed): {training / 60:.1f} min over {len(runs.drop_duplicates('run_id'))} runs",
    ]  # fmt: skip
    if left_out:
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
            "verdict": shown(f), SEEDS_COLUMN: looks_of(f),
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
        lines.append(f"| {f['claim']} ({f['source']}) | {measured} | {shown(f)} |")
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


def write_paper(out: Path, findings: dict, frames: dict[str, pd.DataFrame], started: float, smoke: bool,
                left_out: list[str]) -> tuple[pd.DataFrame, str, list[Path]]:  # fmt: skip
    """findings.md, paper.md, paper.tex (and its PDF) and the per-seed figure in `out`; returns the verdict table,
    findings.md's text and the figure's files."""
    table = verdict_table(findings["claims"])
    head = stamp(frames, started, smoke, left_out)
    title = "gemmalab: Gemma 2's ideas, measured" + (" (smoke run: not findings)" if smoke else "")
    md_sections, tex_sections = study_sections(out, findings)
    strips = plots.per_seed_values(findings["claims"], out)  # findings_per_seed.png / .pdf
    per_seed = ["", "Every value behind each verdict, per seed (findings.json's `per_seed`):", "",
                f"![per-seed values]({PER_SEED}.png)", ""] if strips else []  # fmt: skip
    findings_md = "\n".join([f"# {title}", "", *head, "", "## Verdicts", "", to_markdown(table), "", findings["rule"],
                             *per_seed, ""])  # fmt: skip
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
    return table, findings_md, strips


def moved_since(before: dict, after: dict) -> list[str]:
    """FINDINGS.md's lines on what changed since the findings published before: each claim whose verdict changed
    kind (with its value and seeds then and now), and the claims added or gone."""
    old = {f["id"]: f for f in before["claims"]}
    new = {f["id"]: f for f in after["claims"]}

    def said(f: dict) -> str:
        value = "–" if f["value"] is None else estimate(f["value"], f["ci"] or 0)
        return f"{kind(f['verdict'])} ({value}, n={f['n'] or '–'})"

    lines = [f"- `{i}`: {said(old[i])} -> {said(f)}" for i, f in new.items()
             if i in old and kind(old[i]["verdict"]) != kind(f["verdict"])]  # fmt: skip
    lines += [f"- `{i}`: new, {said(f)}" for i, f in new.items() if i not in old]
    lines += [f"- `{i}`: no longer a claim (was {said(f)})" for i, f in old.items() if i not in new]
    unchanged = sum(i in old and kind(old[i]["verdict"]) == kind(f["verdict"]) for i, f in new.items())
    return ["## Since the findings published before", "", f"{unchanged} verdicts kept their kind; moved:", "",
            *(lines or ["- none"]), ""]  # fmt: skip


def publish(where: Path, text: str, findings_md: str, findings: dict, figures: list[Path] = ()) -> None:
    """FINDINGS.md (with what moved since the findings.json it replaces), findings.json and the per-seed figure
    beside the README, and the README's findings block rewritten from them."""
    if (previous := where / "findings.json").exists():
        findings_md += "\n" + "\n".join(moved_since(json.loads(previous.read_text()), findings))
    write_atomic(where / "findings.json", text)
    write_atomic(where / "FINDINGS.md", findings_md)
    for figure in figures:
        shutil.copyfile(figure, where / figure.name)
    readme = where / "README.md"
    if readme.exists() and README_BEGIN in (body := readme.read_text()):
        start, end = body.index(README_BEGIN), body.index(README_END) + len(README_END)
        write_atomic(readme, body[:start] + readme_block(findings) + body[end:])
    print(f"[paper] published: {where / 'FINDINGS.md'}, {where / 'findings.json'}, {readme}")
