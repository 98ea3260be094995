"""One training step, shared by the loop, the overfit check and the LR range test.

Forward in the run's precision, the loss (label smoothing, soft mixup/cutmix targets, L1), backward,
gradient clipping and the optimizer step, with a closure for L-BFGS. Because all three callers take this
step, what the checks and the LR test measure is what training does.

Learning rates are per parameter group: each group carries an `lr_scale` (1.0 unless a caller set one,
e.g. a pretrained backbone at 0.1), and `set_lr` writes `base * scale` into every group, so a schedule
or the LR test scales the groups instead of overwriting them with one number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..optimizers import needs_closure
from ..precision import autocast


def loss_fn(logits: torch.Tensor, target: torch.Tensor, config: Config, model: nn.Module) -> torch.Tensor:
    """Cross-entropy against (soft) targets with the config's label smoothing, plus the L1 penalty on weights."""
    loss = F.cross_entropy(logits, target, label_smoothing=config.reg.label_smoothing)
    if config.optim.l1 > 0:
        loss = loss + config.optim.l1 * sum(p.abs().sum() for p in model.parameters() if p.ndim > 1)
    return loss


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group the base rate `lr` times its own `lr_scale`."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The rate each named parameter group holds now (groups of one name share a rate)."""
    out: dict[str, float] = {}
    for i, g in enumerate(optimizer.param_groups):
        out.setdefault(str(g.get("name", i)), float(g["lr"]))
    return out


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The base rate the groups were set from: a group's rate divided by its scale (the first unscaled group's)."""
    groups = optimizer.param_groups
    g = next((g for g in groups if g.get("lr_scale", 1.0) == 1.0), groups[0])
    return float(g["lr"]) / g.get("lr_scale", 1.0)


@dataclass
class StepOutput:
    """What one step returns: the batch's loss and logits (detached), from the forward pass before the update."""

    loss: torch.Tensor
    logits: torch.Tensor


class TrainStep:
    """Forward, loss, backward, clip and update for one batch; `after_backward` callbacks see the gradients."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: Config, precision: str = "fp32",
                 after_backward: Sequence[Callable[[], None]] = ()):
        self.model, self.optimizer, self.config, self.precision = model, optimizer, config, precision
        self.after_backward = list(after_backward)
        self.closure = needs_closure(config.optim.name)  # the registry trait that names L-BFGS
        self.clip = config.optim.grad_clip

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of the batch in the run's precision, with the graph kept for backward."""
        with autocast(self.precision, x.device):
            logits = self.model(x)
            loss = loss_fn(logits, target, self.config, self.model)
        return logits, loss

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> StepOutput:
        """Take one optimizer step on (x, target); the output is the forward pass before the update."""
        opt = self.optimizer
        if self.closure:
            first: dict[str, torch.Tensor] = {}

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                logits, loss = self.forward(x, target)
                loss.backward()
                # L-BFGS re-evaluates during its line search: report the first evaluation, at the step's start
                first.setdefault("logits", logits.detach())
                first.setdefault("loss", loss.detach())
                return loss

            opt.step(closure)
            return StepOutput(first["loss"], first["logits"])
        logits, loss = self.forward(x, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for cb in self.after_backward:
            cb()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        opt.step()
        return StepOutput(loss.detach(), logits.detach())
