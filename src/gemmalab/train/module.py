"""The LightningModule: next-token cross-entropy on the Decoder, with the per-step signals a
stability study needs (loss, global grad norm before clipping, LR, throughput, logit growth)."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F

from gemmalab.data.packing import IGNORE
from gemmalab.model import Decoder, ModelConfig

from .config import OptimConfig
from .schedule import build_optimizer


class Diverged(RuntimeError):
    """Training produced a non-finite loss or gradient norm at `step`."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"non-finite {what} at step {step}")
        self.step = step


class LMModule(L.LightningModule):
    def __init__(
        self, model_cfg: ModelConfig, optim: OptimConfig, max_steps: int, stats_every: int = 0, compile: bool = False
    ) -> None:
        super().__init__()
        self.model = Decoder(model_cfg)
        self.optim, self.max_steps, self.stats_every = optim, max_steps, stats_every
        self._forward = torch.compile(self.model) if compile else self.model
        self._step_started = 0.0
        self._val_sums: list[torch.Tensor] = []

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._step_started = time.perf_counter()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        with_stats = self.stats_every > 0 and self.global_step % self.stats_every == 0
        if with_stats:
            logits, stats = self._forward(batch["input_ids"], with_stats=True)
            self._log_this_step_only(stats)
        else:
            logits = self._forward(batch["input_ids"])
        loss = self.loss(logits, batch["targets"])
        if not torch.isfinite(loss):
            raise Diverged(self.global_step, "loss")
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], on_step=True, on_epoch=False)
        return loss

    def _log_this_step_only(self, metrics: dict[str, torch.Tensor]) -> None:
        # self.log would repeat these values at every later step until they are logged again;
        # signals measured every k steps go straight to the loggers instead.
        if self.trainer.is_global_zero:
            values = {k: float(v) for k, v in metrics.items()}
            for logger in self.loggers:
                logger.log_metrics(values, step=self.global_step)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # The global L2 norm of all gradients, before clipping; with clipping off, only measured.
        max_norm = self.optim.grad_clip if self.optim.grad_clip is not None else math.inf
        total = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        if not torch.isfinite(total):
            raise Diverged(self.global_step, "gradient norm")
        self.log("train/grad_norm", total, on_step=True, on_epoch=False)

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        seconds = time.perf_counter() - self._step_started
        self.log("train/tokens_per_sec", batch["input_ids"].numel() / seconds, on_step=True, on_epoch=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self._forward(batch["input_ids"])
        targets = batch["targets"]
        counted = targets != IGNORE
        nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum")
        correct = ((logits.argmax(-1) == targets) & counted).sum()
        self._val_sums.append(torch.stack([nll, counted.sum().float(), correct.float()]))

    def on_validation_epoch_end(self) -> None:
        nll, count, correct = torch.stack(self._val_sums).sum(0)
        self._val_sums.clear()
        loss = nll / count
        self.log_dict(
            {"val/loss": loss, "val/ppl": loss.exp(), "val/accuracy": correct / count}, sync_dist=True, prog_bar=True
        )

    def configure_optimizers(self):
        optimizer, schedule = build_optimizer(self.model, self.optim, self.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
