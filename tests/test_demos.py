"""Lecture demos: the init pattern, optimizers via torch.optim, schedules, augmentation preview, and their CLI."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from labkit import LabkitError, demos, plots
from labkit.cli import main
from labkit.config import DataConfig, RegConfig, ScheduleConfig
from labkit.schedules import SCHEDULES, Schedule

HAS_CIFAR = (Path(os.environ.get("LABKIT_DATA", "/nonexistent")) / "cifar-10-batches-py").is_dir()


@pytest.fixture(scope="module")
def tanh_demo():
    return demos.init_demo("tanh")


def test_small_init_collapses_and_xavier_keeps_the_scale_with_tanh(tanh_demo):
    small = np.array(tanh_demo["inits"]["small"]["std"])
    assert np.all(np.diff(small) < 0) and small[-1] < 1e-3 * small[0]  # shrinks layer by layer towards 0
    xavier = np.array(tanh_demo["inits"]["xavier"]["std"])
    # the lecture's Xavier (no gain): tanh's scale shrinks slowly, ~3x over ten layers, not by decades
    assert xavier[-1] > 0.3 * xavier[0] and xavier.min() > 0.2
    assert np.all(np.array(tanh_demo["inits"]["zeros"]["std"]) == 0)  # symmetry: every unit identical
    assert min(tanh_demo["inits"]["large"]["saturated"]) > 0.8  # N(0, 1): tanh saturates
    assert tanh_demo["inits"]["small"]["hist"].shape == (10, 40)


def test_init_demo_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = demos.init_demo("relu", ("kaiming",), depth=3, width=50, n=100)
    after = torch.rand(1)
    b = demos.init_demo("relu", ("kaiming",), depth=3, width=50, n=100)
    assert before == after and a["inits"]["kaiming"]["std"] == b["inits"]["kaiming"]["std"]
    with pytest.raises(LabkitError, match="unknown initializer"):
        demos.init_demo("tanh", ("nope",))


def test_init_demo_figure(tanh_demo):
    fig = plots.init_demo(tanh_demo)
    assert isinstance(fig, Figure) and len(fig.get_axes()) == 5 * 10 + 2
    labels = [ax.get_ylabel() for ax in fig.get_axes()]
    assert "N(0, 0.01²)" in labels and "Xavier" in labels and "std of activations (log)" in labels


def test_optimizer_paths_follow_torch_optim():
    r = demos.optimizer_paths("ravine", ("sgd", "adam"), steps=30)
    assert set(r["paths"]) == {"sgd", "adam"} and r["paths"]["sgd"].shape == (31, 2)
    x, y = r["start"]
    lr = r["lrs"]["sgd"]
    assert r["paths"]["sgd"][1] == pytest.approx([x - lr * 0.1 * x, y - lr * 4.0 * y])  # one SGD step by hand
    assert r["losses"]["adam"][-1] < 0.05 * r["losses"]["adam"][0]
    assert r["z"].shape == (len(r["y"]), len(r["x"]))
    saddle = demos.optimizer_paths("saddle", ("sgd", "adam"))
    assert saddle["losses"]["adam"][-1] < -0.2  # escapes the saddle to a minimum (f = -0.25)
    fig = plots.optimizer_trajectories(saddle)
    assert len(fig.get_axes()) == 2 and fig.get_axes()[0].get_xlabel() == "x"
    with pytest.raises(LabkitError, match="unknown surface"):
        demos.optimizer_paths("bowl")
    with pytest.raises(LabkitError, match="unknown optimizer"):
        demos.optimizer_paths("ravine", ("sgdd",))


def test_schedule_curves_are_the_training_schedules():
    curves = demos.schedule_curves(epochs=4, steps_per_epoch=10, lr=0.2, warmup_epochs=1)
    assert list(curves) == SCHEDULES.names()
    for name, c in curves.items():
        assert c == Schedule(ScheduleConfig(name=name, warmup_epochs=1), 0.2, 40, 10).curve()
    assert isinstance(plots.schedule_comparison(curves, 10), Figure)


@pytest.mark.skipif(not HAS_CIFAR, reason="needs CIFAR-10 under LABKIT_DATA")
def test_augment_preview_on_cifar():
    r = demos.augment_preview(RegConfig(mixup=1.0), DataConfig(subset=200, val_size=20), n=4)
    assert [row["name"] for row in r["rows"]] == ["original", "flip", "crop", "cutout", "mixup", "cutmix"]
    for row in r["rows"]:
        assert row["images"].shape == (4, 32, 32, 3) and 0 <= row["images"].min() and row["images"].max() <= 1
    orig, flip = r["rows"][0]["images"], r["rows"][1]["images"]
    assert np.allclose(flip, orig[:, :, ::-1])
    for label in r["rows"][4]["labels"]:  # mixup: two classes whose weights sum to 1
        weights = [float(line.split()[0]) for line in label.splitlines()]
        assert len(weights) == 2 and sum(weights) == pytest.approx(1.0, abs=0.011)
    assert "off in config" not in r["rows"][4]["detail"] and "off in config" in r["rows"][5]["detail"]
    fig = plots.augment_preview(r)
    assert len(fig.get_axes()) == 6 * 4


def test_augment_preview_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(LabkitError, match="image dataset"):
        demos.augment_preview(data_cfg=DataConfig(dataset="spirals"))
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(LabkitError, match="not found"):
        demos.augment_preview(data_cfg=DataConfig(root=str(tmp_path / "empty"), download=False, subset=100, val_size=10))


def test_cli_demo_writes_pngs(tmp_path, capsys):
    out = str(tmp_path / "d")
    assert main(["demo", "init", "--out", out, "--depth", "4", "--width", "64", "--n", "100"]) == 0
    assert main(["demo", "optimizers", "--out", out, "--surface", "saddle", "--steps", "20"]) == 0
    assert main(["demo", "schedules", "--out", out, "--warmup", "1"]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["init_tanh.png", "optimizers_saddle.png", "schedules.png"]
    assert all(os.path.getsize(p) > 5000 for p in printed)
    assert main(["demo", "init", "--out", out, "--inits", "zeros,bogus"]) == 2


def test_optimizer_demo_shows_every_choice_and_a_repeated_path():
    """adam was selected below the list's fold; adamw's path (no weight decay) hid adam's exactly."""
    from labkit.config import Config
    from labkit.widgets.demos_tab import DemosTab

    tab = DemosTab(lambda: Config())  # the Train tab's optimizer: nesterov
    assert tab.optims.rows == len(tab.optims.options) and "adam" in tab.optims.value
    tab.optims.value = ("adam", "adamw")
    tab.steps.value = 20
    tab.run_optimizers()
    assert tab.opt_img.value[:4] == b"\x89PNG"
    assert "drawn: <b>adam, adamw, nesterov</b>" in tab.opt_note.value and "Train tab" in tab.opt_note.value
    r = demos.optimizer_paths("ravine", ("adam", "adamw"), steps=20)
    labels = [t.get_text() for t in plots.optimizer_trajectories(r).get_axes()[0].get_legend().get_texts()]
    assert any("adamw" in t and "same path as adam" in t for t in labels)
