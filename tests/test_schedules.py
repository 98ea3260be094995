"""Schedules: closed forms, torch.optim.lr_scheduler equivalents, warmup, and preview == LR the run used."""
from __future__ import annotations

import math

import pytest
import torch

from labkit import Config, load_run, schedule_curve, train
from labkit.config import ScheduleConfig
from labkit.schedules import SCHEDULES, Schedule


def torch_curve(make, total: int, lr: float = 0.1) -> list[float]:
    """The LR a torch scheduler gives at each of `total` steps (stepped once per optimizer step)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def ours(total: int = 100, lr: float = 0.1, spe: int = 10, **kw) -> list[float]:
    return Schedule(ScheduleConfig(**kw), lr, total, spe).curve()


def close(a, b, tol=1e-9):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == pytest.approx(y, rel=1e-6, abs=tol), f"step {i}: {x} != {y}"


def test_constant():
    assert ours(name="constant") == [0.1] * 100


def test_cosine_closed_form_and_torch():
    c = ours(name="cosine")
    close(c, [0.05 * (1 + math.cos(math.pi * t / 100)) for t in range(100)])
    close(c, torch_curve(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100), 100))
    m = ours(name="cosine", min_lr=0.01)
    close(m, torch_curve(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100, eta_min=0.01), 100))


def test_linear_closed_form_and_torch():
    c = ours(name="linear")
    close(c, [0.1 * (1 - t / 100) for t in range(100)])
    close(c, torch_curve(lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.0, total_iters=100), 100))


def test_step_and_multistep_closed_form_and_torch():
    s = ours(name="step")  # x0.1 at 30/60/90%
    close(s, [0.1 * 0.1 ** sum(t >= m for m in (30, 60, 90)) for t in range(100)])
    close(s, torch_curve(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [30, 60, 90], 0.1), 100))
    e = ours(name="step", step_every=2.0, gamma=0.5)  # every 2 epochs of 10 steps
    close(e, torch_curve(lambda o: torch.optim.lr_scheduler.StepLR(o, 20, 0.5), 100))
    ms = ours(name="multistep", milestones=[0.5, 0.8], gamma=0.2)
    close(ms, torch_curve(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [50, 80], 0.2), 100))


def test_exponential_closed_form_and_torch():
    c = ours(name="exponential", gamma=0.01)
    close(c, [0.1 * 0.01 ** (t / 100) for t in range(100)])
    close(c, torch_curve(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.01 ** (1 / 100)), 100))


def test_invsqrt_closed_form():
    c = ours(name="invsqrt", warmup_epochs=1.0)  # warmup 10 steps, then a0 sqrt(10 / (t + 10))
    close(c[:10], [0.1 * (s + 1) / 10 for s in range(10)])
    close(c[10:], [0.1 * math.sqrt(10 / (t + 10)) for t in range(90)])
    plain = ours(name="invsqrt")
    close(plain, [0.1 / math.sqrt(t + 1) for t in range(100)])


def test_onecycle_matches_torch():
    c = ours(name="onecycle", total=200)
    t = torch_curve(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=200, pct_start=0.25, div_factor=25, final_div_factor=1e4,
        cycle_momentum=False), 200)
    close(c, t, tol=1e-12)
    assert max(c) == pytest.approx(0.1) and c[0] == pytest.approx(0.004) and c[-1] == pytest.approx(0.004 / 1e4)


def test_restarts_matches_torch():
    c = ours(name="restarts", restart_epochs=1.0, restart_mult=2.0, min_lr=0.001)
    t = torch_curve(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001), 100)
    close(c, t)
    assert c[10] == pytest.approx(0.1) and c[30] == pytest.approx(0.1) and c[70] == pytest.approx(0.1)


@pytest.mark.parametrize("name", [n for n in SCHEDULES.names() if not SCHEDULES.entry(n).traits.get("own_warmup")])
def test_warmup_in_front_of_every_schedule(name):  # onecycle rises by itself: tests/test_lectures.py
    c = ours(name=name, warmup_epochs=2.0)  # 20 warmup steps of 10 per epoch
    close(c[:20], [0.1 * (s + 1) / 20 for s in range(20)])
    rest = Schedule(ScheduleConfig(name=name, warmup_epochs=2.0), 0.1, 100, 10)
    for s in range(20, 100):
        assert c[s] == rest.shape(0.1, s - 20, 80, rest.cfg, 10)
    assert all(v > 0 for v in c[:20])


def test_preview_equals_lr_in_step_events(spirals_config):
    cfg = spirals_config.replace(**{"schedule.name": "cosine", "schedule.warmup_epochs": 1.0, "train.epochs": 3})
    preview = schedule_curve(cfg)
    run = train(cfg)
    seen = [r["lr"] for r in load_run(run.dir).rows("step")]
    assert len(preview) == len(seen) == 3 * (1000 // 32)
    assert seen == preview  # same numbers, not merely close
