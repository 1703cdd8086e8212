"""Tables and the whole report as LaTeX that compiles as it is and fits the page.

A table needs `booktabs` and `graphicx`. Every special character of LaTeX is escaped. A column of
"mean ± CI (n=k)" cells becomes two columns joined at the ±, so the signs line up; n moves to the
header when the whole column shares it. Numbers are right-aligned. A table wider than the line is
scaled down to `\\linewidth` (graphicx's resizebox, only when too wide), so nothing runs off the
page. A mean set in bold (`table.attrs["best"]`) is one that the table's test found significantly
better than every other row.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd

_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "_": r"\_",
    "%": r"\%", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
    ">": r"\textgreater{}", "|": r"\textbar{}",
    "±": r"\ensuremath{\pm}", "Δ": r"\ensuremath{\Delta}", "–": "--", "—": "---", "≤": r"\ensuremath{\leq}",
    "≥": r"\ensuremath{\geq}", "×": r"\ensuremath{\times}", "²": r"\textsuperscript{2}", "·": r"\ensuremath{\cdot}",
    "≈": r"\ensuremath{\approx}", "→": r"\ensuremath{\rightarrow}",
}  # fmt: skip
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?"
_CI_CELL = re.compile(rf"^(?P<mean>{_NUMBER})(?: ± (?P<ci>{_NUMBER}))? \(n=(?P<n>\d+)\)$")
_DASH = ("–", "", "nan")
SHORT_HEADERS = {  # metric names are long; a paper's column header need not be
    "stability/loss_spikes": "loss spikes",
    "stability/grad_norm_var": "grad-norm var.",
    "stability/grad_norm_cv": "grad-norm CV",
    "stability/grad_norm_spikes": "grad-norm spikes",
    "stability/blowup_steps": "blow-up steps",
    "stability/loss_peak": "peak train loss",
    "attn/max_logit": "max attn logit",
    "val/loss": "val loss",
    "val/accuracy": "accuracy",
}
PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[utf8]{inputenc}
\usepackage[T1]{fontenc}
\usepackage[margin=1in]{geometry}
\usepackage{booktabs,graphicx}
"""


def escape(text: str) -> str:
    return "".join(_SPECIAL.get(c, c) for c in str(text))


def _column_kind(cells: list[str]) -> str:
    real = [c for c in cells if c not in _DASH]
    if real and all(_CI_CELL.match(c) for c in real):
        return "ci"
    if real and all(re.fullmatch(_NUMBER, c) for c in real):
        return "number"
    return "text"


def to_latex(table: pd.DataFrame, caption: str, label: str, notes: list[str] = ()) -> str:
    """A booktabs table environment with \\caption and \\label; notes are set in small type under it."""
    from .tables import cell_text

    best = table.attrs.get("best", set())
    specs, heads, columns = [], [], []
    for j, name in enumerate(table.columns):
        cells = [cell_text(v) for v in table.iloc[:, j]]
        kind = _column_kind(cells)
        header = escape(SHORT_HEADERS.get(name, name))
        if kind == "ci":
            ns = {m.group("n") for c in cells if (m := _CI_CELL.match(c))}
            if len(ns) == 1:
                header += f" (n={ns.pop()})"
            specs.append(r"r@{\,\ensuremath{\pm}\,}l")
            heads.append(rf"\multicolumn{{2}}{{c}}{{{header}}}")
            columns.append([_ci_cell(c, len(ns) > 1, (i, name) in best) for i, c in enumerate(cells)])
        else:
            specs.append("r" if kind == "number" else "l")
            heads.append(header)
            columns.append([escape(c) for c in cells])
    rows = [" & ".join(row) + r" \\" for row in zip(*columns, strict=True)] if columns else []
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{escape(caption)}}}", rf"\label{{{label}}}",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        r"\begin{tabular}{" + "".join(specs) + "}", r"\toprule", " & ".join(heads) + r" \\", r"\midrule", *rows,
        r"\bottomrule", r"\end{tabular}}",
        *[rf"\par\smallskip{{\footnotesize\raggedright {escape(n)}\par}}" for n in notes],
        r"\end{table}",
    ])  # fmt: skip


def _ci_cell(cell: str, show_n: bool, bold: bool) -> str:
    m = _CI_CELL.match(cell)
    if m is None:
        return r"\multicolumn{2}{c}{--}"
    mark = (lambda s: rf"\textbf{{{s}}}") if bold else (lambda s: s)
    n = rf"\,{{\scriptsize(n={m.group('n')})}}" if show_n else ""
    if m.group("ci") is None:  # one seed: no interval, and no ± either
        return rf"\multicolumn{{2}}{{c}}{{{mark(m.group('mean'))}{n}}}"
    return f"{mark(m.group('mean'))} & {mark(m.group('ci'))}{n}"


def report_document(title: str, intro: str, tables: list[tuple[str, str]], figures: list[Path]) -> str:
    """The whole report: each table \\input from tables/<name>.tex (heading, file), then the figures (PDF)."""
    body = [PREAMBLE, r"\begin{document}", rf"\section*{{{escape(title)}}}", escape(intro), ""]
    for heading, name in tables:
        body += [rf"\subsection*{{{escape(heading)}}}", rf"\input{{tables/{name}.tex}}", r"\clearpage"]
    for figure in figures:
        body += [
            r"\begin{figure}[htbp]", r"\centering", rf"\includegraphics[width=\linewidth]{{figures/{figure.name}}}",
            rf"\caption{{{escape(figure.stem.replace('_', ' '))}}}", r"\end{figure}",
        ]  # fmt: skip
    return "\n".join([*body, r"\end{document}", ""])


def build_pdf(tex: Path) -> str:
    """report.pdf beside report.tex when pdflatex or tectonic is on PATH; one line saying what happened."""
    engine = shutil.which("pdflatex") or shutil.which("tectonic")
    if engine is None:
        return f"no pdflatex or tectonic on PATH: {tex.name} not built (install TeX Live, then: pdflatex {tex.name})"
    args = (
        [engine, "-interaction=nonstopmode", "-halt-on-error", tex.name] if "pdflatex" in engine else [engine, tex.name]
    )
    done = subprocess.run(args, cwd=tex.parent, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return f"{Path(engine).name} failed on {tex} (see {tex.with_suffix('.log')})"
    return f"built {tex.with_suffix('.pdf')}"
