"""What the stats-step diagnostics cost: one training step (forward, backward, AdamW) with and without
the decoder's recorder on (max logit, cap engagement, global attention beyond the window, final-logit engagement),
timed in alternating rounds; the overhead of a run is that difference once every `stats_every` steps.

    python benchmarks/diagnostics_overhead.py                    # the default run: laptop model, 8 x 128, W 32
    python benchmarks/diagnostics_overhead.py --batch 16 --seq 256 --window 64
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from gemmalab.benchmarks.common import interleaved_seconds, machine, median, paired_ratio, write_results
from gemmalab.model import Decoder, preset


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="laptop", help="a preset: tiny, laptop, small, base")
    p.add_argument("--window", type=int, default=32, help="attn.window (the sweep's default is 32)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--stats-every", type=int, default=10, help="trainer.stats_every")
    p.add_argument("--repeat", type=int, default=20, help="timed steps per variant, alternating")
    p.add_argument("--out", type=Path, default=Path("runs/_benchmarks"))
    args = p.parse_args(argv)
    cfg = preset(args.model)
    cfg.attn.window = args.window
    model = Decoder(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1))

    def step(with_stats: bool) -> None:
        if with_stats:
            with model.recorder.recording():
                logits = model(ids[:, :-1])
        else:
            logits = model(ids[:, :-1])
        F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = interleaved_seconds(
        {"plain step": lambda: step(False), "stats step": lambda: step(True)}, torch.device("cpu"), repeat=args.repeat
    )
    plain, stats = median(times["plain step"]), median(times["stats step"])
    extra = paired_ratio(times["stats step"], times["plain step"]) - 1  # per stats step, drift cancelled
    table = pd.DataFrame([{
        "plain step ms": 1000 * plain, "stats step ms": 1000 * stats, "extra on a stats step": f"{100 * extra:.1f}%",
        f"run overhead at stats_every={args.stats_every}": f"{100 * extra / args.stats_every:.2f}%",
    }])  # fmt: skip
    meta = {"machine": machine(), "config": f"{args.model}, window {args.window}, batch {args.batch} x {args.seq}"}
    path = write_results("diagnostics_overhead", table, meta, args.out)
    print(path.read_text())
    return table


if __name__ == "__main__":
    main()
