"""The LightningModule: next-token cross-entropy on the Decoder, with the per-step signals a
stability study needs (loss, global grad norm before clipping, LR, throughput, logit growth)."""

from __future__ import annotations

import itertools
import math
import time

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F

from gemmalab.data.mqar import accuracy_by_distance
from gemmalab.data.packing import IGNORE
from gemmalab.model import Decoder, ModelConfig

from .config import OptimConfig, TrainerConfig
from .distill import DistillConfig, distillation_loss
from .schedule import build_optimizer
from .stability import StabilityConfig


class Diverged(RuntimeError):
    """Training produced a non-finite or runaway loss, or a non-finite gradient norm, at `step`."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"{what} at step {step}")
        self.step = step


def eval_sums(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[summed NLL, counted targets, correct argmax] over the positions that carry a target."""
    counted = targets != IGNORE
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum")
    correct = ((logits.argmax(-1) == targets) & counted).sum()
    return torch.stack([nll, counted.sum().float(), correct.float()])


def eval_metrics(sums: torch.Tensor, split: str = "val") -> dict[str, torch.Tensor]:
    nll, count, correct = sums
    loss = nll / count
    return {f"{split}/loss": loss, f"{split}/ppl": loss.exp(), f"{split}/accuracy": correct / count}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader, device: torch.device | str = "cpu", split: str = "val"
) -> dict[str, torch.Tensor]:
    """Validation metrics of `model` over `loader`, reduced in the validation loop's order (per-batch sums
    stacked, then summed), so a later evaluation of the same weights gives the logged figures exactly."""
    sums = [eval_sums(model(b["input_ids"].to(device)), b["targets"].to(device)) for b in loader]
    return eval_metrics(torch.stack(sums).sum(0), split)


def over_ranks(value: torch.Tensor | float, op: str, device: torch.device) -> torch.Tensor:
    """The value over every DDP rank ("mean", "sum" or "max"); the value itself in one process."""
    value = torch.as_tensor(value, dtype=torch.float32, device=device).detach()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return value / dist.get_world_size() if op == "mean" else value


class LMModule(L.LightningModule):
    def __init__(
        self,
        model_cfg: ModelConfig,
        optim: OptimConfig,
        trainer: TrainerConfig,
        stability: StabilityConfig | None = None,
        distill: DistillConfig | None = None,
        teacher: Decoder | None = None,
    ) -> None:
        super().__init__()
        self.model = Decoder(model_cfg)
        self.optim, self.max_steps, self.stats_every = optim, trainer.max_steps, trainer.stats_every
        self.stability = stability or StabilityConfig()
        self.distill = distill if teacher is not None else None
        # a tuple, not a submodule: the teacher is never trained, never checkpointed with the student
        self._teacher = (teacher,) if teacher is not None else ()
        self.runaway_loss = self.stability.diverge_factor * math.log(model_cfg.vocab_size)
        self._steps_above_runaway = 0
        self._step_started, self._step_tokens = 0.0, 0
        self._step_values: dict[str, list[torch.Tensor]] = {}  # per micro-batch, until the step's end
        self._val_sums: list[torch.Tensor] = []
        self._validated_at_step: int | None = None

    def _log_this_step_only(self, metrics: dict[str, torch.Tensor], step: int | None = None) -> None:
        # self.log would repeat these values at every later step until they are logged again;
        # signals measured every k steps go straight to the loggers instead.
        if self.trainer.is_global_zero and metrics:
            values = {k: float(v) for k, v in metrics.items()}
            for logger in self.loggers:
                logger.log_metrics(values, step=self.global_step if step is None else step)

    def on_fit_start(self) -> None:
        for teacher in self._teacher:
            teacher.to(self.device).eval()

    def _evaluate(self, model: torch.nn.Module, split: str = "val") -> dict[str, torch.Tensor]:
        """The split's metrics over the batches Lightning's validation (or test) loop would read:
        trainer.limit_val_batches (fast_dev_run's N) applies to the evaluations made here too."""
        loader = getattr(self.trainer.datamodule, f"{split}_dataloader")()
        limit = getattr(self.trainer, f"limit_{split}_batches")
        batches = int(len(loader) * limit) if isinstance(limit, float) else min(len(loader), limit)  # Lightning's rule
        if batches == 0:
            return {}
        was_training = model.training
        model.eval()
        metrics = evaluate(model, itertools.islice(loader, batches), self.device, split)
        model.train(was_training)
        return metrics

    def on_train_start(self) -> None:
        """Validation loss at initialisation (Wortsman et al.'s l0; the start of every val curve), and
        the teacher's own validation loss on the same batches."""
        if self.global_step > 0 or self.trainer.datamodule is None:
            return
        metrics = self._evaluate(self.model)
        if not metrics:  # trainer.limit_val_batches=0: no validation at all
            return
        # its own record: with val_every=1 the validation after step 0 is logged at step 0 as well
        metrics["val/loss_init"] = metrics["val/loss"]
        for teacher in self._teacher:
            metrics["teacher/val_loss"] = self._evaluate(teacher)["val/loss"]
        self._log_this_step_only(metrics)

    def _step_bounds(self, batch_idx: int) -> tuple[bool, bool]:
        """Is this micro-batch the first, the last of its optimizer step (trainer.accumulate_grad_batches)?"""
        k = self.trainer.accumulate_grad_batches
        return batch_idx % k == 0, (batch_idx + 1) % k == 0

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        if self._step_bounds(batch_idx)[0]:
            self._step_started, self._step_tokens, self._step_values = time.perf_counter(), 0, {}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        first, last = self._step_bounds(batch_idx)
        if first and self.stats_every > 0 and self.global_step % self.stats_every == 0:
            with self.model.recorder.recording() as stats:
                logits = self.model(batch["input_ids"])
            # under DDP, of the global batch: maxima the largest over ranks, fractions and means their mean
            # (an all-reduce per signal, on these steps only)
            self._log_this_step_only({k: over_ranks(v, "max" if "max" in k else "mean", self.device)
                                      for k, v in stats.items()})  # fmt: skip
        else:
            logits = self.model(batch["input_ids"])
        targets = batch["targets"]
        if self._teacher:
            with torch.no_grad():
                teacher_logits = self._teacher[0](batch["input_ids"])
            loss, kl, ce = distillation_loss(logits, teacher_logits, targets, self.distill.alpha,
                                             self.distill.temperature)  # fmt: skip
            values = {"train/distill_kl": kl, "train/ce": ce}
        else:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
            values = {}
        values["train/loss"] = loss
        if self.optim.z_loss > 0:
            # z-loss (PaLM; Wortsman et al.): pull log Z of the output softmax towards 0
            log_z = torch.logsumexp(logits.float(), dim=-1)[targets != IGNORE]
            values["train/z_loss"] = z_term = self.optim.z_loss * log_z.square().mean()
            loss = loss + z_term
        # an all-reduce per value and micro-batch (under DDP): ranks hold equal shares of the global batch, and
        # the divergence check must see the same loss on every rank
        for key, value in values.items():
            self._step_values.setdefault(key, []).append(over_ranks(value, "mean", self.device))
        self._step_tokens += batch["input_ids"].numel()
        if last:  # the step's values: means over its micro-batches, each as large as the others
            step = {k: torch.stack(v).mean() for k, v in self._step_values.items()}
            self._check_divergence(step["train/loss"])  # every rank decides alike
            self.log("train/loss", step.pop("train/loss"), on_step=True, on_epoch=False, prog_bar=True)
            self.log_dict(step, on_step=True, on_epoch=False)
            self.log("train/lr", self.lr_schedulers().get_last_lr()[0], on_step=True, on_epoch=False)
        return loss

    def _check_divergence(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise Diverged(self.global_step, "non-finite loss")
        above = loss.item() > self.runaway_loss  # a host-device sync every step: the decision is made on the host
        self._steps_above_runaway = self._steps_above_runaway + 1 if above else 0
        if self._steps_above_runaway >= self.stability.diverge_patience:
            raise Diverged(
                self.global_step,
                f"loss above {self.runaway_loss:.2f} for {self._steps_above_runaway} steps",
            )

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # The global L2 norm of all gradients, before clipping; with clipping off, only measured. Under DDP
        # the gradients are already averaged over ranks here: the norm is the global batch's on every rank.
        max_norm = self.optim.grad_clip if self.optim.grad_clip is not None else math.inf
        total = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        self.log("train/grad_norm", total, on_step=True, on_epoch=False)
        if not torch.isfinite(total):
            raise Diverged(self.global_step, "non-finite gradient norm")

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if not self._step_bounds(batch_idx)[1]:
            return
        seconds = time.perf_counter() - self._step_started
        # a logging all-reduce (under DDP), once per step: the sum of all ranks
        tokens_per_sec = over_ranks(self._step_tokens / seconds, "sum", self.device)
        self.log("train/tokens_per_sec", tokens_per_sec, on_step=True, on_epoch=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._val_sums.append(eval_sums(self.model(batch["input_ids"]), batch["targets"]))

    def on_validation_epoch_end(self) -> None:
        sums = torch.stack(self._val_sums).sum(0)
        self._val_sums.clear()
        self.log_dict(eval_metrics(sums), sync_dist=True, prog_bar=True)
        self._validated_at_step = self.global_step

    def on_train_end(self) -> None:
        """Validate the final weights when the last step was not a validation step (max_steps not a
        multiple of val_every), so that a run's val/loss, what the tables compare, is never stale; score them
        once on the held-out test split (test/loss, test/ppl, test/accuracy: data/config.py split_of; no choice
        reads it during training); on a recall task, also their accuracy by key-to-query distance."""
        if self.trainer.datamodule is None:
            return
        at_last_step = self.global_step - 1  # where Lightning logs a validation that follows a step
        if self._validated_at_step != self.global_step:
            self._log_this_step_only(self._evaluate(self.model), step=at_last_step)
        if len(self.trainer.datamodule.test_set):  # a corpus too small for one test sequence has none
            self._log_this_step_only(self._evaluate(self.model, "test"), step=at_last_step)
        by_distance = self._accuracy_by_distance()
        if by_distance:
            self._log_this_step_only(by_distance, step=at_last_step)

    @torch.no_grad()
    def _accuracy_by_distance(self) -> dict[str, float]:
        """Batches with a `distance` (data/mqar.py): accuracy per key-to-query distance bucket; else {}."""
        distances, correct = [], []
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in self.trainer.datamodule.val_dataloader():
                if "distance" not in batch:
                    return {}
                query = batch["targets"] != IGNORE
                predicted = self.model(batch["input_ids"].to(self.device)).argmax(-1).cpu()
                distances.append(batch["distance"][query])
                correct.append((predicted == batch["targets"])[query])
        finally:
            self.model.train(was_training)
        if not distances:
            return {}
        seq_len = self.trainer.datamodule.cfg.seq_len
        return accuracy_by_distance(torch.cat(distances), torch.cat(correct), seq_len, self.model.cfg.attn.window)

    def configure_optimizers(self):
        optimizer, schedule = build_optimizer(self.model, self.optim, self.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
