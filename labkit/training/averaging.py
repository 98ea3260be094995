"""Weight averaging as hooks: an exponential moving average of the weights (EMA, Polyak) and SWA.

Each keeps a `torch.optim.swa_utils.AveragedModel` beside the trained model and offers it to the loop as
evaluated weights ("ema", "swa"): validated at every epoch's end (the learning curves draw it beside the raw
weights), tested at the end (`final.ema_test_acc` in summary.json beside `final.test_acc` of best.pt), and
saved as ema.pt / swa.pt beside best.pt. Averaging reads the weights and never changes them, so the raw
weights train exactly as without it.

Batch norm: an average of weights needs its own batch statistics. `avg_bn="recompute"` recomputes them with
`update_bn` on training images (un-augmented) before each evaluation; `"average"` averages the running
buffers with the same weights as the parameters (`use_buffers=True`). benchmarks/ensembles.py measures both.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn, update_bn

from ..config import Config
from ..data.pipeline import eval_batches
from ..data.sets import Data
from ..errors import LabkitError
from ..precision import autocast, resolve_precision
from .hooks import EpochResult, TrainContext, TrainHook, state_of

EMA, SWA = "ema", "swa"  # their names among the evaluated weights (and their checkpoint files: ema.pt, swa.pt)
BN_MODES = ("recompute", "average")
# update_bn's pass: a strided sample of this many training images. An EMA scored the same with its statistics from
# 500, 2,000 or all 5,000 training images (63.52, 63.48, 63.45% test; previous default recipe, one seed); 1,000
# take 0.12 s per epoch on the default recipe (2 threads), a fifth of an epoch's forward passes.
BN_IMAGES = 1000


def ema_decay(decay: float, warmup: float, updates: int) -> float:
    """The decay of the EMA update that follows `updates` averaged weights: min(decay, 1 - (1 + updates)^-warmup).

    timm's ModelEmaV3 warm-up: with warmup=1 the average is the plain mean of every weight so far (update n
    gives the new weights 1/(n+1)); a smaller power forgets faster, and the decay reaches `decay` after
    (1 - decay)^(-1/warmup) - 1 updates (0.999 at power 3/4: 10,000). warmup=0: `decay` from the first update.
    """
    if warmup <= 0:
        return decay
    return min(decay, 1.0 - (1.0 + updates) ** -warmup)


def has_batch_norm(model: nn.Module) -> bool:
    """Whether the model keeps running batch statistics (averaged weights then need theirs)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules())


def bn_batches(data: Data, batch_size: int, images: int = BN_IMAGES) -> Iterator[torch.Tensor]:
    """Normalized, un-augmented training inputs for update_bn: a strided sample of about `images` examples."""
    stride = max(1, math.ceil(len(data.train_y) / max(1, images)))
    sample = Data(data.name, data.kind, data.classes, data.train_x[::stride], data.train_y[::stride],
                  data.val_x[:0], data.val_y[:0], data.test_x[:0], data.test_y[:0], data.mean, data.std)
    for x, _ in eval_batches(sample, "train", batch_size):
        yield x


def recompute_bn(averaged: nn.Module, data: Data, config: Config, images: int = BN_IMAGES) -> None:
    """Batch statistics of `averaged` from training images (torch's update_bn), in the run's precision.

    The global RNG is put back afterwards: a dropout layer draws from it in train mode, and the run's own
    draws must not depend on whether averaging is on.
    """
    rng = torch.get_rng_state()
    try:
        with autocast(resolve_precision(config), next(averaged.parameters()).device):
            update_bn(bn_batches(data, config.train.eval_batch_size, images), averaged)
    finally:
        torch.set_rng_state(rng)


class AveragedWeights(TrainHook):
    """What EMA and SWA share: the AveragedModel, its batch norm, its checkpoint and its lines in summary.json."""

    name = "averaged"

    def __init__(self, bn: str = "recompute", name: str | None = None):
        if bn not in BN_MODES:
            raise LabkitError(f"unknown avg_bn {bn!r}; choose one of: {', '.join(BN_MODES)}")
        self.bn = bn
        self.bn_images = BN_IMAGES
        self.name = name or self.name
        self.avg: AveragedModel | None = None
        self.best: float | None = None
        self.info: dict[str, Any] = {}

    def make(self, model: nn.Module, multi_avg_fn: Any) -> AveragedModel:
        """The AveragedModel; with bn="average" it averages the running buffers too."""
        return AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=self.bn == "average")

    def update(self, ctx: TrainContext) -> None:
        """Fold the model's current weights into the average."""
        self.avg.update_parameters(ctx.model)
        self.info["updates"] = int(self.avg.n_averaged)

    def refresh_bn(self, ctx: TrainContext) -> None:
        """Before an evaluation: recompute the average's batch statistics (bn="recompute" and a BN model)."""
        if self.bn == "recompute" and has_batch_norm(self.avg.module):
            recompute_bn(self.avg, ctx.data, ctx.config, self.bn_images)

    def on_epoch_end(self, ctx: TrainContext, result: EpochResult) -> None:
        if self.name not in result.val:
            return
        loss, acc = result.val[self.name]
        self.info.update(val_loss=loss, val_acc=acc)
        if acc is not None and math.isfinite(acc) and (self.best is None or acc > self.best):
            self.best = acc
            self.info.update(best_val_acc=acc, best_epoch=result.epoch)

    def on_end(self, ctx: TrainContext) -> None:
        if self.avg is not None and int(self.avg.n_averaged) > 0 and ctx.run_dir is not None:
            torch.save(state_of(self.avg), ctx.run_dir / f"{self.name}.pt")
            self.info["checkpoint"] = f"{self.name}.pt"
        ctx.summary[self.name] = dict(self.info)


class EMAHook(AveragedWeights):
    """An exponential moving average of the weights, updated after every step (Polyak averaging).

    `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`; with a warm-up, each update asks
    get_ema_multi_avg_fn for the decay of that update (see `ema_decay`).
    """

    name = EMA

    def __init__(self, decay: float, warmup: float = 0.667, bn: str = "recompute", name: str | None = None):
        super().__init__(bn, name)
        if not 0 < decay < 1:
            raise LabkitError(f"EMA decay {decay!r} is out of range; allowed: (0, 1), e.g. 0.999")
        self.decay, self.warmup = float(decay), float(warmup)
        self.last_decay = 0.0

    def _warmed(self, averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        self.last_decay = ema_decay(self.decay, self.warmup, int(n))
        get_ema_multi_avg_fn(self.last_decay)(averaged, current, n)

    def on_start(self, ctx: TrainContext) -> None:
        fn = self._warmed if self.warmup > 0 else get_ema_multi_avg_fn(self.decay)
        self.last_decay = self.decay if self.warmup <= 0 else 0.0
        self.avg = self.make(ctx.model, fn)  # the first update (after step 1) copies: the initialization is left out
        self.info = {"decay": self.decay, "warmup": self.warmup, "bn": self.bn, "updates": 0,
                     "half_life_steps": round(math.log(0.5) / math.log(self.decay), 1)}

    def eval_weights(self, ctx: TrainContext) -> dict[str, nn.Module]:
        return {self.name: self.avg}

    def after_step(self, ctx: TrainContext) -> None:
        self.update(ctx)
        self.info["last_decay"] = round(self.last_decay, 6)
        if ctx.step % ctx.schedule.steps_per_epoch == 0 or ctx.step >= ctx.schedule.total_steps:
            self.refresh_bn(ctx)  # the epoch's last step: validation comes next


class SWAHook(AveragedWeights):
    """Stochastic weight averaging: from `start` (epochs) on, the equal average of the weights at each epoch's end.

    The learning rate from `start` on is SWALR's (see labkit.schedules.make_schedule). The averaged weights join
    the evaluated weights at their first average, so the curves show SWA only where it exists.
    """

    name = SWA

    def __init__(self, start: float, lr: float, bn: str = "recompute", name: str | None = None):
        super().__init__(bn, name)
        self.start, self.lr = float(start), float(lr)
        self.points: set[int] = set()

    def on_start(self, ctx: TrainContext) -> None:
        s = ctx.schedule
        first = min(s.total_steps, round(self.start * s.steps_per_epoch))
        if first >= s.total_steps:
            raise LabkitError(f"train.swa_start={self.start:g} is not before the end of training "
                              f"({s.total_steps / s.steps_per_epoch:g} epochs); use a smaller --swa-start")
        # each epoch's end after the start, and the last step (a run of fractional epochs ends mid-epoch)
        self.points = {k for k in range(first + 1, s.total_steps + 1) if k % s.steps_per_epoch == 0}
        self.points.add(s.total_steps)
        self.avg = self.make(ctx.model, get_swa_multi_avg_fn())
        self.info = {"start_epoch": self.start, "start_step": first, "lr": self.lr, "bn": self.bn, "updates": 0,
                     "steps": []}

    def after_step(self, ctx: TrainContext) -> None:
        if ctx.step not in self.points:
            return
        self.update(ctx)
        self.info["steps"].append(ctx.step)
        self.refresh_bn(ctx)
        ctx.weights.setdefault(self.name, self.avg)  # from now on validated each epoch and tested at the end


def config_hooks(config: Config) -> list[TrainHook]:
    """The averaging and snapshot hooks `config` asks for (train.ema, train.swa_start, train.snapshots)."""
    t = config.train
    hooks: list[TrainHook] = []
    if t.ema > 0:
        hooks.append(EMAHook(t.ema, t.ema_warmup, t.avg_bn))
    if t.swa_start > 0:
        hooks.append(SWAHook(t.swa_start, t.swa_lr, t.avg_bn))
    if t.snapshots > 1:
        from .snapshots import Snapshots

        hooks.append(Snapshots(t.snapshots))
    return hooks
