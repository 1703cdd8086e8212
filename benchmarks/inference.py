"""Inference, measured: KV-cache bytes (the cache's own buffers), prefill and decode speed and
peak memory, at batch 1 / 8 / 32, for full vs alternating vs local attention and MHA / GQA / MQA at
equal model size: the brief's inference-speed and memory tables, measured instead of computed.

    python benchmarks/inference.py                       # laptop-shaped model, 256-token prompt, 256 new tokens
    python benchmarks/inference.py --d-model 512 --layers 8 --heads 8 --prompt 1024 --window 256
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from gemmalab.benchmarks.common import machine, sync, write_results
from gemmalab.model import AttnConfig, Decoder, ModelConfig, SoftcapConfig, count_parameters
from gemmalab.model.config import KV_KINDS
from gemmalab.model.kv_cache import DecoderCache


@torch.no_grad()
def decode(model: Decoder, batch: int, prompt: int, new: int, device: torch.device) -> dict[str, float]:
    ids = torch.randint(0, model.cfg.vocab_size, (batch, prompt), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cache = DecoderCache(model, batch, prompt + new)
    sync(device)
    start = time.perf_counter()
    next_ids = model(ids, cache=cache)[:, -1:].argmax(-1)
    sync(device)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(new - 1):
        next_ids = model(next_ids, cache=cache)[:, -1:].argmax(-1)
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "KV cache MB": cache.nbytes / 1e6,
        "decode tokens/s": batch * (new - 1) / seconds,
        "prefill tokens/s": batch * prompt / prefill,
        "peak CUDA MB": torch.cuda.max_memory_allocated() / 1e6 if device.type == "cuda" else float("nan"),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("runs/_benchmarks"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    base = ModelConfig(
        vocab_size=256, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
        head_dim=args.d_model // args.heads, d_ff=4 * args.d_model,
        attn=AttnConfig(window=args.window, kv_heads=args.heads), softcap=SoftcapConfig(attn=50.0, final=30.0),
    )  # fmt: skip
    kinds = {kind: heads(args.heads) for kind, heads in KV_KINDS.items()}
    rows = []
    for pattern in ("full", "alt", "local"):
        for kind, kv in kinds.items():
            cfg = dataclasses.replace(base, attn=dataclasses.replace(base.attn, pattern=pattern, kv_heads=kv))
            torch.manual_seed(0)
            model = Decoder(cfg).to(device=device, dtype=dtype).eval()
            for batch in map(int, args.batches.split(",")):
                rows.append({"pattern": pattern, "kv": f"{kind} ({kv})", "parameters": count_parameters(model),
                             "batch": batch, **decode(model, batch, args.prompt, args.new, device)})  # fmt: skip
    table = pd.DataFrame(rows)
    meta = {"machine": machine(), "dtype": str(dtype),
            "config": f"d_model {args.d_model}, {args.layers} layers, {args.heads} heads, window {args.window}, "
                      f"caps 50 / 30, prompt {args.prompt}, {args.new} new tokens, greedy"}  # fmt: skip
    path = write_results("inference", table, meta, args.out)
    print(path.read_text())
    return table


if __name__ == "__main__":
    main()
