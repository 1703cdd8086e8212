"""Training throughput of gemmalab's Decoder and transformers' Gemma2ForCausalLM at the same
configuration, side by side in one process: tokens/s, activation memory, their ratio, and the
achieved FLOP/s as a fraction of this machine's measured matmul peak.

    python benchmarks/train_throughput.py                            # laptop model, both caps, 16 x 256
    python benchmarks/train_throughput.py --d-model 256 --layers 6 --heads 8 --kv-heads 4
    python benchmarks/train_throughput.py --device cuda --compile    # FlexAttention + torch.compile on a GPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from gemmalab.benchmarks.common import (
    SavedActivations,
    interleaved_seconds,
    machine,
    median,
    paired_ratio,
    square_matmul,
    write_results,
)
from gemmalab.model import AttnConfig, Decoder, ModelConfig, SoftcapConfig


def training_flops(cfg: ModelConfig, batch: int, seq: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward), attention computed over the
    full T x T score matrix as eager implementations do."""
    d, hd = cfg.d_model, cfg.head_dim
    per_layer = 2 * d * hd * (2 * cfg.n_heads + 2 * cfg.attn.kv_heads) + 2 * 3 * d * cfg.d_ff  # q,o,k,v + MLP
    attention = 2 * 2 * seq * cfg.n_heads * hd  # q.k and p.v, per token per layer
    head = 2 * d * cfg.vocab_size
    return 3 * batch * seq * (cfg.n_layers * (per_layer + attention) + head)


def hf_model(cfg: ModelConfig, attn_impl: str):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    hf_cfg = Gemma2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.attn.kv_heads, head_dim=cfg.head_dim,
        sliding_window=cfg.attn.window, query_pre_attn_scalar=cfg.head_dim, attn_logit_softcapping=cfg.softcap.attn,
        final_logit_softcapping=cfg.softcap.final, max_position_embeddings=8192, attn_implementation=attn_impl,
    )  # fmt: skip
    return Gemma2ForCausalLM(hf_cfg)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument(
        "--hf-attn", default=None, help="transformers attention (default: eager on CPU, flex_attention on CUDA)"
    )
    p.add_argument("--repeat", type=int, default=15, help="timed steps per model, alternating")
    p.add_argument("--out", type=Path, default=Path("runs/_benchmarks"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = ModelConfig(
        vocab_size=256, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
        head_dim=args.d_model // args.heads, d_ff=4 * args.d_model,
        attn=AttnConfig(pattern="alt", window=args.window, kv_heads=args.kv_heads),
        softcap=SoftcapConfig(attn=50.0, final=30.0),
    )  # fmt: skip
    hf_attn = args.hf_attn or ("flex_attention" if device.type == "cuda" else "eager")
    ids = torch.randint(0, 256, (args.batch, args.seq + 1), device=device)
    flops = training_flops(cfg, args.batch, args.seq)
    contenders = {
        "gemmalab": (Decoder(cfg), lambda m, x: m(x)),
        f"transformers ({hf_attn})": (hf_model(cfg, hf_attn), lambda m, x: m(input_ids=x, use_cache=False).logits),
    }
    steps, activation_bytes = {}, {}
    for name, (model, logits_of) in contenders.items():
        model = model.to(device=device, dtype=dtype).train()
        forward = torch.compile(model) if args.compile else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(forward=forward, optimizer=optimizer, logits_of=logits_of) -> None:
            logits = logits_of(forward, ids[:, :-1])
            F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        with SavedActivations() as saved:
            loss = F.cross_entropy(logits_of(forward, ids[:, :-1]).float().flatten(0, 1), ids[:, 1:].flatten())
        del loss
        steps[name], activation_bytes[name] = step, saved.nbytes
    # the matmul peak is timed in the same rounds: a drifting machine shifts it with the models
    steps["matmul peak"], peak_flops = square_matmul(device, dtype)
    times = interleaved_seconds(steps, device, warmup=3 if args.compile else 2, repeat=args.repeat)
    peak_times = times.pop("matmul peak")
    del steps["matmul peak"]
    seconds = {name: median(ts) for name, ts in times.items()}
    reference = times[f"transformers ({hf_attn})"]
    rows = []
    for name, step in steps.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step()
            peak_mem = torch.cuda.max_memory_allocated() / 1e6
        else:
            peak_mem = float("nan")
        rows.append({
            "model": name, "tokens/s": args.batch * args.seq / seconds[name],
            "speed vs transformers": paired_ratio(reference, times[name]), "ms/step": 1000 * seconds[name],
            "activation MB": activation_bytes[name] / 1e6, "peak CUDA MB": peak_mem,
            "GFLOP/s": flops / seconds[name] / 1e9,
            "fraction of matmul peak": flops / peak_flops / paired_ratio(times[name], peak_times),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    peak_gflops = round(peak_flops / median(peak_times) / 1e9, 1)
    meta = {"machine": machine(), "dtype": str(dtype), "matmul peak GFLOP/s": peak_gflops,
            "config": f"d_model {args.d_model}, {args.layers} layers, {args.heads} heads / {args.kv_heads} KV, "
                      f"window {args.window}, caps 50 / 30, batch {args.batch} x {args.seq}",
            "compile": args.compile}  # fmt: skip
    path = write_results("train_throughput" + ("_compiled" if args.compile else ""), table, meta, args.out)
    print(path.read_text())
    return table


if __name__ == "__main__":
    main()
