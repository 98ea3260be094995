"""The concept demos (labkit.concepts): each lecture claim holds on its data; DropConnect; the best-epoch marks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_cifar, tiny_spirals
from labkit import LabkitError, train
from labkit.cli import main
from labkit.concepts import CONCEPTS, crossval, dead_units, dropout, early_stopping, l1_l2, preprocess, zigzag
from labkit.config import ModelConfig
from labkit.models import DropConnectLinear, build_model
from labkit.plots import concept_figure


def test_sigmoid_inputs_give_one_signed_weight_gradients_and_tanh_does_not():
    r = zigzag(steps=60, width=8)
    sig, tanh = r["acts"]["sigmoid"], r["acts"]["tanh"]
    assert sig["positive_inputs"] == 1.0 and sig["same_sign"] == 1.0  # every step: all of a unit's weights one way
    assert tanh["same_sign"] < 0.2
    upd = sig["updates"]
    assert np.all(upd[:, 0] * upd[:, 1] >= 0)  # sigmoid: each step's update of the pair lies in quadrant I or III
    assert r["acts"]["sigmoid"]["path"].shape == (61, 2)


def test_relu_at_a_high_learning_rate_has_dead_units_and_leaky_relu_none():
    r = dead_units(lrs=(0.1,), activations=("relu", "leaky_relu"), epochs=2, points=200, width=32)
    relu, leaky = r["dead"][:, 0]
    assert relu > 0.2 and leaky == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_inverted_dropout_and_dropconnect_keep_the_mean(seed):
    """Seed 1's DropConnect units nearly cancel in sum: the plain ratio of means read 0.85 there."""
    r = dropout(seed=seed, epochs=1, width=32, draws=20, ps=(0.2, 0.8))
    assert r["dropout"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert r["dropconnect"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert r["ratio_inverted"] == pytest.approx([1.0, 1.0], abs=0.05)
    assert np.mean(r["unit"]["train"] == 0) > np.mean(r["unit"]["eval"] == 0)  # dropped values are zeros


def test_kfold_reports_its_spread_and_is_steadier_than_one_split():
    r = crossval(points=80, k=4, repeats=4, epochs=4, holdout=0.25)
    assert r["folds"].shape == (4, 4) and np.allclose(r["kfold"], r["folds"].mean(1))
    assert r["held_out"][0] == r["folds"][0, 0]  # holdout 1/k: the single split is the first fold
    assert 0 <= r["kfold_std"] < r["held_out_std"]
    assert any("std" in line for line in r["lines"])


def test_the_best_epoch_marked_is_the_argmax_of_val_acc_and_patience_stops_after_it():
    r = early_stopping(points=60, epochs=25, patience=3, width=64)
    full, stopped = r["logs"].values()
    acc = full.epoch_values("val_acc")
    best = r["best_epoch"]["no early stopping"]
    assert best == int(np.argmax(acc)) + 1  # the first maximum: a tie is no improvement
    b_stop = r["best_epoch"]["patience 3"]
    assert r["stop_epoch"] == b_stop + 3 or r["stop_epoch"] == len(full.epochs)
    fig = concept_figure("early-stopping", r)
    ax_acc = fig.axes[1]
    stars = [ln for ln in ax_acc.get_lines() if ln.get_marker() == "*" and len(ln.get_xdata())]
    assert best in [float(ln.get_xdata()[0]) for ln in stars]
    assert max(float(ln.get_ydata()[0]) for ln in stars) == pytest.approx(acc.max())


def test_l1_gives_more_near_zero_weights_than_l2():
    r = l1_l2(epochs=6, width=32)
    z = r["zero_fraction"]
    assert z["L1 0.001"] > 2 * z["L2 0.01"] and z["L1 0.001"] > 2 * z["none"]


@needs_cifar
def test_preprocessing_centres_and_scales_cifar_inputs():
    r = preprocess(subset=200, epochs=1, threads=1)
    none, mean, std = (r["inputs"][m] for m in ("none", "mean", "standardize"))
    assert min(none["mean"]) > 0.3  # raw pixels in [0, 1]: all positive
    assert max(abs(v) for v in mean["mean"]) < 0.05 and max(abs(v) for v in std["mean"]) < 0.05
    assert std["std"] == pytest.approx([1, 1, 1], abs=0.1) and max(mean["std"]) < 0.4
    assert set(r["logs"]) == {"none", "mean", "standardize"}


def test_every_concept_has_a_figure_function_and_bad_arguments_are_one_line_errors():
    from labkit.plots import concepts as plots

    for e in CONCEPTS:
        assert callable(getattr(plots, e.traits["plot"]))
    with pytest.raises(LabkitError, match="2-D set"):
        zigzag(dataset="cifar10")
    with pytest.raises(LabkitError, match="unknown demo 'nope'; choose one of"):
        CONCEPTS.get("nope")


def test_dropconnect_drops_weights_in_training_only():
    torch.manual_seed(0)
    layer = DropConnectLinear(20, 10, p=0.5)
    plain = nn.Linear(20, 10)
    assert layer.state_dict().keys() == plain.state_dict().keys()  # checkpoints and heads see a Linear layer
    x = torch.randn(4, 20)
    layer.eval()
    assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
    layer.train()
    y = layer(x)
    assert not torch.allclose(y, nn.functional.linear(x, layer.weight, layer.bias))
    m = build_model(ModelConfig(kind="mlp", depth=3, width=8, dropconnect=0.3), (2,), 2)
    dc = [type(l) is DropConnectLinear for l in m.modules() if isinstance(l, nn.Linear)]
    assert dc == [False, True, True, True]  # the layers that read hidden units: not the input layer


def test_cli_dropconnect_range_unknown_demo_and_best_epoch_column(tmp_path, capsys):
    assert main(["train", "--data", "spirals", "--model", "mlp", "--dropconnect", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.dropconnect=1.5 is out of range; allowed: [0, 1)" in err
    with pytest.raises(SystemExit) as e:
        main(["demo", "nope"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "unknown demo 'nope'; choose one of:" in err
    run = train(tiny_spirals(tmp_path / "runs", **{"model.dropconnect": 0.2, "train.patience": 1}))
    assert main(["runs", "--runs", str(tmp_path / "runs")]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()[:2]
    col = header.split().index("best_epoch")
    assert row.split()[col] == str(run.summary["best_epoch"])


def test_cli_concept_demo_writes_its_figure_and_prints_what_it_measured(tmp_path, capsys):
    assert main(["demo", "dropout", "--epochs", "1", "--width", "16", "--draws", "5", "--ps", "0.5",
                 "--figs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train mode / eval mode" in out and (tmp_path / "dropout.png").stat().st_size > 10_000
    assert main(["demo", "dead-units", "--lrs", "0.1,x", "--figs", str(tmp_path)]) == 2


def test_the_lab_demos_tab_runs_a_concept_demo():
    from labkit import Config
    from labkit.widgets.demos_tab import DemosTab

    tab = DemosTab(lambda: Config())
    assert [v for _, v in tab.concept.options] == CONCEPTS.names()
    tab.concept.value = "early-stopping"
    tab.run_concept()  # on the caller's thread here; the button runs it on a thread
    assert "best epoch" in tab.concept_note.value and len(tab.concept_img.value) > 10_000
    assert not tab.concept_btn.disabled
