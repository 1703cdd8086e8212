from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from gemmalab.model import ConfigError, Decoder, preset
from gemmalab.runs.aliases import teacher_model
from gemmalab.runs.job import run_job
from gemmalab.runs.spec import JobSpec
from gemmalab.runs.store import RunDir
from gemmalab.train.distill import DistillConfig, distillation_loss

from ..conftest import TINY
from ..test_conf import compose_config


def test_loss_equals_a_hand_computation():
    student = torch.tensor([[[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]])
    teacher = torch.tensor([[[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])
    targets = torch.tensor([[1, -100]])  # the second position carries no target
    t, alpha = 2.0, 0.7
    p = [math.exp(2.0 / t), math.exp(1.0 / t), math.exp(0.0 / t)]
    p = [v / sum(p) for v in p]
    q = [math.exp(1.0 / t), math.exp(2.0 / t), math.exp(0.5 / t)]
    q = [v / sum(q) for v in q]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    ce = -math.log(math.exp(2.0) / (math.exp(1.0) + math.exp(2.0) + math.exp(0.5)))
    total, got_kl, got_ce = distillation_loss(student, teacher, targets, alpha, t)
    assert got_kl.item() == pytest.approx(kl, rel=1e-6) and got_ce.item() == pytest.approx(ce, rel=1e-6)
    assert total.item() == pytest.approx(alpha * t * t * kl + (1 - alpha) * ce, rel=1e-6)


def test_identical_teacher_and_student_have_zero_kl():
    logits = torch.randn(2, 5, 11)
    _, kl, _ = distillation_loss(logits, logits.clone(), torch.zeros(2, 5, dtype=torch.long), 1.0, 1.0)
    assert abs(kl.item()) < 1e-6


def base(tmp_path, *overrides: str) -> dict:
    return compose_config(*TINY, "trainer.max_steps=6", "logger=none", f"run_root={tmp_path}", *overrides)


@pytest.fixture
def teacher_dir(tmp_path):
    config = base(tmp_path, "model=laptop", "attn.window=8", "norm=pre", "alias=teacher")
    assert run_job(config, ["alias=teacher"], group="t")["status"] == "finished"
    return tmp_path / (tmp_path / "_aliases" / "teacher").read_text().strip()


def test_alpha_zero_trains_exactly_like_plain_training_and_the_teacher_stays_frozen(tmp_path, teacher_dir):
    teacher_before = copy.deepcopy(teacher_model(str(teacher_dir)).state_dict())
    plain = run_job(base(tmp_path), [], group="s")
    distilled = run_job(base(tmp_path, "distill=on", f"distill.teacher={teacher_dir}", "distill.alpha=0.0"),
                        ["distill.alpha=0.0"], group="s")  # fmt: skip
    assert plain["status"] == distilled["status"] == "finished" and plain["run_id"] != distilled["run_id"]

    def curve(summary: dict, key: str) -> list[float]:
        return [m[key] for _, m in sorted(RunDir(tmp_path, summary["run_id"]).metrics().items()) if key in m]

    assert curve(plain, "train/loss") == curve(distilled, "train/ce") == curve(distilled, "train/loss")
    assert curve(plain, "val/loss") == curve(distilled, "val/loss")
    assert all(kl > 0 for kl in curve(distilled, "train/distill_kl"))
    assert distilled["teacher/val_loss"] < distilled["val/loss_init"]
    after = teacher_model(str(teacher_dir)).state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in after)


def test_pure_distillation_learns_from_the_teacher_by_alias(tmp_path, teacher_dir):
    summary = run_job(base(tmp_path, "distill=on", "distill.teacher=alias:teacher"), [], group="s")
    assert summary["status"] == "finished"
    config = yaml.safe_load((tmp_path / summary["run_id"] / "config.yaml").read_text())
    assert config["distill"]["teacher_run"] == f"{teacher_dir.name}/last.ckpt"
    assert summary["final"]["train/distill_kl"] < RunDir(tmp_path, summary["run_id"]).metrics()[0]["train/distill_kl"]


def test_a_mismatched_or_missing_teacher_is_refused_before_training(tmp_path, teacher_dir):
    with pytest.raises(ConfigError, match="distill.teacher has model.vocab_size=256 but the student has 512"):
        JobSpec.from_config(base(tmp_path, "distill=on", f"distill.teacher={teacher_dir}", "model.vocab_size=512"))
    with pytest.raises(ConfigError, match="is not a run directory or a checkpoint in one"):
        JobSpec.from_config(base(tmp_path, "distill=on", f"distill.teacher={tmp_path / 'nowhere'}"))
    with pytest.raises(ConfigError, match="names no finished run"):
        run_job(base(tmp_path, "distill=on", "distill.teacher=alias:nobody"), [], group="s")
    with pytest.raises(ConfigError, match="distill.alpha=1.5 is not allowed"):
        DistillConfig(enabled=True, teacher="x", alpha=1.5)


def test_teacher_is_not_part_of_the_students_parameters_or_checkpoint(tmp_path, teacher_dir):
    from gemmalab.train import LMModule, OptimConfig, TrainerConfig

    teacher = teacher_model(str(teacher_dir))
    module = LMModule(preset("tiny"), OptimConfig(), TrainerConfig(), None, DistillConfig(True, "x"), teacher)
    assert all(not k.startswith("teacher") for k in module.state_dict())
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in Decoder(preset("tiny")).parameters())
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
