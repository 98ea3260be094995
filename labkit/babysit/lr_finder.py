"""The LR range test: grow the learning rate exponentially for ~100 steps and watch the loss.

    from labkit.babysit.lr_finder import lr_range_test
    r = lr_range_test(config)            # 1e-7 -> 10 over 100 steps, the config's own data, model, optimizer
    r.steepest_lr, r.min_lr, r.suggestion()

Decisions a user should know:
- Each step uses the config's own pipeline (augmentation, batch size), loss
  (label smoothing, L1) and optimizer (momentum, weight decay, grad clipping);
  only the learning rate is overridden: lr_i = start * (end/start)^(i/(iters-1)).
- The loss is smoothed with a bias-corrected exponential moving average (as
  fastai and TensorBoard do); the test stops when the smoothed loss exceeds
  `diverge` times its best, or the loss is not finite.
- Two suggestions: `steepest_lr`, where the smoothed loss falls fastest per
  unit of log(lr) (a centred difference over +-5% of the steps, after the
  first 20%), and `min_lr`, the LR of the smoothed minimum divided by 10.
  `suggestion()` returns `min_lr` (falling back to `steepest_lr`): the
  steepest point moves with the noise of small batches, while one decade below
  the minimum is the rule Smith and fastai found safe for constant and
  one-cycle peak learning rates alike.
- The model and optimizer given (or built) are restored exactly afterwards:
  parameters, batch-norm running statistics, optimizer state (momentum
  buffers, Adam moments, learning rates), gradients, train/eval mode and
  torch's global RNG, so training after the test is bit-identical to training
  without it. With a fixed seed the test gives the same answer every time.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.sets import Data
from ..errors import LabkitError
from ..optimizers import build_optimizer, needs_closure


@dataclass
class LRFinderResult:
    """What the LR range test saw: the LR and (raw, smoothed) loss of each step, and its two suggestions."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    steepest_lr: float | None  # LR at the steepest descent of the smoothed loss (gradient in log lr)
    min_lr: float | None  # LR at the smoothed minimum, divided by 10
    stopped_early: bool
    reason: str
    start: float = 1e-7
    end: float = 10.0
    iters: int = 100
    stop_lr: float | None = None  # LR of the step that stopped the test (None when it ran to the end)
    config_lr: float | None = None  # the config's own optim.lr, for comparison
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def suggestion(self) -> float | None:
        """The LR to use: min_lr (the smoothed minimum / 10), else steepest_lr; None if the loss never fell."""
        return self.min_lr if self.min_lr is not None else self.steepest_lr

    def fix(self) -> dict[str, float]:
        """The suggestion as a config change, {"optim.lr": lr} to 3 digits; {} when there is none."""
        s = self.suggestion()
        return {"optim.lr": float(f"{s:.3g}")} if s is not None else {}

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite losses become None)."""
        d = asdict(self)
        for k in ("losses", "smoothed"):
            d[k] = [v if math.isfinite(v) else None for v in d[k]]
        d["suggestion"] = self.suggestion()
        d["fix"] = self.fix()
        return d

    def text(self) -> str:
        """Two readable lines: what ran, where it stopped, and the suggestions."""
        ran = (f"LR range test: lr {self.start:.3g} -> {self.end:.3g} over {self.iters} steps, "
               f"{len(self.lrs)} run; {self.reason}")
        fmt = lambda v: f"{v:.3g}" if v is not None else "none"  # noqa: E731
        s = self.suggestion()
        sugg = (f"  steepest descent: lr {fmt(self.steepest_lr)}   minimum / 10: lr {fmt(self.min_lr)}   "
                f"-> suggested lr {fmt(s)}")
        if s is not None and self.config_lr:
            sugg += f" (the config has {self.config_lr:.3g}, {self.config_lr / s:.2g}x that)"
        return ran + "\n" + sugg


def _check_args(start: float, end: float, iters: int, smooth: float, diverge: float) -> None:
    for name, v in (("start", start), ("end", end)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise LabkitError(f"LR range test {name}={v!r}; it must be a positive finite learning rate, "
                              f"e.g. start=1e-7, end=10")
    if start >= end:
        raise LabkitError(f"LR range test start={start:g} >= end={end:g}; the LR grows from start to end, "
                          f"so start must be the smaller one (e.g. start=1e-7, end=10)")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 5:
        raise LabkitError(f"LR range test iters={iters!r}; give a whole number >= 5 (about 100 is usual)")
    if not isinstance(smooth, (int, float)) or not 0 <= smooth < 1:
        raise LabkitError(f"LR range test smooth={smooth!r}; the EMA factor must be in [0, 1) (0.98 is usual)")
    if not isinstance(diverge, (int, float)) or not math.isfinite(diverge) or diverge <= 1:
        raise LabkitError(f"LR range test diverge={diverge!r}; the stop factor must be > 1 (4 is usual: "
                          f"stop when the smoothed loss is 4x its best)")


def suggestions(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """(steepest_lr, min_lr) from a smoothed loss curve; None where the curve is too short or never falls."""
    lr = np.asarray(lrs, dtype=float)
    sm = np.asarray(smoothed, dtype=float)
    ok = np.isfinite(sm)
    lr, sm = lr[ok], sm[ok]
    if len(sm) < 3:
        return None, None
    # the first points are nearly raw losses (the EMA has averaged few yet): their slope is noise, and
    # their LRs (the bottom fifth of the range) are never the useful ones
    skip = max(1, len(sm) // 5)
    # slope in log(lr) as a centred difference over +-w points (w = 5% of the steps), so that one noisy
    # batch cannot make the steepest point; np.gradient's neighbour differences often did on small batches
    w = max(1, len(sm) // 20)
    loglr = np.log(lr)
    idx = np.arange(len(sm))
    a, b = np.maximum(idx - w, 0), np.minimum(idx + w, len(sm) - 1)
    grad = (sm[b] - sm[a]) / np.maximum(loglr[b] - loglr[a], 1e-12)
    steep_i = skip + int(np.argmin(grad[skip:])) if len(sm) - skip >= 2 else None
    steepest = float(lr[steep_i]) if steep_i is not None and grad[steep_i] < 0 else None
    i_min = int(np.argmin(sm))
    # a minimum at the very first point means the loss never fell: no LR to suggest from it
    min_lr = float(lr[i_min] / 10) if i_min > 0 and sm[i_min] < sm[0] else None
    return steepest, min_lr


class _Saved:
    """Exact copies of everything a few training steps change, to put back afterwards."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer):
        self.model_state = copy.deepcopy(model.state_dict())  # parameters and BN running stats
        self.opt_state = copy.deepcopy(opt.state_dict())
        self.grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self.modes = [m.training for m in model.modules()]
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    def restore(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        model.load_state_dict(self.model_state)
        opt.load_state_dict(self.opt_state)
        for p, g in zip(model.parameters(), self.grads):
            p.grad = g
        for m, mode in zip(model.modules(), self.modes):
            m.training = mode
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def lr_range_test(config: Config, *, start: float = 1e-7, end: float = 10.0, iters: int = 100,
                  smooth: float = 0.98, diverge: float = 4.0, model: nn.Module | None = None,
                  optimizer: torch.optim.Optimizer | None = None, data: Data | None = None) -> LRFinderResult:
    """Run the LR range test on `config` (or on the given model/optimizer/data) and restore them exactly."""
    import time

    from ..training import own_threads

    _check_args(start, end, iters, smooth, diverge)
    cfg = config.copy().validate()
    if needs_closure(cfg.optim.name) or isinstance(optimizer, torch.optim.LBFGS):
        raise LabkitError(
            f"the LR range test cannot run with optimizer {cfg.optim.name!r}: L-BFGS chooses its own step length "
            f"by a line search (strong Wolfe), so its lr is not a learning rate the test could find; run the test "
            f"with a first-order optimizer (e.g. optimizer 'nesterov') or skip it (run_checks(lr_test=False); "
            f"`labkit check --no-lr-test`)")
    if model is None and optimizer is not None:
        raise LabkitError("lr_range_test got an optimizer without its model; pass model= too (or neither)")
    t0 = time.perf_counter()
    with own_threads(cfg):
        return _run(cfg, start, end, iters, smooth, diverge, model, optimizer, data, t0)


def _run(cfg: Config, start: float, end: float, iters: int, smooth: float, diverge: float, model: nn.Module | None,
         optimizer: torch.optim.Optimizer | None, data: Data | None, t0: float) -> LRFinderResult:
    import time

    from ..data.pipeline import TrainBatches
    from ..precision import resolve_precision
    from ..training import prepare
    from ..training.step import TrainStep, set_lr

    if model is None:
        built_data, model, optimizer, _ = prepare(cfg)
        data = data if data is not None else built_data
    elif data is None:
        from ..data.sets import load_data

        data = load_data(cfg.data, cfg.train.seed)
    if optimizer is None:
        optimizer = build_optimizer(model, cfg.optim)
    saved = _Saved(model, optimizer)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped, reason, stop_lr = False, f"ran all {iters} steps without diverging", None
    try:
        batches = TrainBatches(data, cfg.reg, cfg.train.batch_size, cfg.train.seed + 1)
        factor = (end / start) ** (1.0 / (iters - 1))
        step_fn = TrainStep(model, optimizer, cfg, resolve_precision(cfg))  # the run's own step and precision
        avg, best = 0.0, math.inf
        model.train()
        it = iter(())
        for i in range(iters):
            try:
                x, target, _ = next(it)
            except StopIteration:  # more steps than one epoch: keep drawing epochs from the same pipeline
                it = iter(batches.epoch())
                x, target, _ = next(it)
            lr = start * factor ** i
            set_lr(optimizer, lr)  # the base rate: groups keep their scales, as in training
            v = float(step_fn(x, target).loss)
            if not math.isfinite(v):
                stopped, stop_lr = True, lr
                reason = f"stopped at step {i + 1}: the loss became {v} at lr {lr:.3g}"
                break
            avg = smooth * avg + (1 - smooth) * v
            s = avg / (1 - smooth ** (i + 1))
            lrs.append(lr)
            losses.append(v)
            smoothed.append(s)
            if i > 0 and s > diverge * best:
                stopped, stop_lr = True, lr
                reason = (f"stopped at step {i + 1}, lr {lr:.3g}: the smoothed loss {s:.3g} exceeded "
                          f"{diverge:g}x its best ({best:.3g})")
                break
            best = min(best, s)
    finally:
        saved.restore(model, optimizer)
    # the stopping point is shown but not used: its loss is the divergence, not the landscape
    n = len(lrs) - 1 if stopped and stop_lr is not None and lrs and lrs[-1] == stop_lr else len(lrs)
    steepest, min_lr = suggestions(lrs[:n], smoothed[:n])
    return LRFinderResult(lrs, losses, smoothed, steepest, min_lr, stopped, reason, float(start), float(end), iters,
                          stop_lr, cfg.optim.lr, round(time.perf_counter() - t0, 3))
