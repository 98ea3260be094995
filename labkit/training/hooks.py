"""The hook lifecycle of a run, and the hooks every run has: the best checkpoint and early stopping.

A hook sees the run at start, before and after each step (and after backward), at each epoch's end with
that epoch's validation result, and at the end. It may supply extra weights to validate, test and
checkpoint beside the trained model (weight averaging plugs in here: `eval_weights`, and setting
`ctx.monitor` to its name makes those weights the ones best.pt holds), write its own files into
`ctx.run_dir`, and end the run early with `ctx.request_stop`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..data.sets import Data
from ..events import Callback
from ..schedules import Schedule

MODEL = "model"  # the name of the trained weights themselves among the evaluated weights


@dataclass
class EpochResult:
    """One epoch's end: its running train metrics and the validation (loss, accuracy) of each evaluated weights."""

    epoch: int
    step: int
    train_loss: float
    train_acc: float
    val: dict[str, tuple[float | None, float | None]]
    improved: bool = False  # set by BestCheckpoint: the monitored score is the best so far

    def score(self, weights: str, monitor: str) -> float | None:
        """The monitored number (val_acc or val_loss) of `weights`, or None without a validation split."""
        loss, acc = self.val.get(weights, (None, None))
        return acc if monitor == "val_acc" else loss


@dataclass
class TrainContext:
    """What hooks see: the live objects of a run and where it is."""

    config: Config
    data: Data
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    emit: Callback
    run_dir: Path | None = None
    step: int = 0
    epoch: float = 0.0
    loss: float = float("nan")
    monitor: str = MODEL  # whose validation score picks best.pt and drives early stopping
    stop_message: str | None = None
    weights: dict[str, nn.Module] = field(default_factory=dict)  # every evaluated weights by name, the model first
    summary: dict[str, Any] = field(default_factory=dict)  # what hooks add to the run's summary.json

    def request_stop(self, message: str) -> None:
        """End the run after the current step or epoch, as completed, with `message` in its summary."""
        if self.stop_message is None:
            self.stop_message = message


class TrainHook:
    """Override any of these to take part in training; each gets the TrainContext."""

    def on_start(self, ctx: TrainContext) -> None: ...
    def before_step(self, ctx: TrainContext) -> None: ...
    def after_backward(self, ctx: TrainContext) -> None: ...
    def after_step(self, ctx: TrainContext) -> None: ...
    def on_epoch_end(self, ctx: TrainContext, result: EpochResult) -> None: ...
    def on_end(self, ctx: TrainContext) -> None: ...

    def eval_weights(self, ctx: TrainContext) -> dict[str, nn.Module]:
        """Weights to validate (each epoch) and test (at the end) beside the trained model, by name."""
        return {}


def state_of(module: nn.Module) -> dict[str, torch.Tensor]:
    """A plain model state dict (an AveragedModel's inner module, without its step counter)."""
    inner = getattr(module, "module", module)
    return inner.state_dict()


class BestCheckpoint(TrainHook):
    """Keeps best.pt: the monitored weights at the epoch with the best validation score (the last epoch without one)."""

    FILE = "best.pt"

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.best: float | None = None
        self.epoch = -1

    def on_epoch_end(self, ctx: TrainContext, result: EpochResult) -> None:
        score = result.score(ctx.monitor, self.monitor)
        if score is None:  # no validation split: the latest weights are the best we know
            score = float(-result.step)
            better = True
        else:
            higher = self.monitor == "val_acc"
            better = math.isfinite(score) and (self.best is None or (score > self.best if higher else score < self.best))
        if better:
            self.best, self.epoch, result.improved = score, result.epoch, True
            if ctx.run_dir is not None:
                torch.save(state_of(ctx.weights.get(ctx.monitor, ctx.model)), ctx.run_dir / self.FILE)


class EarlyStopping(TrainHook):
    """Stops the run after `patience` epochs without a better monitored score (0 = never)."""

    def __init__(self, patience: int, monitor: str):
        self.patience, self.monitor = patience, monitor
        self.bad = 0

    def on_epoch_end(self, ctx: TrainContext, result: EpochResult) -> None:
        self.bad = 0 if result.improved else self.bad + 1
        if self.patience and self.bad >= self.patience and ctx.step < ctx.schedule.total_steps:
            ctx.summary["early_stopped"] = True
            ctx.request_stop(f"early stop at epoch {result.epoch}: no {self.monitor} improvement "
                             f"for {self.patience} epochs")

