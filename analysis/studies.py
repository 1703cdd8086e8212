"""The tables of the named studies in ablations/, each in the shape of the brief's, plus the
analytic real-scale table computed from the presets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import torch

from gemmalab import scale
from gemmalab.migrations import ADDED_LATER
from gemmalab.model import (
    Decoder,
    attention_score_entries,
    count_parameters,
    kv_cache_bytes,
    model_config,
    preset,
    training_flops_per_token,
)
from gemmalab.model.config import kv_kind
from gemmalab.runs.identity import is_identity_key

from .tables import QUALITY, STABILITY, aggregate, compare_to_baseline, display, fmt, mean_ci, varying_switches

STATED = {  # the sources' own figures, written once: the claims' words (claims.py) and the tables' references
    "softcap": {  # brief-claims.md: without, with, stated change
        "stability/loss_spikes": ("~15", "2", "-87%"),
        "stability/grad_norm_var": ("2.4", "0.8", "-67%"),
        QUALITY: ("baseline", "+1.2% average", ""),
    },
    "table8": {"MHA": "50.3", "GQA": "50.8"},  # Gemma 2 Table 8, 9B, average of 4 benchmarks
    "table9": {"wide": "50.8", "deep": "52.0"},  # Gemma 2 Table 9, 9B, average benchmark score
}


NORM_PLACEMENTS = {  # the brief's "post-norm only: poor (loss spikes)" is the original post-LN, `postln`
    "pre": "x + f(norm(x)) (Gemma 1)",
    "post": "x + norm(f(x)) (OLMo 2's reordered norm)",
    "dual": "x + norm(f(norm(x))) (Gemma 2)",
    "postln": "norm(x + f(x)) (original post-LN)",
}


def model_of(row: pd.Series) -> Decoder:
    """The run's model on the meta device: sizes read off the real module tree, no weights allocated."""
    prefix = {k: row[k] for k in row.index if isinstance(k, str) and "." in k and is_identity_key(k)}
    nested = {"model": {}, "attn": {}, "softcap": {}}
    for key, value in prefix.items():
        group, _, field = key.partition(".")
        if group in nested and "." not in field:
            value = value.item() if isinstance(value, np.generic) else value  # numpy scalars from pandas
            nested[group][field] = None if isinstance(value, float) and math.isnan(value) else value
    with torch.device("meta"):
        return Decoder(model_config({**nested, "norm": row["norm"]}))


def tokens_per_step(row: pd.Series) -> int:
    """A run's tokens per optimizer step (gemmalab/scale.py), read off its flattened config."""
    accumulate = "trainer.accumulate_grad_batches"  # a frame not read through loaders.run_row may lack it
    return scale.tokens_per_step(int(row["data.batch_size"]), int(row["data.seq_len"]),
                                 int(row.get(accumulate, ADDED_LATER[accumulate])))  # fmt: skip


def with_compute(table: pd.DataFrame, firsts: pd.DataFrame) -> pd.DataFrame:
    """Each row's training cost beside it (model/accounting.py): FLOPs per step and per run, and the run's
    FLOPs against the first row's, so arms compared at equal steps show what they cost (scale.flops_per_run
    compares them at equal FLOPs instead)."""
    per_step = [training_flops_per_token(model_of(r), int(r["data.seq_len"])) * tokens_per_step(r)
                for _, r in firsts.iterrows()]  # fmt: skip
    per_run = [f * int(r["trainer.max_steps"]) for f, (_, r) in zip(per_step, firsts.iterrows(), strict=True)]
    table = table.copy()
    table["training FLOPs/step"] = [f"{f:.3g}" for f in per_step]
    table["training FLOPs/run"] = [f"{f:.3g} ({f / per_run[0]:.2f}x)" for f in per_run]
    return table


def generic(frame: pd.DataFrame, baseline: dict | None = None) -> pd.DataFrame:
    by = [c for c in varying_switches(frame)]
    return display(aggregate(frame, by, [QUALITY, *STABILITY]), baseline)


def with_capping(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a `capping` column: on where either cap is set, off where both are null."""
    return frame.assign(capping=np.where(frame["softcap.attn"].notna() | frame["softcap.final"].notna(), "on", "off"))


def softcap(frame: pd.DataFrame) -> pd.DataFrame:
    """The brief's soft-capping table: capping off vs on, per metric, with the relative change."""
    frame = with_capping(frame)
    agg = aggregate(frame, ["capping"], [*STATED["softcap"]])
    t = agg.frame.set_index("capping")
    rows = [{"metric": "runs (diverged, failed)", **{
        f"capping {c}": f"{t.loc[c, 'runs']} ({t.loc[c, 'diverged']}, {t.loc[c, 'failed']})"
        if c in t.index else "–" for c in ("off", "on")
    }}]  # fmt: skip
    for metric, (claim_off, claim_on, claim_change) in STATED["softcap"].items():
        cmp = compare_to_baseline(agg, {"capping": "off"}, metric).set_index(agg.frame["capping"])
        cells = {c: fmt(t.loc[c, f"{metric}_mean"], t.loc[c, f"{metric}_ci"], t.loc[c, f"{metric}_n"])
                 if c in t.index else "–" for c in ("off", "on")}  # fmt: skip
        relative = cmp.loc["on", "relative_%"] if "on" in cmp.index else float("nan")
        change = f"{relative:+.1f}% {cmp.loc['on', 'sig']}".strip() if np.isfinite(relative) else "–"
        rows.append({
            "metric": metric, "capping off": cells["off"], "capping on": cells["on"], "change": change,
            "brief: off": claim_off, "brief: on": claim_on, "brief: change": claim_change,
        })  # fmt: skip
    return pd.DataFrame(rows)


def norm(frame: pd.DataFrame) -> pd.DataFrame:
    by = ["norm", *[c for c in varying_switches(frame) if c != "norm"]]
    baseline = {"norm": "pre"} if by == ["norm"] and "pre" in set(frame["norm"]) else None
    table = display(aggregate(frame, by, [QUALITY, *STABILITY]), baseline)
    table.insert(1, "sub-layer f, stream x", table["norm"].map(NORM_PLACEMENTS))
    return table


def kv_heads(frame: pd.DataFrame) -> pd.DataFrame:
    """MQA / GQA / MHA at equal size: KV heads, KV cache, parameters, quality."""
    by = ["attn.kv_heads", *[c for c in varying_switches(frame) if c != "attn.kv_heads"]]
    table = display(aggregate(frame, by, [QUALITY]), {"attn.kv_heads": frame["attn.kv_heads"].max()}
                    if by == ["attn.kv_heads"] else None)  # fmt: skip
    firsts = frame.groupby(by, sort=True, dropna=False).head(1).set_index(by).sort_index()
    n_heads = firsts["model.n_heads"].to_numpy()
    kind = [kv_kind(k, h) for k, h in zip(firsts.index.get_level_values(0), n_heads, strict=True)]
    context = firsts["data.seq_len"].to_numpy()
    models = [model_of(r) for _, r in firsts.reset_index().iterrows()]
    table.insert(1, "kind", kind)
    table.insert(
        2, "KV cache bytes/seq (bf16)", [kv_cache_bytes(m, int(t)) for m, t in zip(models, context, strict=True)]
    )
    table.insert(3, "parameters", [count_parameters(m) for m in models])
    table.insert(4, "non-embedding", [count_parameters(m, include_embedding=False) for m in models])
    return with_compute(table, firsts.reset_index())


def attn_pattern(frame: pd.DataFrame) -> pd.DataFrame:
    """Local / global: pattern, ratio and window against score entries and KV cache at the context length."""
    keys = ["attn.pattern", "attn.local_global_ratio", "attn.window"]
    by = [*keys, *[c for c in varying_switches(frame) if c not in keys]]
    table = display(aggregate(frame, by, [QUALITY]))
    firsts = frame.groupby(by, sort=True, dropna=False).head(1).set_index(by).sort_index().reset_index()
    entries, cache = [], []
    for _, row in firsts.iterrows():
        model, t = model_of(row), int(row["data.seq_len"])
        entries.append(float(np.mean(attention_score_entries(model, t))))
        cache.append(kv_cache_bytes(model, t, rolling_local=True))
    table.insert(len(keys), "causal score entries/layer/head", [f"{e:,.0f}" for e in entries])
    table.insert(len(keys) + 1, "KV cache bytes/seq (bf16, rolling local)", cache)
    return with_compute(table, firsts)


def sensitivity_per_seed(runs: pd.DataFrame) -> dict[int, tuple[float, float]]:
    """Per seed of one configuration's LR grid: (LR sensitivity, the best LR), as lr_sensitivity defines them."""
    out = {}
    for seed, seed_runs in runs.groupby("seed"):
        l0 = seed_runs["val/loss_init"].to_numpy(dtype=float)
        loss = seed_runs["val/loss"].to_numpy(dtype=float)
        finished = seed_runs["status"].astype(str).eq("finished").to_numpy()
        capped = np.where(finished & np.isfinite(loss), np.minimum(loss, l0), l0)
        best = float(seed_runs["optim.lr"].to_numpy()[np.argmin(capped)])
        out[int(seed)] = (float(np.mean(capped - capped.min())), best)
    return out


def lr_sensitivity(frame: pd.DataFrame) -> pd.DataFrame:
    """Wortsman et al.: with l(eta) the final validation loss (a diverged run counts as l0, the loss at
    initialisation), l* the best over the grid: sensitivity = mean over the grid of min(l(eta), l0) - l*.
    Computed per seed, then mean ± 95% CI over seeds."""
    configs = [c for c in varying_switches(frame) if c != "optim.lr"]
    rows = []
    for key, runs in frame.groupby(configs, sort=True, dropna=False) if configs else [((), frame)]:
        key = key if isinstance(key, tuple) else (key,)
        per_seed = sensitivity_per_seed(runs)
        best_lrs = [best for _, best in per_seed.values()]
        mean, ci, n = mean_ci(np.array([s for s, _ in per_seed.values()]))
        row = dict(zip(configs, key, strict=True))
        row.update({
            "LR grid": ", ".join(f"{lr:g}" for lr in sorted(runs["optim.lr"].unique())),
            "LR sensitivity": fmt(mean, ci, n),
            "best LR (per seed)": ", ".join(f"{lr:g}" for lr in best_lrs),
            "diverged": f"{int(runs['status'].astype(str).str.startswith('diverged').sum())}/{len(runs)}",
            "failed": f"{int(runs['status'].astype(str).str.startswith('failed').sum())}/{len(runs)}",
        })  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def real_scale() -> pd.DataFrame:
    """Gemma 2 2B / 9B / 27B and Gemma 1 2B / 7B from the presets, at 8K context in bf16,
    beside the brief's stated figures."""
    rows = []
    for name in ("gemma2-2b", "gemma2-9b", "gemma2-27b", "gemma1-2b", "gemma1-7b"):
        cfg = preset(name)
        mha_cfg = dataclasses.replace(cfg, attn=dataclasses.replace(cfg.attn, kv_heads=cfg.n_heads))
        full_cfg = dataclasses.replace(cfg, attn=dataclasses.replace(cfg.attn, pattern="full"))
        alt_cfg = dataclasses.replace(cfg, attn=dataclasses.replace(cfg.attn, pattern="alt", window=4096))
        with torch.device("meta"):
            model, mha, full, alt = Decoder(cfg), Decoder(mha_cfg), Decoder(full_cfg), Decoder(alt_cfg)
        full_entries = float(np.mean(attention_score_entries(full, 8192)))
        alt_entries = float(np.mean(attention_score_entries(alt, 8192)))
        alt_cache = kv_cache_bytes(alt, 8192, rolling_local=True)
        rows.append({
            "model": name, "parameters (B)": round(count_parameters(model) / 1e9, 3),
            "KV heads": cfg.attn.kv_heads, "heads": cfg.n_heads,
            "KV cache 8K, MHA (GB)": round(kv_cache_bytes(mha, 8192) / 1e9, 3),
            "KV cache 8K, as built (GB)": round(kv_cache_bytes(model, 8192) / 1e9, 3),
            "KV cache 8K, alt + rolling local (GB)": round(alt_cache / 1e9, 3),
            "causal score entries/layer, full (M)": round(full_entries / 1e6, 1),
            "causal score entries/layer, alternating W=4096 (M)": round(alt_entries / 1e6, 1),
            "attention saving": f"{100 * (1 - alt_entries / full_entries):.1f}%",
            "KV cache saving, alt + rolling local": f"{100 * (1 - alt_cache / kv_cache_bytes(full, 8192)):.1f}%",
        })  # fmt: skip
    return pd.DataFrame(rows)


def real_scale_vs_brief(table: pd.DataFrame) -> pd.DataFrame:
    nine = table.set_index("model").loc["gemma2-9b"]
    mha_gb, gqa_gb = nine["KV cache 8K, MHA (GB)"], nine["KV cache 8K, as built (GB)"]
    full_m = nine["causal score entries/layer, full (M)"]
    alt_m = nine["causal score entries/layer, alternating W=4096 (M)"]
    return pd.DataFrame([
        {"figure": "9B KV cache at 8K, MHA", "brief": "5.5 GB", "computed": f"{mha_gb} GB"},
        {"figure": "9B KV cache at 8K, GQA", "brief": "2.75 GB", "computed": f"{gqa_gb} GB"},
        {"figure": "score entries per layer, full", "brief": "67M = 8192² (no causal skip)",
         "computed": f"{full_m}M = 8192·8193/2 (causal)"},
        {"figure": "score entries per layer, alternating", "brief": "41.9M = (8192² + 4096²)/2",
         "computed": f"{alt_m}M = (8192·8193/2 + 4096·4097/2 + 4096²)/2 (causal)"},
        {"figure": "attention compute saving (score entries)", "brief": "~50%", "computed": nine["attention saving"]},
        {"figure": "KV cache saving (memory), rolling local buffers", "brief": "–",
         "computed": nine["KV cache saving, alt + rolling local"]},
    ])  # fmt: skip


def production_flops(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per cascade size, in cascade order: (its training FLOPs from scratch, the FLOPs that produce it distilled:
    its own training, the top teacher's forward passes over its tokens and the teacher's own training)."""
    out, teacher = {}, None  # the top teacher's model and training FLOPs
    for size in [s for s in ("teacher", "middle", "small") if s in set(frame["cascade.size"])]:
        first = frame[frame["cascade.size"] == size].iloc[0]
        tokens = int(first["trainer.max_steps"]) * tokens_per_step(first)
        model = model_of(first)
        own = training_flops_per_token(model, int(first["data.seq_len"])) * tokens
        if size == "teacher":
            teacher = (model, own)
        forward = training_flops_per_token(teacher[0], int(first["data.seq_len"])) / 3 if teacher else 0.0
        produced = own if teacher is None or size == "teacher" else own + forward * tokens + teacher[1]
        out[size] = (own, produced)
    return out


def softcap_stability(frame: pd.DataFrame) -> pd.DataFrame:
    """Soft-capping's stability where the caps bend: per LR, capping off vs on, spikes, grad-norm variance,
    quality, and how much of each cap's input lay beyond cap/2."""
    bent = [m for m in ("softcap/attn/beyond_half", "softcap/final/beyond_half") if m in frame]
    return display(aggregate(with_capping(frame), ["optim.lr", "capping"], [*STATED["softcap"], *bent]))


def cascade(frame: pd.DataFrame) -> pd.DataFrame:
    """Gemma 2's Table 7 in miniature: per size, validation loss (and perplexity) from scratch vs distilled."""
    agg = aggregate(frame, ["cascade.size", "cascade.training"], [QUALITY])
    t = agg.frame.set_index(["cascade.size", "cascade.training"])
    rows = []
    for index, (size, (own, produced)) in enumerate(production_flops(frame).items()):
        first = frame[frame["cascade.size"] == size].iloc[0]
        row = {"size": size, "parameters": count_parameters(model_of(first))}
        for training in ("scratch", "distilled"):
            if (size, training) in t.index:
                r = t.loc[(size, training)]
                row[f"{training}: val/loss"] = fmt(r[f"{QUALITY}_mean"], r[f"{QUALITY}_ci"], r[f"{QUALITY}_n"])
                row[f"{training}: ppl"] = f"{math.exp(r[f'{QUALITY}_mean']):.2f}" if r[f"{QUALITY}_n"] else "–"
        if {(size, "scratch"), (size, "distilled")} <= set(t.index):
            sizes = agg.frame[agg.frame["cascade.size"] == size].reset_index(drop=True)
            sub = type(agg)(sizes, agg.by, agg.metrics, agg.paired)
            cmp = compare_to_baseline(sub, {"cascade.training": "scratch"}, QUALITY)
            d = cmp[sizes["cascade.training"] == "distilled"].iloc[0]
            row["distilled - scratch"] = f"{d['delta']:+.3f} ({d['relative_%']:+.1f}%) {d['sig']}".strip()
        row["scratch: training FLOPs"] = f"{own:.3g}"
        if index:  # the first size has no teacher
            row["distilled: FLOPs incl. teachers"] = f"{produced:.3g} ({produced / own:.1f}x scratch)"
        rows.append(row)
    return pd.DataFrame(rows)


def distance_buckets_of(row: pd.Series) -> pd.DataFrame:
    """A recall run's accuracy by key-to-query distance: (lo, hi, accuracy, queries) per bucket."""
    prefix = "val/accuracy_by_distance/"
    rows = []
    for key in row.index:
        if isinstance(key, str) and key.startswith(prefix) and np.isfinite(row[key]):
            span = key[len(prefix) :]
            lo, hi = (int(x) for x in span.split("-"))
            rows.append(
                {"lo": lo - 1, "hi": hi, "accuracy": row[key], "queries": row[f"val/queries_by_distance/{span}"]}
            )
    return pd.DataFrame(rows, columns=["lo", "hi", "accuracy", "queries"])


def mqar(frame: pd.DataFrame) -> pd.DataFrame:
    """Associative recall per pattern and window: accuracy overall and in distance bands cut at the
    study's windows (a bucket counts in the band that holds its upper edge; buckets have the windows
    as edges), mean ± 95% CI over finished seeds, beside chance (one of the vocabulary's values)."""
    windows = sorted({int(w) for w in frame["attn.window"].dropna()})
    edges = [0, *windows, int(frame["data.seq_len"].max())]
    bands = [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]
    names = [f"acc. {lo} < d <= {hi}" if lo else f"acc. d <= {hi}" for lo, hi in bands]
    frame = frame.copy()
    for name, (lo, hi) in zip(names, bands, strict=True):
        values = []
        for _, row in frame.iterrows():
            b = distance_buckets_of(row)
            b = b[(b["hi"] > lo) & (b["hi"] <= hi)]
            values.append(float(np.average(b["accuracy"], weights=b["queries"])) if len(b) else math.nan)
        frame[name] = values
    keys = ["attn.pattern", "attn.window", "attn.local_global_ratio"]
    by = [k for k in keys if k in varying_switches(frame)] + [c for c in varying_switches(frame) if c not in keys]
    accuracy = "test/accuracy" if "test/accuracy" in frame else "val/accuracy"
    agg = aggregate(frame, by, [accuracy, *names])
    table = display(agg)
    learned = [int((g["status"].astype(str).eq("finished") & g[accuracy].ge(LEARNED)).sum()) for _, g in
               frame.groupby(by, sort=True, dropna=False)]  # aggregate's rows, in its order  # fmt: skip
    table.insert(
        len(by),
        f"seeds learned ({accuracy} >= {LEARNED})",
        [f"{k}/{n}" for k, n in zip(learned, agg.frame["runs"], strict=True)],
    )
    vocab = frame["model.vocab_size"].astype(int).max()
    table["chance"] = f"{1 / (vocab - vocab // 2):.3f}"
    return table


LEARNED = 0.99  # a recall run that solved the task; one on the 1/n_pairs plateau stays near 0.3


def deep_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """Gemma 2's Table 9 in miniature: the two shapes' non-embedding parameters (shown, and their gap
    to the wide shape's), val/loss with its difference to the wide shape (paired or Welch), beside the paper's."""
    by = ["model.n_layers", "model.d_ff"]
    agg = aggregate(frame, by, [QUALITY])
    wide = agg.frame["model.n_layers"].min()
    table = display(agg, {"model.n_layers": wide})
    firsts = frame.groupby(by, sort=True).head(1).sort_values(by)
    params = [count_parameters(model_of(r), include_embedding=False) for _, r in firsts.iterrows()]
    shapes = ["wide" if n == wide else "deep" for n in agg.frame["model.n_layers"]]
    table.insert(0, "shape", shapes)
    table.insert(3, "non-embedding parameters", [f"{p:,}" for p in params])
    table.insert(4, "vs wide", [f"{100 * (p / params[shapes.index('wide')] - 1):+.2f}%" for p in params])
    table[f"ppl ({QUALITY})"] = [f"{math.exp(m):.2f}" if np.isfinite(m) else "–" for m in agg.frame[f"{QUALITY}_mean"]]
    table["paper: 9B avg. score"] = [STATED["table9"][s] for s in shapes]
    return with_compute(table, firsts)


# Wortsman et al. 2023 and Rybakov et al. 2024 (reference-stability.md), per mitigation
PAPER_INSTABILITY = {
    "none": "attention logits grow; every run past 1e4 diverged",
    "qk_norm": "qk-layernorm widens the stable LR range",
    "z_loss": "z-loss fixes output-logit divergence",
    "softcap": "cap 50 + QK-norm: 1.5x the LR of QK-norm alone",
    "final_cap": "a final-logit cap alone (30): bounds the output logits, so log Z",
    "attn_cap": "an attention-logit cap alone (50): bounds the post-cap attention logits",
}
INSTABILITY = (
    "stability/blowup_steps", "stability/loss_peak", "output/log_z_peak", "attn/max_logit",
    "stability/grad_norm_spikes", QUALITY,
)  # fmt: skip


def mitigation_of(row: pd.Series) -> str:
    """The mitigations a run has on (conf/mitigation/), joined by +; `none` for the bare model. Both caps are
    `softcap` (Gemma 2's), one alone `attn_cap` or `final_cap`."""
    attn, final = (pd.notna(row[c]) for c in ("softcap.attn", "softcap.final"))
    on = {
        "qk_norm": bool(row["attn.qk_norm"]),
        "z_loss": float(row["optim.z_loss"]) > 0,
        "softcap": attn and final,
        "attn_cap": attn and not final,
        "final_cap": final and not attn,
    }
    return "+".join(name for name, active in on.items() if active) or "none"


def instability(frame: pd.DataFrame) -> pd.DataFrame:
    """Per learning rate and mitigation: blow-up steps (loss above twice a uniform guess), peak training
    loss, peak attention logit, gradient-norm spikes and final val/loss, beside the papers' findings."""
    frame = frame.assign(mitigation=[mitigation_of(r) for _, r in frame.iterrows()])
    by = ["optim.lr", "mitigation"] if frame["optim.lr"].nunique() > 1 else ["mitigation"]
    agg = aggregate(frame, by, list(INSTABILITY))
    table = display(agg)
    table["paper"] = [PAPER_INSTABILITY.get(m, "") for m in agg.frame["mitigation"]]
    return table


STUDY_TABLES = {
    "instability": instability,
    "softcap_stability": softcap_stability,
    "norm_stability": norm,
    "norm_init": norm,
    "norm_horizon": norm,
    "deep_wide": deep_wide,
    "mqar": mqar,
    "cascade": cascade,
    "softcap": softcap,
    "norm": norm,
    "kv_heads": kv_heads,
    "attn_pattern": attn_pattern,
    "lr_sensitivity": lr_sensitivity,
}
