from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from gemmalab.data import DataConfig, LMDataModule
from gemmalab.model import preset
from gemmalab.runs.metrics_logger import RunStoreLogger
from gemmalab.runs.store import RunDir
from gemmalab.train import LMModule, OptimConfig, TrainerConfig, fit
from gemmalab.train.module import evaluate

BRIEF = DataConfig(seq_len=16, batch_size=2, val_batches=1, max_tokens=50_000)  # train_briefly's data


def train_briefly(
    tmp_path, optim: OptimConfig, steps: int = 1, stats_every: int = 1, val_every: int | None = None,
    precision: str = "32-true",
):  # fmt: skip
    L.seed_everything(0, verbose=False)
    data = BRIEF
    trainer_cfg = TrainerConfig(max_steps=steps, val_every=val_every or steps, ckpt_every=steps,
                                stats_every=stats_every, progress_bar=False, precision=precision)  # fmt: skip
    module = LMModule(preset("tiny"), optim, trainer_cfg)
    initial = copy.deepcopy(module.model)
    run = RunDir(tmp_path, "run")
    run.create("seed: 0\n")
    fit(
        module,
        LMDataModule(data, 0, steps, 256, tmp_path),
        trainer_cfg,
        run.last_checkpoint_path,
        run.previous_checkpoint_path,
        [RunStoreLogger(run)],
        should_stop=lambda: False,
    )
    first_batch = next(iter(LMDataModule(data, 0, steps, 256, tmp_path).train_dataloader()))  # no trainer: from step 0
    return module, initial, run.metrics(), first_batch


@pytest.mark.parametrize("grad_clip", [None, 1e-3])
def test_logged_grad_norm_is_the_total_norm_before_clipping(tmp_path, grad_clip):
    module, initial, metrics, batch = train_briefly(tmp_path, OptimConfig(grad_clip=grad_clip, warmup_steps=0))
    loss = F.cross_entropy(initial(batch["input_ids"]).flatten(0, 1), batch["targets"].flatten())
    loss.backward()
    expected = torch.nn.utils.clip_grad_norm_(initial.parameters(), max_norm=math.inf)
    logged = metrics[0]["train/grad_norm"]
    assert logged == pytest.approx(float(expected), rel=1e-5)
    assert metrics[0]["train/loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert logged > 1e-3  # so with grad_clip=1e-3 the clipping did bite


@pytest.fixture(scope="module")
def five_steps(tmp_path_factory):
    """One fit shared by the tests that only read it: 5 steps, 2 of warmup, stats every 2nd step, validation
    after step 3 (and at the end: 5 is no multiple of 3)."""
    root = tmp_path_factory.mktemp("five_steps")
    module, initial, metrics, _ = train_briefly(root, OptimConfig(warmup_steps=2), steps=5, stats_every=2,
                                                val_every=3)  # fmt: skip
    return root, module, initial, metrics


def validation_batch(root, steps: int) -> dict:
    """The one validation batch of train_briefly's data."""
    (batch,) = LMDataModule(BRIEF, 0, steps, 256, root).val_dataloader()
    return batch


def test_every_step_logs_the_training_signals(five_steps):
    _, _, _, metrics = five_steps
    for step in range(5):
        assert {"train/loss", "train/grad_norm", "train/lr", "train/tokens_per_sec"} <= metrics[step].keys()
    # warmup over 2 steps, then cosine to 0.1 of the peak at the last step
    assert [metrics[s]["train/lr"] for s in range(5)] == pytest.approx([1.5e-3, 3e-3, 3e-3, 1.65e-3, 3e-4])
    validated = [s for s in metrics if "val/loss" in metrics[s]]
    assert validated and metrics[validated[-1]]["val/ppl"] == pytest.approx(
        math.exp(metrics[validated[-1]]["val/loss"])
    )


def test_signals_measured_every_k_steps_appear_only_on_those_steps(five_steps):
    _, _, _, metrics = five_steps
    for signal in ("attn/max_logit/layer_0", "attn/max_logit/layer_1", "output/log_z"):
        assert [s for s in range(5) if signal in metrics[s]] == [0, 2, 4], signal
    assert metrics[0]["attn/max_logit/layer_0"] != metrics[2]["attn/max_logit/layer_0"]


def test_validation_loss_is_logged_at_initialisation(five_steps):
    root, _, initial, metrics = five_steps
    batch = validation_batch(root, 5)
    with torch.no_grad():
        expected = F.cross_entropy(initial(batch["input_ids"]).flatten(0, 1), batch["targets"].flatten())
    assert metrics[0]["val/loss"] == pytest.approx(expected.item(), rel=1e-6)


def test_the_final_weights_are_validated_when_the_last_step_is_not_a_validation_step(five_steps):
    root, module, _, metrics = five_steps
    validated = sorted(s for s in metrics if "val/loss" in metrics[s])
    assert validated == [0, 2, 4]  # init, after step 3, after step 5 (Lightning's index: step - 1)
    batch = validation_batch(root, 5)
    with torch.no_grad():
        expected = F.cross_entropy(module.model(batch["input_ids"]).flatten(0, 1), batch["targets"].flatten())
    assert metrics[4]["val/loss"] == pytest.approx(expected.item(), rel=1e-6)


def test_bf16_mixed_training_on_cpu_runs_every_kernel_and_learns(tmp_path):
    module, initial, metrics, _ = train_briefly(tmp_path, OptimConfig(warmup_steps=0), steps=6, precision="bf16-mixed")
    losses = [metrics[s]["train/loss"] for s in range(6)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in module.model.parameters())  # mixed: float32 master weights


def test_z_loss_adds_the_log_z_penalty(tmp_path):
    _, initial, metrics, batch = train_briefly(tmp_path, OptimConfig(z_loss=1e-2), steps=1)
    with torch.no_grad():
        log_z = torch.logsumexp(initial(batch["input_ids"]), dim=-1)
    assert metrics[0]["train/z_loss"] == pytest.approx(1e-2 * log_z.square().mean().item(), rel=1e-5)


def test_the_initial_validation_loss_keeps_its_own_record_when_validating_every_step(tmp_path):
    _, initial, metrics, _ = train_briefly(tmp_path, OptimConfig(), steps=3, val_every=1)
    batch = validation_batch(tmp_path, 3)
    with torch.no_grad():
        expected = F.cross_entropy(initial(batch["input_ids"]).flatten(0, 1), batch["targets"].flatten())
    assert metrics[0]["val/loss_init"] == pytest.approx(expected.item(), rel=1e-6)
    assert metrics[0]["val/loss"] != pytest.approx(expected.item(), rel=1e-6)  # overwritten by the step-0 validation


def fit_tiny(tmp_path, name: str, batch_size: int = 2, val_batches: int = 3, **trainer):
    """Four steps of the tiny model, every step logged to a run store; the module and its metrics."""
    L.seed_everything(0, verbose=False)
    data = DataConfig(seq_len=16, batch_size=batch_size, val_batches=val_batches, max_tokens=50_000)
    cfg = TrainerConfig(max_steps=4, val_every=2, ckpt_every=4, progress_bar=False, **trainer)
    module = LMModule(preset("tiny"), OptimConfig(warmup_steps=0), cfg)
    run = RunDir(tmp_path, name)
    run.create("seed: 0\n")
    fit(module, LMDataModule(data, 0, 4, 256, tmp_path), cfg, run.last_checkpoint_path, run.previous_checkpoint_path,
        [RunStoreLogger(run)], should_stop=lambda: False)  # fmt: skip
    return module, run.metrics(), run


def test_accumulating_two_micro_batches_trains_as_one_batch_twice_as_large(tmp_path):
    whole, whole_metrics, _ = fit_tiny(tmp_path, "whole", batch_size=4)
    split, split_metrics, _ = fit_tiny(tmp_path, "split", batch_size=2, accumulate_grad_batches=2)
    for step in range(4):  # one record per optimizer step: the step's mean loss over its micro-batches
        for key in ("train/loss", "train/grad_norm", "train/lr"):
            assert split_metrics[step][key] == pytest.approx(whole_metrics[step][key], rel=1e-5), (step, key)
    assert max((a - b).abs().max().item() for a, b in zip(whole.parameters(), split.parameters(), strict=True)) < 1e-4
    alone, alone_metrics, _ = fit_tiny(tmp_path, "alone", batch_size=2)  # half the batch, not accumulated
    assert alone_metrics[1]["train/loss"] != pytest.approx(whole_metrics[1]["train/loss"], rel=1e-3)


def test_limit_val_batches_applies_to_every_validation_and_0_turns_it_off(tmp_path):
    module, limited, _ = fit_tiny(tmp_path, "one", limit_val_batches=1)
    loader = module.trainer.datamodule.val_dataloader()
    first = evaluate(module.model, [next(iter(loader))])["val/loss"]
    assert limited[3]["val/loss"] == pytest.approx(float(first))  # the final weights, on one batch of three
    assert float(evaluate(module.model, loader)["val/loss"]) != pytest.approx(float(first))
    _, off, _ = fit_tiny(tmp_path, "off", limit_val_batches=0)
    assert not any(k.startswith("val/") for m in off.values() for k in m) and off[3]["train/loss"] > 0


def test_fast_dev_run_keeps_nothing_and_the_profiler_reports_into_the_run_directory(tmp_path):
    _, metrics, run = fit_tiny(tmp_path, "fdr", fast_dev_run=2)
    assert metrics == {} and not run.last_checkpoint_path.exists()
    _, metrics, run = fit_tiny(tmp_path, "profiled", profiler="simple")
    assert "run_training_batch" in (run.path / "fit-profile.txt").read_text() and len(metrics) == 4
