"""Does a local layer cost O(T * W)? Forward + backward of one attention layer at long context,
local (window W) against global, on this machine: time and activation memory, of the whole layer
(projections, RoPE and attention) and of the attention alone (what the window changes).

    python benchmarks/local_attention.py                 # T = 4096, W = 512 (target: local <= 0.3x global)
    python benchmarks/local_attention.py --backend eager  # the reference: a global layer builds all T x T scores
    python benchmarks/local_attention.py --seq 8192 --window 1024 --backend sdpa
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from gemmalab.benchmarks.common import SavedActivations, machine, seconds_per_call, write_results
from gemmalab.model import AttnConfig, ModelConfig, SoftcapConfig
from gemmalab.model.attention import Attention
from gemmalab.model.backends import attend_sequence, resolve_backend
from gemmalab.model.config import ATTN_BACKENDS
from gemmalab.model.rope import rope_cos_sin


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--backend", default="auto", choices=ATTN_BACKENDS)
    p.add_argument("--cap", type=float, default=50.0, help="attention soft-cap (sdpa needs --cap 0 for off)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("runs/_benchmarks"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cap = args.cap or None
    cfg = ModelConfig(
        vocab_size=256, d_model=args.d_model, n_layers=2, n_heads=args.heads, head_dim=args.d_model // args.heads,
        d_ff=4 * args.d_model,
        attn=AttnConfig(pattern="alt", window=args.window, kv_heads=args.kv_heads, backend=args.backend),
        softcap=SoftcapConfig(attn=cap, final=None),
    )  # fmt: skip
    x = torch.randn(args.batch, args.seq, args.d_model, device=device, requires_grad=True)
    cos, sin = rope_cos_sin(torch.arange(args.seq, device=device), cfg.head_dim, cfg.rope_theta, x.dtype)
    q = torch.randn(args.batch, args.heads, args.seq, cfg.head_dim, device=device, requires_grad=True)
    k, v = (torch.randn(args.batch, args.kv_heads, args.seq, cfg.head_dim, device=device, requires_grad=True)
            for _ in range(2))  # fmt: skip
    rows = []
    for kind, local in (("global", False), ("local", True)):
        layer = Attention(cfg, local=local).to(device)
        backend = resolve_backend(args.backend, device, cap)
        window = args.window if local else None

        def whole_layer(layer: Attention = layer) -> torch.Tensor:
            return layer(x, cos, sin)

        def scores_only(backend: str = backend, window: int | None = window, scale: float = layer.scale):
            return attend_sequence(backend, q, k, v, scale, cap, window)

        row = {"layer": kind, "window": window, "backend": backend}
        for part, forward in (("layer", whole_layer), ("attention", scores_only)):
            row[f"{part} s fwd+bwd"] = seconds_per_call(lambda f=forward: f().sum().backward(), device, 1, 3)
            with SavedActivations() as saved:
                out = forward()
            del out
            row[f"{part} activation MB"] = saved.nbytes / 1e6
        rows.append(row)
    table = pd.DataFrame(rows)
    g = table.set_index("layer")
    for part in ("layer", "attention"):
        table[f"{part} time vs global"] = table[f"{part} s fwd+bwd"] / g.loc["global", f"{part} s fwd+bwd"]
        table[f"{part} memory vs global"] = table[f"{part} activation MB"] / g.loc["global", f"{part} activation MB"]
    meta = {"machine": machine(), "T": args.seq, "W": args.window, "d_model": args.d_model, "heads": args.heads,
            "kv_heads": args.kv_heads, "batch": args.batch, "soft-cap": cap,
            "target": "local <= 0.3x global in time and memory"}  # fmt: skip
    path = write_results("local_attention", table, meta, args.out)
    print(path.read_text())
    return table


if __name__ == "__main__":
    main()
