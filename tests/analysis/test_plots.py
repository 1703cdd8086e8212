"""Figures as files: a PDF figure writes no log lines of its own."""

from __future__ import annotations

import io
import logging

import matplotlib.pyplot as plt

from gemmalab.analysis import plots


def test_a_pdf_figure_logs_nothing_under_a_root_logger_at_info(tmp_path):
    """Hydra leaves the root logger at INFO after an in-process sweep (analysis/paper.py): PDF font subsetting
    printed hundreds of '[HYDRA] glyf pruned' lines into the paper's console."""
    stream, root = io.StringIO(), logging.getLogger()
    handler, level = logging.StreamHandler(stream), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0], label="a line")
        ax.legend()
        paths = plots._save(fig, tmp_path, "figure")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert any(p.suffix == ".pdf" and p.stat().st_size > 0 for p in paths)
    assert stream.getvalue() == ""


def test_the_per_seed_figure_draws_every_value_behind_each_measured_claim(tmp_path):
    def values(arm: str, level: float) -> list[dict]:
        return [{"arm": arm, "where": {"x": arm}, "seed": s, "run_id": f"{arm}{s}", "value": level + s}
                for s in range(3)]  # fmt: skip

    claims = [
        {"id": "one", "verdict": "supported", "quantity": "test/loss, on - off (nats)",
         "per_seed": values("on", 1.0) + values("off", 2.0)},
        {"id": "analytic", "verdict": "supported", "quantity": "GB", "per_seed": []},
    ]  # fmt: skip
    paths = plots.per_seed_values(claims, tmp_path)
    assert [p.name for p in paths] == ["findings_per_seed.png", "findings_per_seed.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert plots.per_seed_values(claims[1:], tmp_path / "none") == []  # nothing measured: no figure
    assert not (tmp_path / "none").exists()
