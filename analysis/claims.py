"""Every claim the harness measures, each as a quantity computed from a study's logged runs (or from the
presets, for an analytic figure) and the range the claim asserts; the verdict comes from analysis/verdict.py.

The claims are the brief's (../shared/brief-claims.md), Gemma 2's Tables 7, 9 and 10, and the stability
papers' (reference-stability.md) that the instability and LR-sensitivity studies reproduce. Differences are
one arm minus the other over the seeds both finished (paired where the runs pair up, else Welch's), on the
held-out test split (`test/loss`) unless a claim says otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from gemmalab.model import Decoder, preset, training_flops_per_token
from gemmalab.runs.store import RunDir
from gemmalab.train.engagement import ENGAGED
from gemmalab.tune import arm_key, choose

from . import scaling, studies
from .evaluate import evaluations
from .power import min_detectable_difference
from .tables import difference, holm, paired_values, pairs_up, same_value
from .verdict import Gauge, Measured, claimed_range, directional, verdict

TEST = "test/loss"
INF = math.inf
NO_GPU = "needs a GPU: benchmarks/inference.py measures decode at laptop scale on this machine"


@dataclass
class Evidence:
    """The paper's studies as the claims read them: a frame of runs per study, and the run store (for
    evaluation records and tuning choices)."""

    frames: dict[str, pd.DataFrame]
    run_root: Path

    def frame(self, study: str) -> pd.DataFrame | None:
        frame = self.frames.get(study)
        return None if frame is None or frame.empty else frame


def in_arm(frame: pd.DataFrame, where: dict[str, Any]) -> pd.Series:
    """Which runs belong to the arm: every key of `where` matching (text exactly, numbers as numbers)."""
    keep = pd.Series(True, index=frame.index)
    for key, value in where.items():
        if key not in frame:
            return ~keep
        keep &= frame[key].astype(str).eq(value) if isinstance(value, str) else frame[key].map(
            lambda v, value=value: same_value(v, value))  # fmt: skip
    return keep


def counted(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Runs whose `metric` is a result: finished ones, and diverged ones for blow-up counts (not their loss)."""
    status = frame["status"].astype(str)
    return status.eq("finished") | (status.str.startswith("diverged") & metric.startswith(("stability/", "attn/")))


def arm(frame: pd.DataFrame, where: dict[str, Any], metric: str) -> pd.DataFrame:
    """The arm's runs (in_arm) that count (counted) with a finite value of `metric`."""
    runs = frame[in_arm(frame, where) & counted(frame, metric)]
    return runs[np.isfinite(pd.to_numeric(runs[metric], errors="coerce").astype(float))] if metric in runs else runs[:0]


def why_no_value(frame: pd.DataFrame, where: dict[str, Any], metric: str) -> str:
    """Why an arm gives no value of `metric`: the study ran no such arm, none of its runs finished, or the
    metric is undefined in every one that did (a spike count in runs shorter than the rule's window)."""
    runs = frame[in_arm(frame, where)]
    if runs.empty:
        return f"the study ran no {where} arm"
    if not counted(runs, metric).any():
        return f"no finished run of {where} ({', '.join(sorted(set(runs['status'].astype(str))))})"
    why = "the runs are shorter than the spike rule's window" if metric.startswith("stability/") else "not logged"
    return f"{metric} is undefined in every finished run of {where} ({why})"


def contrast(frame: pd.DataFrame | None, metric: str, a: dict, b: dict, relative: bool = False) -> Measured:
    """metric(a) - metric(b), paired over common seeds where the runs pair up, else Welch's; relative: in %
    of b's mean. With the smallest difference detectable with 80% power by the same test."""
    if frame is None:
        return Measured(math.nan, math.nan, 0, reason="the study has no runs")
    x, y = arm(frame, a, metric), arm(frame, b, metric)
    if x.empty or y.empty:
        return Measured(math.nan, math.nan, 0, reason=why_no_value(frame, a if x.empty else b, metric))
    xv, yv = x[metric].to_numpy(float), y[metric].to_numpy(float)
    d = difference(xv, x["seed"].to_numpy(), yv, y["seed"].to_numpy(), pairs_up(frame))
    if d.test == "paired":
        p, q = paired_values(xv, x["seed"].to_numpy(), yv, y["seed"].to_numpy())
        mde = min_detectable_difference(float(np.std(p - q, ddof=1)), len(p), len(p), "paired")
    else:
        mde = min_detectable_difference(float(np.std(xv, ddof=1)) if len(xv) > 1 else math.nan, len(xv), len(yv),
                                        "Welch", float(np.std(yv, ddof=1)) if len(yv) > 1 else math.nan)  # fmt: skip
    scale = 100 / abs(float(yv.mean())) if relative and yv.mean() != 0 else 1.0
    per_seed = tuple({"arm": where, "seed": int(r.seed), "run_id": getattr(r, "run_id", None),  # none: a per-seed
                      "value": float(value)}  # figure from several runs (the LR sensitivity over an LR grid)
                     for where, runs in ((a, x.sort_values("seed")), (b, y.sort_values("seed")))
                     for r, value in zip(runs.itertuples(), runs[metric], strict=True))  # fmt: skip
    return Measured(d.delta * scale, d.ci * scale, d.n, d.test, mde * scale, p=d.p, per_seed=per_seed)


def exact(value: float) -> Measured:
    return Measured(float(value), 0.0, None)


def not_measured(reason: str) -> Measured:
    return Measured(math.nan, math.nan, None, reason=reason)


# gauges: how far the mechanism bit in the study's runs (the largest over them)
def caps_gauge(frame: pd.DataFrame | None, keys: tuple[str, ...] = ("attn", "final")) -> Gauge | None:
    shares = [f"softcap/{k}/beyond_half" for k in keys]
    if frame is None or not any(s in frame for s in shares):
        return None
    value = max(float(frame[s].max()) for s in shares if s in frame and frame[s].notna().any())
    return Gauge(f"largest share of {' / '.join(keys)} cap inputs beyond cap/2", value, min(ENGAGED[s] for s in shares))


def window_gauge(frame: pd.DataFrame | None) -> Gauge | None:
    if frame is None or "window/mass_beyond" not in frame or not frame["window/mass_beyond"].notna().any():
        return None
    return Gauge("largest share of the global layers' attention beyond the window",
                 float(frame["window/mass_beyond"].max()), ENGAGED["window/mass_beyond"])  # fmt: skip


def teacher_gauge(frame: pd.DataFrame | None, size: str) -> Gauge | None:
    """What the teacher had left to teach: the student trained from scratch minus its teacher (val/loss; the
    teacher's own loss is the distilled student's minus its logged gap)."""
    if frame is None or "distill/gap_final" not in frame:
        return None
    scratch = arm(frame, {"cascade.size": size, "cascade.training": "scratch"}, "val/loss")
    distilled = arm(frame, {"cascade.size": size, "cascade.training": "distilled"}, "distill/gap_final")
    if scratch.empty or distilled.empty:
        return None
    teacher = float((distilled["val/loss"] - distilled["distill/gap_final"]).mean())
    return Gauge("student from scratch minus its teacher, val/loss (nats)", float(scratch["val/loss"].mean()) - teacher,
                 0.01)  # fmt: skip


def capped(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if frame is None else studies.with_capping(frame)


def mitigated(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if frame is None else frame.assign(mitigation=[studies.mitigation_of(r) for _, r in frame.iterrows()])


@functools.cache
def real_scale() -> pd.DataFrame:
    return studies.real_scale().set_index("model")


def window_evals(e: Evidence, fraction: float) -> Measured:
    """val/loss of the W=32 runs evaluated at fraction x W, minus as trained (the same checkpoints)."""
    frame = e.frame("window_at_inference")
    if frame is None:
        return not_measured("the study has no runs")
    evals = evaluations(frame, e.run_root)
    if evals.empty:
        return not_measured("no evaluation records: python analysis/evaluate.py --group G attn.window=32,16,8")
    trained = int(frame["attn.window"].min())
    evals = evals[evals["attn.window"] == trained]
    window = evals["eval/window"].fillna(trained)
    arms = np.select([window == trained * fraction, window == trained], ["shrunk", "trained"], "other")
    return contrast(evals.assign(arm=arms), "val/loss", {"arm": "shrunk"}, {"arm": "trained"})


def lr_sensitivities(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per seed and capping arm: Wortsman et al.'s LR sensitivity (studies.sensitivity_per_seed)."""
    frame = capped(frame)
    if frame is None:
        return None
    rows = [{"capping": capping, "seed": seed, "status": "finished", "sensitivity": value,
             "model.init": runs["model.init"].iloc[0]}
            for capping, runs in frame.groupby("capping")
            for seed, (value, _) in studies.sensitivity_per_seed(runs).items()]  # fmt: skip
    return pd.DataFrame(rows)


def tuned(e: Evidence, a: str, b: str) -> Measured:
    """norm=a minus norm=b, each at its own best LR (the tuned study's comparison runs, test/loss)."""
    frame = e.frame("norm_tuned")
    if frame is None:
        return not_measured("the tuned study has no runs")
    choices = choose(e.run_root, frame["tune.selection"].dropna().iloc[0])
    keys = [arm_key(yaml.safe_load(RunDir(e.run_root, i).config_path.read_text())) for i in frame["run_id"]]
    best = [choices[k].lr if k in choices else math.nan for k in keys]
    at_best = frame[[same_value(lr, b_lr) for lr, b_lr in zip(frame["optim.lr"], best, strict=True)]]
    edges = {frame["norm"].iloc[i] for i, k in enumerate(keys) if k in choices and choices[k].edge}
    if edges & {a, b}:
        return not_measured(f"the best LR of norm={'/'.join(sorted(edges & {a, b}))} is at its grid's edge")
    return contrast(at_best, TEST, {"norm": a}, {"norm": b})


def largest_rung(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """A ladder's runs at its largest size: where its claims are read, and their gauges."""
    return None if frame is None else frame[frame["scale.rung"] == frame["scale.rung"].max()]


def ladder_effect(study: str, minuend: str, at_rung: Callable[[pd.DataFrame], Measured]
                  ) -> Callable[[Evidence], tuple[Measured, str]]:  # fmt: skip
    """The effect at the ladder's largest rung (`at_rung` of its runs: the value, CI, n and detectable effect of
    the test the runs allow), and the fit's slope and extrapolation to 9B as a note, signed as that effect:
    `minuend` begins the label of the arm it subtracts from (scaling.ladder's `other`)."""

    def measure(e: Evidence) -> tuple[Measured, str]:
        frame = e.frame(study)
        if frame is None:
            return not_measured("the ladder has no runs"), ""
        measured = at_rung(largest_rung(frame))
        _, _, drawn = scaling.ladder(frame)
        if not drawn["points"]:
            return measured, "no rung with an effect CI"
        sign = 1 if drawn["other"].startswith(minuend) else -1  # the ladder's effect is other minus base
        note = f"{len(drawn['points'])} rungs, largest {10 ** drawn['points'][-1][0]:,.0f} non-embedding parameters"
        if (fit := drawn["fit"]) is not None:
            mean, half = fit.predict(math.log10(scaling.gemma2_parameters()["gemma2-9b"]))
            note += (f"; slope {sign * fit.slope:+.4f} ± {fit.slope_ci():.4f} per decade; extrapolated to 9B "
                     f"{sign * mean:+.3f} ± {half:.3f} (a straight line over many decades)")  # fmt: skip
        return measured, note

    return measure


def deeper_minus_wider(frame: pd.DataFrame | None) -> Measured:
    """test/loss of the runs with more layers minus those with fewer (deep vs wide at equal parameters)."""
    if frame is None:
        return not_measured("the study has no runs")
    layers = frame["model.n_layers"].astype(int)
    return contrast(frame, TEST, {"model.n_layers": int(layers.max())}, {"model.n_layers": int(layers.min())})


@dataclass(frozen=True)
class Claim:
    id: str
    topic: str
    source: str
    statement: str  # the claim as stated
    quantity: str  # what is measured, and its sign
    low: float  # the range of the quantity the claim asserts
    high: float
    study: str | None  # the paper study that measures it; None: analytic, from the presets
    measure: Callable[[Evidence], Measured | tuple[Measured, str]]
    gauge: Callable[[Evidence], Gauge | None] = lambda e: None


def sc(e: Evidence) -> pd.DataFrame | None:
    return capped(e.frame("softcap"))


def kv(e: Evidence) -> pd.DataFrame | None:
    """The kv_heads study with each run's kind: mha (a KV head per query head), mqa (one), gqa (between)."""
    frame = e.frame("kv_heads")
    if frame is None:
        return None
    k, h = frame["attn.kv_heads"].astype(int), frame["model.n_heads"].astype(int)
    return frame.assign(kv=np.where(k == h, "mha", np.where(k == 1, "mqa", "gqa")))


def inst(e: Evidence) -> pd.DataFrame | None:
    return mitigated(e.frame("instability"))


def at_lr(frame: pd.DataFrame | None, lr: float) -> pd.DataFrame | None:
    return None if frame is None else frame[[same_value(v, lr) for v in frame["optim.lr"]]]


def cascade_rows(size: str) -> Claim:
    return Claim(
        f"table7-{size}", "distillation", "Gemma 2 Table 7", "a distilled student beats the same model trained "
        "from scratch on the same tokens", f"{size}: {TEST} distilled - scratch (nats)", -INF, 0, "cascade",
        lambda e: contrast(e.frame("cascade"), TEST, {"cascade.size": size, "cascade.training": "distilled"},
                           {"cascade.size": size, "cascade.training": "scratch"}),
        lambda e: teacher_gauge(e.frame("cascade"), size),
    )  # fmt: skip


def cascade_compute(e: Evidence) -> Measured:
    frame = e.frame("cascade")
    flops = {} if frame is None else studies.production_flops(frame)
    if "small" not in flops or len(flops) < 2:
        return not_measured("no distilled small student")
    own, produced = flops["small"]
    return exact(produced / own)


def kv_cache(id: str, statement: str, model: str, column: str, stated_gb: float) -> Claim:
    """A KV-cache size the brief states, against the one computed from the preset (within 5%)."""
    return Claim(id, "grouped-query attention", "brief", statement, f"computed from the {model} preset (GB)",
                 stated_gb * 0.95, stated_gb * 1.05, None, lambda e: exact(real_scale().loc[model, column]))


def post_norm_share(name: str, context: int) -> float:
    """The FLOPs the post-norms add per training token, in % of the model's (model/accounting.py): two more
    RMSNorms per layer, ~4 FLOPs per element each (square, mean, scale, gain), forward + backward = 3 x."""
    config = preset(name)
    with torch.device("meta"):
        total = training_flops_per_token(Decoder(config), context)
    return 100 * 3 * 2 * config.n_layers * 4 * config.d_model / total


CLAIMS: tuple[Claim, ...] = (
    Claim("softcap-spikes", "soft-capping", "brief", "training loss spikes > 0.5: ~15 without capping, 2 with (-87%)",
          "loss spikes, on - off (count)", -INF, 0, "softcap",
          lambda e: contrast(sc(e), "stability/loss_spikes", {"capping": "on"}, {"capping": "off"}),
          lambda e: caps_gauge(sc(e))),
    Claim("softcap-gradvar", "soft-capping", "brief", "gradient-norm variance 2.4 without capping, 0.8 with (-67%)",
          "grad-norm variance after warmup, on - off (% of off)", -INF, 0, "softcap",
          lambda e: contrast(sc(e), "stability/grad_norm_var", {"capping": "on"}, {"capping": "off"}, relative=True),
          lambda e: caps_gauge(sc(e))),
    Claim("softcap-quality", "soft-capping", "brief", "final model quality +1.2% average with capping",
          f"{TEST}, on - off (% of off)", -INF, 0, "softcap",
          lambda e: contrast(sc(e), TEST, {"capping": "on"}, {"capping": "off"}, relative=True),
          lambda e: caps_gauge(sc(e))),
    Claim("softcap-ladder", "soft-capping", "brief", "final model quality +1.2% average with capping (across scale)",
          f"{TEST}, off - on, at the ladder's largest rung (nats)", 0, INF, "softcap_ladder",
          ladder_effect("softcap_ladder", "softcap.attn=off",
                        lambda f: contrast(capped(f), TEST, {"capping": "off"}, {"capping": "on"})),
          lambda e: caps_gauge(largest_rung(e.frame("softcap_ladder")))),  # where the verdict is read
    Claim("softcap-blowup", "soft-capping", "Wortsman et al. 2023", "a final-logit cap prevents output-logit "
          "divergence (tiny model, LR 1.0, nothing else holding it)", "steps with loss > 2 ln(V), softcap - none",
          -INF, 0, "instability",
          lambda e: contrast(at_lr(inst(e), 1.0), "stability/blowup_steps", {"mitigation": "softcap"},
                             {"mitigation": "none"}),
          lambda e: caps_gauge(at_lr(inst(e), 1.0), ("final",))),
    Claim("softcap-lr-sensitivity", "soft-capping", "Wortsman et al. 2023", "capping logits lowers the sensitivity "
          "of the final loss to the learning rate", "LR sensitivity (nats), on - off", -INF, 0, "lr_sensitivity",
          lambda e: contrast(lr_sensitivities(e.frame("lr_sensitivity")), "sensitivity", {"capping": "on"},
                             {"capping": "off"}),
          lambda e: caps_gauge(e.frame("lr_sensitivity"))),
    Claim("qknorm-logits", "stability", "Wortsman et al. 2023", "QK-layernorm stops attention-logit growth "
          "(LR 0.3)", "largest attention logit, qk_norm - none (% of none)", -INF, 0, "instability",
          lambda e: contrast(at_lr(inst(e), 0.3), "attn/max_logit", {"mitigation": "qk_norm"}, {"mitigation": "none"},
                             relative=True)),
    Claim("zloss-blowup", "stability", "Wortsman et al. 2023", "z-loss prevents output-logit divergence (LR 1.0)",
          "steps with loss > 2 ln(V), z_loss - none", -INF, 0, "instability",
          lambda e: contrast(at_lr(inst(e), 1.0), "stability/blowup_steps", {"mitigation": "z_loss"},
                             {"mitigation": "none"})),
    Claim("norm-dual-vs-pre", "norm placement", "brief", "dual (pre + post) norm: best quality (+1.2% vs pre-only)",
          f"{TEST}, dual - pre (% of pre)", -INF, 0, "norm",
          lambda e: contrast(e.frame("norm"), TEST, {"norm": "dual"}, {"norm": "pre"}, relative=True)),
    Claim("norm-dual-vs-post", "norm placement", "brief", "dual norm beats post-norm only (+1.2% vs +0.5%)",
          f"{TEST}, dual - post (% of post)", -INF, 0, "norm",
          lambda e: contrast(e.frame("norm"), TEST, {"norm": "dual"}, {"norm": "post"}, relative=True)),
    Claim("norm-post-quality", "norm placement", "brief", "post-norm only: +0.5% quality over pre-norm",
          f"{TEST}, post - pre (% of pre)", -INF, 0, "norm",
          lambda e: contrast(e.frame("norm"), TEST, {"norm": "post"}, {"norm": "pre"}, relative=True)),
    Claim("norm-postln-spikes", "norm placement", "brief", "post-norm only: poor stability (loss spikes)",
          "loss spikes, postln - pre (count)", 0, INF, "norm",
          lambda e: contrast(e.frame("norm"), "stability/loss_spikes", {"norm": "postln"}, {"norm": "pre"})),
    Claim("norm-dual-tuned", "norm placement", "brief", "dual norm is best, each placement at its own best LR",
          f"{TEST}, dual - pre, each at its tuned LR (nats)", -INF, 0, "norm_tuned", lambda e: tuned(e, "dual", "pre")),
    Claim("norm-compute", "norm placement", "brief", "post-norm adds < 1% compute",
          "9B at 8K: the two post-norms' FLOPs per training token / all training FLOPs per token (%)", 0, 1, None,
          lambda e: exact(post_norm_share("gemma2-9b", 8192))),
    Claim("attn-work", "attention pattern", "brief", "alternating local (4096) / global (8192): ~50% less attention "
          "work than full attention in every layer", "9B at 8K: score entries saved vs full (%, causal)", 40, 60,
          None, lambda e: exact(float(real_scale().loc["gemma2-9b", "attention saving"].rstrip("%")))),
    Claim("attn-memory", "attention pattern", "brief", "~50% memory reduction vs full attention in every layer",
          "9B at 8K: KV cache saved, local layers keeping their last W (%)", 40, 60, None,
          lambda e: exact(float(real_scale().loc["gemma2-9b", "KV cache saving, alt + rolling local"].rstrip("%")))),
    Claim("table10-half", "attention pattern", "Gemma 2 Table 10", "a model trained with window W evaluated at W/2 "
          "loses almost nothing (ppl 1.63 -> 1.63)", "val/loss at W/2 - at W, same checkpoints (nats; ±0.01 = ±1% "
          "ppl)", -0.01, 0.01, "window_at_inference", lambda e: window_evals(e, 0.5),
          lambda e: window_gauge(e.frame("window_at_inference"))),
    Claim("table10-quarter", "attention pattern", "Gemma 2 Table 10", "evaluated at W/4: ppl 1.63 -> 1.64",
          "val/loss at W/4 - at W, same checkpoints (nats)", -0.01, 0.01, "window_at_inference",
          lambda e: window_evals(e, 0.25), lambda e: window_gauge(e.frame("window_at_inference"))),
    kv_cache("gqa-cache-mha", "9B KV cache at 8K, bf16, MHA (16 KV heads): 5.5 GB", "gemma2-9b",
             "KV cache 8K, MHA (GB)", 5.5),
    kv_cache("gqa-cache-gqa", "9B KV cache at 8K, bf16, GQA (8 KV heads): 2.75 GB", "gemma2-9b",
             "KV cache 8K, as built (GB)", 2.75),
    kv_cache("gqa-cache-2b", "KV cache at 8K: Gemma 2 2B (GQA) 842 MB", "gemma2-2b", "KV cache 8K, as built (GB)",
             0.842),
    kv_cache("mqa-cache-2b", "KV cache at 8K: Gemma 1 2B (MQA) 421 MB", "gemma1-2b", "KV cache 8K, as built (GB)",
             0.421),
    Claim("gqa-vs-mha", "grouped-query attention", "brief", "quality ordering MQA < GQA < MHA: MHA beats GQA",
          f"{TEST}, GQA - MHA (nats)", 0, INF, "kv_heads",
          lambda e: contrast(kv(e), TEST, {"kv": "gqa"}, {"kv": "mha"})),
    Claim("mqa-vs-gqa", "grouped-query attention", "brief", "quality ordering MQA < GQA < MHA: GQA beats MQA",
          f"{TEST}, MQA - GQA (nats)", 0, INF, "kv_heads",
          lambda e: contrast(kv(e), TEST, {"kv": "mqa"}, {"kv": "gqa"})),
    Claim("gqa-keeps", "grouped-query attention", "brief", "GQA keeps ~95-98% of MHA quality",
          f"{TEST}, GQA - MHA (% of MHA; claimed: within 5%)", -5, 5, "kv_heads",
          lambda e: contrast(kv(e), TEST, {"kv": "gqa"}, {"kv": "mha"}, relative=True)),
    cascade_rows("middle"),
    cascade_rows("small"),
    Claim("distill-compute", "distillation", "brief", "comparable quality at ~50x less compute per distilled model",
          "FLOPs to produce the small distilled student, teachers' training and forward passes included, / its "
          "training from scratch (ratio; claimed <= 1/50)", 0, 1 / 50, "cascade", cascade_compute),
    Claim("distill-recipe", "distillation", "brief", "typically T = 2-4, alpha = 0.7-0.9",
          "a recipe's range, not an effect", -INF, INF, None,
          lambda e: not_measured("a stated recipe, not an effect; the cascade uses Gemma 2's alpha 1, T 1")),
    Claim("table9", "deep vs wide", "Gemma 2 Table 9", "at equal parameters a deeper, narrower model is better "
          "(9B: 52.0 vs 50.8 average score)", f"{TEST}, deep - wide (nats)", -INF, 0, "deep_wide",
          lambda e: deeper_minus_wider(e.frame("deep_wide"))),
    Claim("table9-ladder", "deep vs wide", "Gemma 2 Table 9", "at equal parameters a deeper, narrower model is "
          "better (across scale)", f"{TEST}, deep - wide, at the ladder's largest rung (nats)", -INF, 0,
          "deep_wide_ladder", ladder_effect("deep_wide_ladder", "scale.depth=1.5", deeper_minus_wider)),
    Claim("inference-speed", "inference", "brief", "Gemma 2 2B decodes 187 / 1,024 / 2,456 tokens/s at batch 1 / 8 / "
          "32 (A100 40GB), Gemma 1 2B 156 / 891 / 2,103", "tokens/s on an A100", -INF, INF, None,
          lambda e: not_measured(NO_GPU)),
    Claim("inference-memory", "inference", "brief", "peak memory 6.2 GB (Gemma 1 2B) vs 6.8 GB (Gemma 2 2B)",
          "peak GPU memory while decoding", -INF, INF, None, lambda e: not_measured(NO_GPU)),
)  # fmt: skip


def scale_of(frame: pd.DataFrame | None) -> str:
    """What a study was measured at: parameters and tokens per run (ranges where they vary)."""
    if frame is None:
        return "–"
    tokens = frame["trainer.max_steps"].astype(int) * frame.apply(studies.tokens_per_step, axis=1)
    params = frame["parameters"].dropna().astype(int) if "parameters" in frame else pd.Series(dtype=int)

    def span(values: pd.Series) -> str:
        lo, hi = human(values.min()), human(values.max())
        return lo if lo == hi else f"{lo}-{hi}"

    return f"{span(params) if len(params) else '?'} parameters, {span(tokens)} tokens/run"


def human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def findings(claims: tuple[Claim, ...], evidence: Evidence) -> list[dict[str, Any]]:
    """Every claim's row of findings.json, the directional claims' p-values Holm-adjusted within their family
    (the claim's topic: verdict.RULE)."""
    measured = {c.id: c.measure(evidence) for c in claims}
    p_of = {c.id: (m[0] if isinstance(m, tuple) else m).p for c, m in zip(claims, measured.values(), strict=True)}
    adjusted: dict[str, float] = {}
    for topic in dict.fromkeys(c.topic for c in claims):
        family = [c.id for c in claims if c.topic == topic and directional(c.low, c.high) and np.isfinite(p_of[c.id])]
        adjusted.update(zip(family, holm([p_of[i] for i in family]), strict=True))
    return [finding(c, evidence, measured[c.id], adjusted.get(c.id, math.nan)) for c in claims]


def finding(claim: Claim, evidence: Evidence, measured: Measured | tuple[Measured, str] | None = None,
            p_adjusted: float = math.nan) -> dict[str, Any]:  # fmt: skip
    """One row of findings.json: the claim, the measurement (with each seed's value), the gauge, p raw and
    adjusted within the claim's family, and the verdict (NaN as null)."""
    measured = claim.measure(evidence) if measured is None else measured
    measured, note = measured if isinstance(measured, tuple) else (measured, "")
    gauge = claim.gauge(evidence)
    frame = evidence.frame(claim.study) if claim.study else None
    return clean({
        "id": claim.id, "topic": claim.topic, "source": claim.source, "claim": claim.statement,
        "quantity": claim.quantity, "claimed": claimed_range(claim.low, claim.high),
        "study": claim.study or "analytic (presets)", "scale": scale_of(frame) if claim.study else "real size",
        "value": measured.value, "ci": measured.ci, "n": measured.n, "test": measured.test,
        "detectable": measured.detectable,
        "gauge": None if gauge is None else {"what": gauge.what, "value": gauge.value, "threshold": gauge.threshold,
                                              "engaged": gauge.engaged},
        "p": measured.p, "p_holm": p_adjusted, "family": claim.topic, "per_seed": list(measured.per_seed),
        "verdict": verdict(claim.low, claim.high, measured, gauge, p_adjusted), "note": note,
    })  # fmt: skip


def clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null, numpy scalars as Python numbers, floats to 6 significant digits."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value
