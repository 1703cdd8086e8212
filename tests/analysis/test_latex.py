"""LaTeX output: escaped, aligned, never wider than the line; compiled when pdflatex is installed."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from gemmalab.analysis.latex import PREAMBLE, escape, to_latex
from gemmalab.analysis.tables import aggregate, display

SPECIAL = r"a~15 $x$ {y} ^2 #3 & 50% under_score back\slash <a|b>"


def test_every_special_character_is_escaped():
    assert escape(SPECIAL) == (
        r"a\textasciitilde{}15 \$x\$ \{y\} \textasciicircum{}2 \#3 \& 50\% under\_score back\textbackslash{}slash "
        r"\textless{}a\textbar{}b\textgreater{}"
    )
    assert escape("±Δ–≤") == r"\ensuremath{\pm}\ensuremath{\Delta}--\ensuremath{\leq}"
    tex = to_latex(pd.DataFrame({"brief: ~15 & more": [SPECIAL]}), "caption ~15", "tab:x", ["note ~15"])
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip()
    assert body == escape(SPECIAL) + r" \\"
    assert r"brief: \textasciitilde{}15 \& more" in tex
    assert r"caption \textasciitilde{}15" in tex and r"note \textasciitilde{}15" in tex


def wide_table() -> pd.DataFrame:
    """The runs table of a 4-setting, 3-seed sweep: 2 switches and 5 metrics of mean ± CI (n=3) cells."""
    rows = []
    for i, (a, b) in enumerate([(50.0, 30.0), (50.0, None), (None, 30.0), (None, None)]):
        for seed in range(3):
            rows.append({"softcap.attn": a, "softcap.final": b, "seed": seed, "status": "finished",
                         "val/loss": 2.7 + 0.01 * i + 0.001 * seed, "stability/loss_spikes": float(seed),
                         "stability/grad_norm_var": 0.1 * seed, "stability/grad_norm_cv": 0.2,
                         "attn/max_logit": 20.0 + seed})  # fmt: skip
    metrics = ["val/loss", "stability/loss_spikes", "stability/grad_norm_var", "stability/grad_norm_cv",
               "attn/max_logit"]  # fmt: skip
    return display(aggregate(pd.DataFrame(rows), ["softcap.attn", "softcap.final"], metrics))


def test_a_wide_table_moves_n_to_the_header_and_is_scaled_to_the_line_only_when_too_wide():
    table = wide_table()
    tex = to_latex(table, "runs", "tab:runs")
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert "(n=3)" not in body and r"val loss (n=3)" in tex
    # column budget: no body cell longer than 6 characters once the n and the ± leave the cells
    cells = [c.strip().removeprefix(r"\textbf{").removesuffix("}") for line in body.strip().splitlines()
             for c in line.rstrip("\\ ").split("&")]  # fmt: skip
    assert max(len(c) for c in cells) <= 6, cells
    assert r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%" in tex
    assert "off" in body and "nan" not in body  # a switch that is off


def test_the_significantly_best_row_is_bold_and_only_then():
    base = {"seed": 0, "status": "finished"}
    rows = [{**base, "x": "a", "val/loss": v} for v in (2.00, 2.01, 2.02)]
    rows += [{**base, "x": "b", "val/loss": v} for v in (2.50, 2.51, 2.52)]
    rows += [{**base, "x": "c", "val/loss": v} for v in (2.00, 2.60, 1.5)]  # noisy: not separable
    table = display(aggregate(pd.DataFrame(rows[:6]), ["x"], ["val/loss"]))
    assert r"\textbf{2.010}" in to_latex(table, "c", "tab:c")
    table = display(aggregate(pd.DataFrame(rows), ["x"], ["val/loss"]))
    assert r"\textbf" not in to_latex(table, "c", "tab:c")


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex is not installed (apt install texlive-latex-recommended)"
)
def test_a_wide_table_compiles_without_an_overfull_box(tmp_path):
    tex = to_latex(wide_table(), "runs " + SPECIAL, "tab:runs", ["Warning: " + SPECIAL])
    (tmp_path / "t.tex").write_text(PREAMBLE + "\\begin{document}\n" + tex + "\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    log = (tmp_path / "t.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log
