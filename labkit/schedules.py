"""Learning-rate schedules as closed forms of the step number.

One object, `Schedule`, gives the LR at any step. The training loop writes
`schedule(step)` into the optimizer before every step, and `schedule_curve`
gives the whole curve for a config without training, so the preview, the
plot after training and the LR the optimizer saw are the same numbers.

Notation: a0 = peak LR, t = step after warmup, T = steps after warmup.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from .config import Config, ScheduleConfig
from .registry import Registry

# (a0, t, T, cfg, steps_per_epoch) -> lr
Shape = Callable[[float, int, int, ScheduleConfig, int], float]
SCHEDULES: Registry[Shape] = Registry("schedule")


@SCHEDULES.register("constant", "a0 throughout")
def _constant(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    return a0


def _milestone_steps(T: int, c: ScheduleConfig, spe: int) -> list[int]:
    if c.step_every > 0:
        every = max(1, round(c.step_every * spe))
        return list(range(every, T, every))
    return sorted(round(m * T) for m in c.milestones)


@SCHEDULES.register("step", "a0 * gamma^k after the k-th milestone (default x0.1 at 30/60/90%, or every step_every epochs)")
def _step(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    return a0 * c.gamma ** bisect.bisect_right(_milestone_steps(T, c, spe), t)


@SCHEDULES.register("multistep", "a0 * gamma^k at the given milestones (fractions of training)")
def _multistep(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    ms = sorted(round(m * T) for m in c.milestones)
    return a0 * c.gamma ** bisect.bisect_right(ms, t)


@SCHEDULES.register("exponential", "a0 * gamma^(t/T): decays by gamma over the whole run")
def _exponential(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    return a0 * c.gamma ** (t / max(1, T))


@SCHEDULES.register("cosine", "min + (a0-min)/2 (1 + cos(pi t/T))")
def _cosine(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    return c.min_lr + (a0 - c.min_lr) * 0.5 * (1 + math.cos(math.pi * t / max(1, T)))


@SCHEDULES.register("linear", "a0 (1 - t/T), down to min")
def _linear(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    return c.min_lr + (a0 - c.min_lr) * (1 - t / max(1, T))


@SCHEDULES.register("invsqrt", "a0 / sqrt(t), t counted from 1 (in warmup lengths when there is a warmup)")
def _invsqrt(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    tau = max(1, round(c.warmup_epochs * spe))
    return a0 * math.sqrt(tau / (t + tau))


# one-cycle's rise IS a warmup: a warmup in front of it would climb twice (0 -> a0, drop to a0/div, climb again).
# So with warmup_epochs set, the rise lasts the warmup (in place of pct_start): one climb to the peak, where
# a learner who asks for "warmup 2 epochs" expects the peak, then one-cycle's anneal.
@SCHEDULES.register("onecycle", "rise from a0/div to a0 over pct_start (or over the warmup, when set), then anneal to "
                    "a0/(div*final_div) (cosine; Smith 2018)", own_warmup=True)
def _onecycle(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    start = a0 / c.div_factor
    end = start / c.final_div_factor
    warm = round(c.warmup_epochs * spe)
    up = max(1.0, min(T - 1, warm - 1) if warm > 0 else c.pct_start * T - 1)
    down = max(1.0, T - 1 - up)
    if t <= up:
        lo, hi, p = start, a0, t / up
    else:
        lo, hi, p = a0, end, min(1.0, (t - up) / down)
    return hi + (lo - hi) * 0.5 * (1 + math.cos(math.pi * p))


@SCHEDULES.register("restarts", "cosine with warm restarts (SGDR): period restart_epochs, times restart_mult")
def _restarts(a0: float, t: int, T: int, c: ScheduleConfig, spe: int) -> float:
    period = max(1, round(c.restart_epochs * spe))
    while t >= period:
        t -= period
        period = max(1, round(period * c.restart_mult))
    return c.min_lr + (a0 - c.min_lr) * 0.5 * (1 + math.cos(math.pi * t / period))


@dataclass
class Schedule:
    """The LR at each step of a run: linear warmup, then the named shape over the rest (onecycle: its own rise)."""

    cfg: ScheduleConfig
    lr: float
    total_steps: int
    steps_per_epoch: int
    swa_from: int = -1  # SWA (train.swa_start): from this step on the rate is swa_rates[step - swa_from]
    swa_rates: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.shape = SCHEDULES.get(self.cfg.name)
        # a shape that warms up by itself (onecycle) gets the warmup's length instead of a ramp in front
        own = SCHEDULES.entry(self.cfg.name).traits.get("own_warmup", False)
        self.warmup = 0 if own else min(self.total_steps, round(self.cfg.warmup_epochs * self.steps_per_epoch))

    def __call__(self, step: int) -> float:
        """LR for optimizer step `step` (0-based)."""
        if 0 <= self.swa_from <= step:
            return self.swa_rates[min(step - self.swa_from, len(self.swa_rates) - 1)]
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        T = self.total_steps - self.warmup
        return self.shape(self.lr, step - self.warmup, T, self.cfg, self.steps_per_epoch)

    def curve(self) -> list[float]:
        """The LR at every step of the run."""
        return [self(s) for s in range(self.total_steps)]


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (the last short batch is dropped, so at least 1)."""
    return max(1, train_size // batch_size)


def total_steps(cfg: Config, train_size: int) -> int:
    """Steps the run will take: train.steps if set, else epochs x steps per epoch."""
    if cfg.train.steps > 0:
        return cfg.train.steps
    return max(1, round(cfg.train.epochs * steps_per_epoch(train_size, cfg.train.batch_size)))


REFERENCE_BATCH = 128  # the linear scaling rule's reference: lr is the rate for a batch of this many examples


def peak_lr(cfg: Config) -> float:
    """The peak rate a run uses: optim.lr, times batch_size / 128 under train.scale_lr=linear (Goyal et al. 2017)."""
    if cfg.train.scale_lr == "linear":
        return cfg.optim.lr * cfg.train.batch_size / REFERENCE_BATCH
    return cfg.optim.lr


def make_schedule(cfg: Config, train_size: int) -> Schedule:
    """The schedule a run of `cfg` on `train_size` training examples uses.

    Snapshot ensembles (train.snapshots = M > 1) replace the named shape by M equal cosine cycles after the
    warmup (the restarts shape with period multiplier 1); SWA (train.swa_start) hands the rate to SWALR from
    its start. Both happen here, so the preview, the plot and the optimizer see the same rates.
    """
    t = cfg.train
    spe = steps_per_epoch(train_size, t.batch_size)
    sched = Schedule(cfg.schedule, peak_lr(cfg), total_steps(cfg, train_size), spe)
    if t.snapshots > 1:
        period = snapshot_period(sched.total_steps - sched.warmup, t.snapshots)
        cycles = dataclasses.replace(cfg.schedule, name="restarts", restart_epochs=period / spe, restart_mult=1.0)
        sched = Schedule(cycles, sched.lr, sched.total_steps, spe)
    if t.swa_start > 0:
        start = min(sched.total_steps, round(t.swa_start * spe))
        sched.swa_rates = tuple(swa_rates(sched(start), t.swa_lr, anneal_steps=spe))
        sched.swa_from = start
    return sched


def snapshot_period(steps: int, cycles: int) -> int:
    """Steps per cosine cycle when `steps` are split into `cycles` (the last cycle is up to cycles-1 shorter)."""
    return max(1, math.ceil(steps / max(1, cycles)))


def snapshot_steps(schedule: Schedule, cycles: int) -> list[int]:
    """The step counts at which each of `cycles` cosine cycles ends: its snapshot is the weights after that step."""
    period = snapshot_period(schedule.total_steps - schedule.warmup, cycles)
    return [min(schedule.total_steps, schedule.warmup + k * period) for k in range(1, cycles + 1)]


def swa_rates(start_lr: float, swa_lr: float, anneal_steps: int) -> list[float]:
    """SWALR's rates, one per step from SWA's start: cosine from `start_lr` to `swa_lr` over `anneal_steps`, then
    constant (the last value holds for every later step). torch's SWALR computes them, on a throwaway optimizer."""
    import warnings

    import torch
    from torch.optim.swa_utils import SWALR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=start_lr)
    sched = SWALR(opt, swa_lr=swa_lr, anneal_epochs=max(1, anneal_steps), anneal_strategy="cos")
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": there is nothing to step
        for _ in range(max(1, anneal_steps) + 1):
            out.append(float(opt.param_groups[0]["lr"]))
            sched.step()
    return out


def schedule_curve(cfg: Config, train_size: int | None = None) -> list[float]:
    """The whole LR curve of a config, without training (train_size defaults to the data's)."""
    if train_size is None:
        from .data.sets import train_size_of

        train_size = train_size_of(cfg.data)
    return make_schedule(cfg, train_size).curve()
