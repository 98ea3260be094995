"""The training core's wiring: the rate the optimizer really used, soft targets through the real pipeline,
the hook lifecycle, per-group learning rates, and the one step shared by the loop, the checks and the LR test."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from labkit import Config, LabkitError, load_run, train
from labkit.data import load_data
from labkit.optimizers import build_optimizer
from labkit.data.pipeline import TrainBatches
from labkit.training import MODEL, EpochResult, TrainContext, TrainHook, TrainStep, set_lr

from conftest import needs_cifar


def plain_sgd(cfg: Config, **more) -> Config:
    """SGD without momentum or decay: an update is exactly -lr * grad, so the rate used can be read off it."""
    return cfg.replace(**{"optim.name": "sgd", "optim.weight_decay": 0.0, "optim.lr": 0.05, **more})


class UsedRate(TrainHook):
    """Measures the rate each step really applied: -(w_after - w_before) / grad on the first weight matrix."""

    def __init__(self):
        self.rates: list[float] = []

    def on_start(self, ctx):
        self.w = next(p for p in ctx.model.parameters() if p.ndim > 1)

    def before_step(self, ctx):
        self.before = self.w.detach().clone()

    def after_backward(self, ctx):
        self.grad = self.w.grad.detach().clone()

    def after_step(self, ctx):
        delta = (self.w.detach() - self.before).flatten()
        g = self.grad.flatten()
        i = int(g.abs().argmax())
        self.rates.append(float(-delta[i] / g[i]))


def closed_form_cosine_with_warmup(a0: float, total: int, warmup: int) -> list[float]:
    """Linear warmup to a0 over `warmup` steps, then a0/2 (1 + cos(pi t/T)): written out here, not taken from labkit."""
    out = []
    for s in range(total):
        if s < warmup:
            out.append(a0 * (s + 1) / warmup)
        else:
            out.append(a0 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))))
    return out


def test_recorded_lr_is_the_rate_the_optimizer_applied(spirals_config):
    cfg = plain_sgd(spirals_config, **{"schedule.name": "cosine", "schedule.warmup_epochs": 1.0, "train.epochs": 3})
    used = UsedRate()
    run = train(cfg, hooks=[used])
    spe = 1000 // 32
    expected = closed_form_cosine_with_warmup(0.05, 3 * spe, spe)
    recorded = [r["lr"] for r in load_run(run.dir).rows("step")]
    assert recorded == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # what the optimizer did, measured on the weights, is the recorded rate (float32 updates: ~1e-4)
    assert used.rates == pytest.approx(expected, rel=2e-3, abs=1e-6)


def test_per_group_scales_reach_the_optimizer_and_the_log(spirals_config):
    cfg = plain_sgd(spirals_config, **{"schedule.name": "linear", "train.epochs": 2})
    run = train(cfg, lr_scales={"net.1": 0.1})  # the first Linear (after Flatten) at a tenth of the scheduled rate
    steps = load_run(run.dir).rows("step")
    spe = 1000 // 32
    base = [0.05 * (1 - s / (2 * spe)) for s in range(2 * spe)]
    assert [r["lr"] for r in steps] == pytest.approx(base, rel=1e-12)
    assert [r["lrs"]["net.1"] for r in steps] == pytest.approx([0.1 * b for b in base], rel=1e-12)
    assert [r["lrs"]["model"] for r in steps] == pytest.approx(base, rel=1e-12)


def test_group_scale_is_what_the_weights_feel(spirals_config):
    """A frozen-rate group (scale 0) keeps its weights exactly; the others move."""
    data = load_data(spirals_config.data, 0)
    from labkit.training import build_run_model

    model = build_run_model(spirals_config, data)
    opt = build_optimizer(model, plain_sgd(spirals_config).optim, lr_scales={"net.1": 0.0})
    set_lr(opt, 0.5)
    assert {g["name"]: g["lr"] for g in opt.param_groups} == {"model": 0.5, "net.1": 0.0}
    first, last = model.net[1].weight.detach().clone(), model.net[-1].weight.detach().clone()
    x, target, _ = next(iter(TrainBatches(data, spirals_config.reg, 32, 1).epoch()))
    TrainStep(model, opt, spirals_config)(x, target)
    assert torch.equal(model.net[1].weight, first) and not torch.equal(model.net[-1].weight, last)


def test_bad_lr_scales_are_refused_with_the_models_parts(spirals_config):
    with pytest.raises(LabkitError, match=r"'backbone'.*holds no parameter.*net"):
        train(spirals_config, lr_scales={"backbone": 0.1})
    with pytest.raises(LabkitError, match=r"out of range"):
        train(spirals_config, lr_scales={"net.1": -1.0})
    with pytest.raises(LabkitError, match="L-BFGS takes one parameter group"):
        train(spirals_config.replace(**{"optim.name": "lbfgs"}), lr_scales={"net.1": 0.1})


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_real_pipeline_keeps_soft_targets(mode):
    """A batch from the training pipeline with mixup/cutmix on carries blended targets, not one-hot ones."""
    cfg = Config().replace(**{"data.dataset": "blobs", "reg.label_smoothing": 0.0})
    if mode == "cutmix":  # cutmix needs images: a small synthetic image set through the same pipeline
        from labkit.data import Data

        g = torch.Generator().manual_seed(0)
        n = 64
        x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
        y = torch.arange(n) % 4
        data = Data("tiny", "image", ["a", "b", "c", "d"], x, y, x[:0], y[:0], x[:0], y[:0],
                    torch.zeros(3, 1, 1), torch.ones(3, 1, 1))
    else:
        data = load_data(cfg.data, 0)
    reg_on = cfg.reg.__class__(**{**cfg.reg.__dict__, "flip": False, "crop": 0, mode: 1.0})
    reg_off = cfg.reg.__class__(**{**cfg.reg.__dict__, "flip": False, "crop": 0})
    xs, targets, ys = next(iter(TrainBatches(data, reg_on, 32, seed=5).epoch()))
    plain, _, ys_plain = next(iter(TrainBatches(data, reg_off, 32, seed=5).epoch()))
    assert torch.equal(ys, ys_plain)  # same examples: the mix comes after the draws they share
    assert torch.allclose(targets.sum(1), torch.ones(len(ys)))
    assert float(targets.max(1).values.min()) < 1.0  # some row is really soft
    own = F.one_hot(ys, data.num_classes).float()
    other = own.roll(1, 0)  # the pipeline mixes each example with its neighbour in the batch
    if mode == "mixup":
        lam = float(((xs - plain.roll(1, 0)) / (plain - plain.roll(1, 0))).nanmedian())
        assert torch.allclose(targets, lam * own + (1 - lam) * other, atol=1e-5)
    else:
        pasted = (xs != plain).any(1).float()  # the box taken from the neighbour, per image
        area = float(pasted.mean(dim=(1, 2)).max())  # one box for the batch (an image's own pixels may match)
        assert 0 < area < 1
        assert torch.allclose(targets, (1 - area) * own + area * other, atol=1e-6)


class Lifecycle(TrainHook):
    """Records the order of lifecycle calls, supplies a second set of weights, and writes a file of its own."""

    def __init__(self):
        self.calls: list[str] = []
        self.results: list[EpochResult] = []

    def on_start(self, ctx):
        self.calls.append("start")
        self.frozen = copy.deepcopy(ctx.model)  # the weights at step 0: validated beside the trained ones

    def before_step(self, ctx):
        self.calls.append("before")

    def after_backward(self, ctx):
        self.calls.append("backward")

    def after_step(self, ctx):
        self.calls.append("after")

    def on_epoch_end(self, ctx, result):
        self.calls.append("epoch")
        self.results.append(result)
        (ctx.run_dir / "lifecycle.txt").write_text(f"epoch {result.epoch}\n")

    def on_end(self, ctx):
        self.calls.append("end")

    def eval_weights(self, ctx):
        return {"init": self.frozen}


def test_hook_lifecycle_order_eval_weights_and_files(spirals_config):
    hook = Lifecycle()
    cfg = spirals_config.replace(**{"train.epochs": 2, "train.batch_size": 500})  # 2 steps an epoch
    run = train(cfg, hooks=[hook])
    step = ["before", "backward", "after"]
    assert hook.calls == ["start", *step, *step, "epoch", *step, *step, "epoch", "end"]
    assert (run.dir / "lifecycle.txt").read_text() == "epoch 2\n"
    epochs = load_run(run.dir).rows("epoch")
    for r, res in zip(epochs, hook.results):
        assert set(res.val) == {MODEL, "init"}
        assert r["val_acc"] == res.val[MODEL][1]
        assert r["weights"]["init"]["val_acc"] == res.val["init"][1]
    assert epochs[0]["weights"]["init"] == epochs[1]["weights"]["init"]  # the frozen weights never trained
    final = json.loads((run.dir / "summary.json").read_text())["final"]
    assert "init_test_acc" in final and "test_acc" in final


class Monitor(TrainHook):
    """Makes the untrained copy the monitored weights: best.pt must then hold exactly those."""

    def on_start(self, ctx):
        self.frozen = copy.deepcopy(ctx.model)
        ctx.monitor = "frozen"

    def eval_weights(self, ctx):
        return {"frozen": self.frozen}


def test_a_hook_can_supply_the_checkpointed_weights(spirals_config):
    hook = Monitor()
    run = train(spirals_config.replace(**{"train.epochs": 2}), hooks=[hook])
    best = torch.load(run.dir / "best.pt", weights_only=True)
    for k, v in hook.frozen.state_dict().items():
        assert torch.equal(best[k], v)


def test_early_stopping_hook_ends_a_run_that_stops_improving(spirals_config):
    cfg = spirals_config.replace(**{"optim.lr": 1e-9, "schedule.name": "constant", "train.patience": 2,
                                    "train.epochs": 30, "train.monitor": "val_loss"})
    run = train(cfg)
    s = json.loads((run.dir / "summary.json").read_text())
    assert s["status"] == "completed" and s["early_stopped"] is True and "early stop at epoch" in s["message"]
    assert s["epochs"] < 30


def test_hook_can_stop_a_run_mid_epoch(spirals_config):
    class StopAt5(TrainHook):
        def after_step(self, ctx):
            if ctx.step == 5:
                ctx.request_stop("enough at step 5")

    run = train(spirals_config, hooks=[StopAt5()])
    s = json.loads((run.dir / "summary.json").read_text())
    assert s["status"] == "completed" and s["steps"] == 5 and s["message"] == "enough at step 5"


def test_finite_blow_up_is_a_divergence_with_the_files_kept(spirals_config):
    """lr 10 with batch norm on spirals sends the loss from ~1 to 1e5+ without overflowing: that is divergence."""
    cfg = spirals_config.replace(**{"optim.lr": 10.0, "schedule.name": "constant", "model.norm": "batch",
                                    "probe.every": 10})
    run = train(cfg)
    assert run.status == "diverged" and "lower the learning rate (try 1)" in run.message and "--" not in run.message
    s = json.loads((run.dir / "summary.json").read_text())
    assert s["status"] == "diverged" and len(load_run(run.dir).rows("step")) == s["steps"]


def test_checks_and_lr_test_take_the_training_step(spirals_config, monkeypatch):
    """The overfit check and the LR range test call TrainStep, the step the loop calls."""
    from labkit.babysit import checks, lr_finder
    from labkit.training import step as step_mod

    calls = {"n": 0}
    real = step_mod.TrainStep.__call__

    def counting(self, x, target):
        calls["n"] += 1
        return real(self, x, target)

    monkeypatch.setattr(step_mod.TrainStep, "__call__", counting)
    data = load_data(spirals_config.data, 0)
    res = checks.check_overfit(spirals_config, data, images=10, steps=20)
    assert calls["n"] == min(20, int(res.values["steps"]) + 1)  # each step until solved, the solving one too
    calls["n"] = 0
    out = lr_finder.lr_range_test(spirals_config, iters=15, end=1e-3, confirm=0)  # too low to diverge: all 15
    assert not out.stopped_early and calls["n"] == len(out.lrs) == 15
    calls["n"] = 0  # the short runs that pick the suggestion are runs of the loop: its step too
    out = lr_finder.lr_range_test(spirals_config, iters=15, confirm=2)
    assert out.trials and calls["n"] == len(out.lrs) + sum(t["steps"] for t in out.trials)


@needs_cifar
def test_cifar_step_events_carry_the_optimizers_rate(cifar_config):
    cfg = cifar_config.replace(**{"train.steps": 6, "schedule.name": "onecycle"})
    run = train(cfg)
    from labkit.schedules import schedule_curve

    assert [r["lr"] for r in load_run(run.dir).rows("step")] == pytest.approx(schedule_curve(cfg), rel=1e-12)
