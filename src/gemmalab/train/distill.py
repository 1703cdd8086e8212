"""Distillation: the student learns from a frozen teacher's probabilities as well as the next token.

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, next token)

with p_T = softmax(logits / T). alpha = 1, T = 1 is Gemma 2's pure distillation. The T^2
factor keeps the gradient scale of the KL term independent of T (Hinton et al.).
The teacher is any finished run of this harness (a run directory, or a checkpoint inside
one); it may differ from the student in every architecture switch, but not in tokenizer
or vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gemmalab.data.packing import IGNORE
from gemmalab.errors import ConfigError, require_name, require_positive, require_range
from gemmalab.model import Decoder, model_config

ALIAS_PREFIX = "alias:"  # distill.teacher=alias:NAME: the finished run named NAME (runs/aliases.py)


@dataclass
class DistillConfig:
    enabled: bool = False
    teacher: str | None = None  # a run directory, a .ckpt inside one, or alias:NAME (see runs/aliases.py)
    temperature: float = 1.0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        if not self.teacher:
            raise ConfigError("distill.teacher=None is not allowed with distill=on (allowed: a run directory, "
                              "a checkpoint in one, or alias:NAME)")  # fmt: skip
        if self.teacher.startswith(ALIAS_PREFIX):
            require_name("distill.teacher", self.teacher.removeprefix(ALIAS_PREFIX), ALIAS_PREFIX)
        require_positive("distill.temperature", self.temperature, "a number > 0")
        require_range("distill.alpha", self.alpha, 0, 1, "a number in [0, 1]")


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, alpha: float, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, KL(teacher_T || student_T) per counted position, CE) over the positions with a target."""
    counted = (targets != IGNORE).flatten()
    student = student_logits.float().flatten(0, 1)[counted]
    teacher = teacher_logits.float().flatten(0, 1)[counted]
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
    ce = F.cross_entropy(student, targets.flatten()[counted])
    return alpha * temperature**2 * kl + (1 - alpha) * ce, kl, ce


def check_teacher_compatible(teacher: dict[str, Any], student: dict[str, Any]) -> None:
    """The teacher must predict over the student's vocabulary: same tokenizer, same vocabulary size."""
    for key, t_value, s_value in [
        ("data.tokenizer", teacher["data"]["tokenizer"], student["data"]["tokenizer"]),
        ("model.vocab_size", teacher["model"]["vocab_size"], student["model"]["vocab_size"]),
    ]:
        if t_value != s_value:
            raise ConfigError(f"distill.teacher has {key}={t_value!r} but the student has {s_value!r} "
                              f"(allowed: a teacher with {key}={s_value!r})")  # fmt: skip


def load_teacher(checkpoint: Path, config: dict[str, Any]) -> Decoder:
    """The teacher's Decoder (its run's resolved `config`) with the trained weights of `checkpoint`, frozen
    and in eval mode."""
    with torch.device("meta"):  # no random init: it would shift the student's seeded initialisation
        model = Decoder(model_config(config))
    from .checkpoints import load_checkpoint  # Lightning: only when a teacher is loaded

    state = load_checkpoint(checkpoint)["state_dict"]
    model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}, assign=True
    )
    model.eval().requires_grad_(False)
    return model
