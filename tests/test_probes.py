"""Probes: statistics on layers with known outputs, the update ratio by hand, storage, and no effect on training."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from labkit import Config, ProbeEvent, train
from labkit.config import ProbeConfig
from labkit.data import Data
from labkit.errors import LabkitError
from labkit.training.probes import Probes, tensor_stats
from labkit.probe_history import ProbeHistory, read_probes
from labkit.runs import load_run
from labkit.schedules import Schedule
from labkit.config import ScheduleConfig
from labkit.training import TrainContext, TrainHook


def quick(tmp_path, **over) -> Config:
    base = {"data.dataset": "spirals", "model.kind": "mlp", "train.epochs": 3, "reg.label_smoothing": 0.0,
            "optim.weight_decay": 0.0, "train.out": str(tmp_path), "train.threads": 1, "probe.every": 5,
            "model.width": 16, "model.depth": 2}
    base.update(over)
    return Config().replace(**base)


class Tamper(TrainHook):
    """Before the first step, set the first Linear layer's weights (to force a layer's output)."""

    def __init__(self, fn):
        self.fn = fn

    def on_start(self, ctx):
        first = next(m for m in ctx.model.modules() if isinstance(m, nn.Linear))
        with torch.no_grad():
            self.fn(first)


# -- statistics of known tensors -------------------------------------------------------
def test_all_zero_relu_output_is_fully_dead():
    s = tensor_stats(torch.zeros(64, 16), "relu")
    assert s["dead"] == 1.0 and s["mean"] == 0.0 and s["std"] == 0.0 and s["saturated"] is None
    assert sum(s["hist"]) == 64 * 16


def test_dead_counts_channels_of_conv_maps():
    y = torch.rand(8, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    y[:, :3] = 0.0  # three of six channels never fire
    assert tensor_stats(y, "relu")["dead"] == pytest.approx(0.5)
    y[0, 0, 2, 2] = 0.3  # one positive value anywhere in the probe batch keeps the channel alive
    assert tensor_stats(y, "relu")["dead"] == pytest.approx(2 / 6)


def test_saturated_tanh_reads_near_one_and_healthy_tanh_low():
    torch.manual_seed(0)
    assert tensor_stats(torch.tanh(100 * torch.randn(256, 64)), "tanh")["saturated"] > 0.98
    assert tensor_stats(torch.tanh(0.5 * torch.randn(256, 64)), "tanh")["saturated"] < 0.05
    assert tensor_stats(torch.sigmoid(1000 * torch.randn(256, 64)), "sigmoid")["saturated"] > 0.98


def test_nan_layer_does_not_crash():
    y = torch.randn(32, 8)
    y[0, 0] = float("nan")
    s = tensor_stats(y, "relu")
    assert math.isfinite(s["mean"]) and sum(s["hist"]) == 32 * 8 - 1
    s = tensor_stats(torch.full((4, 4), float("nan")), "tanh")
    assert math.isnan(s["mean"]) and sum(s["hist"]) == 0


# -- through the training loop ---------------------------------------------------------
def test_layer_forced_to_zero_reads_dead_in_a_run(tmp_path):
    def kill(layer):
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.fill_(-1.0)

    # kaiming init zeroes the biases, so the second hidden layer sees all-zero inputs and outputs
    # relu(W @ 0 + 0) = 0 too: its units are dead as well. No gradient passes a ReLU at <= 0, so neither
    # hidden layer (nor the classifier's weight, whose input is 0) ever gets one: they stay dead for the
    # whole run, and only the classifier's bias learns.
    run = train(quick(tmp_path, **{"model.norm": "none", "model.init": "kaiming"}), hooks=[Tamper(kill)])
    h = read_probes(run.dir)
    assert len(h.layers) == 2 and len(h) >= 3
    for layer in h.layers:
        assert h.activation(layer) == "relu"
        assert list(h.series(layer, "dead")) == [1.0] * len(h), layer
        assert list(h.series(layer, "mean")) == [0.0] * len(h) and list(h.series(layer, "std")) == [0.0] * len(h)
    *frozen, classifier_bias = h.params
    assert classifier_bias.endswith("bias") and all(h.param_series(classifier_bias, "grad_norm") > 0)
    for param in frozen:
        assert list(h.param_series(param, "grad_norm")) == [0.0] * len(h), param


def test_saturated_tanh_layer_in_a_run(tmp_path):
    run = train(quick(tmp_path, **{"model.norm": "none", "model.activation": "tanh"}),
                hooks=[Tamper(lambda layer: layer.weight.mul_(1000.0))])
    s = read_probes(run.dir).snapshot(0)
    first = next(iter(s))
    assert s[first]["activation"] == "tanh" and s[first]["saturated"] > 0.9


def _points_data(n: int = 32) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] > 0).long()
    return Data("toy", "points", ["a", "b"], x, y, x[:0], y[:0], x[:0], y[:0], torch.zeros(2), torch.ones(2))


def test_update_ratio_matches_a_hand_computed_sgd_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    data = _points_data()
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    events = []
    ctx = TrainContext(Config(), data, model, opt, Schedule(ScheduleConfig(name="constant"), lr, 10, 1), events.append)
    probes = Probes(ProbeConfig(every=1, batch=16))
    probes.on_start(ctx)
    x, y = data.to_input(data.train_x), data.train_y
    w0 = model[0].weight.detach().clone()
    g = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model[0].weight)[0]
    expected = (lr * g).norm().item() / w0.norm().item()  # ||w1 - w0|| / ||w0|| for SGD: lr ||g|| / ||w0||

    ctx.step = 0
    probes.before_step(ctx)
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    probes.after_backward(ctx)
    opt.step()
    ctx.step = 1
    probes.after_step(ctx)

    (ev,) = events
    assert isinstance(ev, ProbeEvent) and ev.step == 0
    p = ev.params["0.weight"]
    assert p["update_ratio"] == pytest.approx(expected, rel=1e-4)
    assert p["norm"] == pytest.approx(w0.norm().item(), rel=1e-5)
    assert p["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-4)
    layer = ev.layers["1"]
    assert layer["activation"] == "relu" and layer["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-4)
    assert layer["act_grad_norm"] is not None and layer["act_grad_norm"] > 0
    assert len(layer["hist"]) == 40 and sum(layer["hist"]) == 16 * 8


def test_probes_do_not_change_training(tmp_path):
    over = {"model.dropout": 0.2, "model.norm": "batch"}  # dropout draws RNG, batch norm keeps running stats
    on = train(quick(tmp_path, **over))
    off = train(quick(tmp_path, **over, **{"probe.every": 0}))
    loss = lambda r: [m["loss"] for m in r.metrics if m["kind"] == "step"]
    val = lambda r: [m["val_loss"] for m in r.metrics if m["kind"] == "epoch"]
    assert loss(on) == loss(off) and val(on) == val(off)
    assert len(read_probes(on.dir)) > 0 and len(read_probes(off.dir)) == 0


def test_snapshots_are_stored_compactly_and_read_back(tmp_path):
    live = []
    run = train(quick(tmp_path, **{"probe.pre_activation": True}), callbacks=[live.append])
    events = [e for e in live if isinstance(e, ProbeEvent)]
    h = read_probes(run.dir)
    steps = run.summary["steps"]
    assert h.steps == sorted({*range(0, steps, 5), steps - 1}) == [e.step for e in events]
    assert (run.dir / "probes.jsonl").stat().st_size < 3000 * len(h)  # a few KB per snapshot
    assert not any(r.get("kind") == "probe" for r in run.metrics)  # metrics.jsonl stays small
    assert len(load_run(run.dir).rows("probe")) == len(h)
    live_h = ProbeHistory.from_events(events)
    assert live_h.layers == h.layers and live_h.params == h.params
    layer = h.layers[-1]
    assert h.series(layer, "std") == pytest.approx(live_h.series(layer, "std"), rel=1e-3)
    assert h.param_series(h.params[0], "update_ratio") == pytest.approx(live_h.param_series(h.params[0], "update_ratio"), rel=1e-3)
    counts, (lo, hi) = h.hist(layer)
    assert counts.shape == (len(h), 40) and (lo, hi) == (-1.0, 4.0)
    assert "pre" in h.snapshot(-1)[layer] and h.series(layer, "mean", pre=True).shape == (len(h),)
    assert set(h.snapshot(-1)[layer]) >= {"activation", "mean", "std", "hist", "lo", "hi", "saturated", "dead",
                                          "grad_norm", "act_grad_norm"}
    from_dicts = ProbeHistory.from_events(json.loads(line) for line in (run.dir / "probes.jsonl").read_text().splitlines())
    assert len(from_dicts) == len(h)


def test_torn_probe_file_is_read_up_to_the_tear(tmp_path):
    run = train(quick(tmp_path))
    n = len(read_probes(run.dir))
    with open(run.dir / "probes.jsonl", "a") as f:
        f.write('{"kind":"probe","step":999,"layers":{"net.3":{"mea')
    assert len(read_probes(run.dir)) == n


class Poison(TrainHook):
    """After step 2, the first layer's weights become NaN: the next step's activations and loss are NaN."""

    def after_step(self, ctx):
        if ctx.step == 2:
            with torch.no_grad():
                next(m for m in ctx.model.modules() if isinstance(m, nn.Linear)).weight.fill_(float("nan"))


def test_nan_layer_run_diverges_and_keeps_its_last_snapshot(tmp_path):
    run = train(quick(tmp_path, **{"probe.every": 1}), hooks=[Poison()])
    assert run.status == "diverged"
    h = read_probes(run.dir)
    assert h.steps == [0, 1, 2]
    assert math.isnan(h.series(h.layers[0], "mean")[-1]) and math.isfinite(h.series(h.layers[0], "mean")[0])
    assert math.isnan(h.param_series(h.params[0], "update_ratio")[-1])  # the step was never taken


def test_closure_optimizer_records_gradients(tmp_path):
    run = train(quick(tmp_path, **{"optim.name": "lbfgs", "optim.lr": 0.5, "train.epochs": 1}))
    h = read_probes(run.dir)
    assert all(v > 0 for v in h.param_series(h.params[0], "grad_norm"))


def test_probe_config_is_on_by_default_and_validated():
    assert Config().probe.every > 0
    with pytest.raises(LabkitError, match=r"probe\.bins=1 is out of range"):
        Probes(ProbeConfig(bins=1))
