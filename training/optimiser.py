"""The optimisation of a run: AdamW, a warm-up + cosine schedule per step, and the AMP scaler."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Optimisation:
    """What takes a training step; its state lives in the checkpoint under the same keys."""

    optimiser: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss`, then the schedule's step."""
        self.optimiser.zero_grad(set_to_none=True)
        # What `Tensor.backward` calls; this one is typed.
        torch.autograd.backward(self.scaler.scale(loss))
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        """The learning rate the next step takes."""
        return float(self.scheduler.get_last_lr()[0])

    def state_dict(self) -> dict[str, Any]:
        """The ``optimiser``, ``scheduler`` and ``scaler`` entries of a checkpoint."""
        return {
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``optimiser``, ``scheduler`` and ``scaler`` entries."""
        self.optimiser.load_state_dict(checkpoint["optimiser"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])


def build_optimisation(
    parameters: Iterable[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    total_steps: int,
    amp: bool,
) -> Optimisation:
    """AdamW over `parameters`, scheduled over `total_steps`; gradient scaling only with `amp`
    (FP16 autocast on CUDA)."""
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, warmup_cosine(total_steps))
    return Optimisation(optimiser, scheduler, torch.amp.GradScaler("cuda", enabled=amp))


def warmup_cosine(total_steps: int, warmup: int = 100) -> Callable[[int], float]:
    """The learning-rate factor per step: a linear warm-up, then cosine down to 2%."""
    # Short runs (tests, smoke runs) spend at most a tenth of their steps warming up.
    warmup = min(warmup, max(1, total_steps // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor
