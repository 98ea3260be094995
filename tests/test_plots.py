"""Plots: each returns a Figure with the expected panels and labels; partial and probe-less runs do not crash."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

from labkit import Config, train
from labkit.cli import main
from labkit.plots import (activation_heatmap, activation_histograms, activation_stats, gradient_updates,
                          learning_curves, lr_curve, run_figures)
from labkit.probe_history import ProbeHistory, read_probes
from labkit.runs import read_metrics


def quick(out, **over) -> Config:
    base = {"data.dataset": "spirals", "model.kind": "mlp", "train.epochs": 3, "reg.label_smoothing": 0.0,
            "optim.weight_decay": 0.0, "train.out": str(out), "train.threads": 1, "probe.every": 4,
            "model.width": 16, "model.depth": 3}
    base.update(over)
    return Config().replace(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(quick(tmp_path_factory.mktemp("runs")))


def texts(fig: Figure) -> str:
    """Every title, axis label, legend entry and text of a figure, joined."""
    out = [fig._suptitle.get_text() if fig._suptitle else ""]
    for sub in [fig, *fig.subfigs]:
        out += [t.get_text() for t in sub.texts]
        for lg in sub.legends:
            out += [t.get_text() for t in lg.get_texts()]
    for ax in fig.get_axes():
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(out)


def visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.get_axes() if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_learning_curves_overlay_runs(run, tmp_path):
    other = train(quick(tmp_path, **{"optim.lr": 0.02}))
    fig = learning_curves({"lr 0.1": run.metrics, "lr 0.02": other.metrics})
    assert isinstance(fig, Figure) and len(fig.get_axes()) == 2
    t = texts(fig)
    for s in ("Loss", "Accuracy", "epoch", "cross-entropy loss", "accuracy", "lr 0.1", "lr 0.02", "validation",
              "chance: ln 2"):
        assert s in t, s


def test_lr_curve_from_a_run_and_schedules():
    fig = lr_curve({"a": [0.1] * 10, "b": [0.1 * 0.5**i for i in range(10)]}, steps_per_epoch=5)
    assert len(fig.get_axes()) == 2 and fig.get_axes()[1].get_yscale() == "log"  # spans > 2 decades
    assert fig.get_axes()[0].get_xlabel() == "epoch" and "learning rate" in fig.get_axes()[0].get_ylabel()
    fig = lr_curve({"flat": [0.1] * 10})
    assert len(fig.get_axes()) == 1 and fig.get_axes()[0].get_xlabel() == "step"


def test_probe_plots_have_one_panel_per_layer(run):
    h = read_probes(run.dir)
    assert len(h.layers) == 3
    fig = activation_histograms(h, 0)
    assert len(visible_axes(fig)) == 3 + 1  # a histogram per layer, and the std of each on a log axis
    t = texts(fig)
    assert "mean" in t and "std" in t and "activation value" in t and "step 0" in t
    fig = activation_heatmap(h)
    assert len(visible_axes(fig)) == 3 and "fraction of values in bin (log)" in texts(fig)
    fig = activation_stats(h)
    t = texts(fig)
    assert len(fig.get_axes()) == 3 and "mean activation" in t and "std of activations" in t and "Dead units" in t
    fig = gradient_updates(h)
    axes = fig.get_axes()
    assert len(axes) == 3 and all(ax.get_yscale() == "log" for ax in axes)
    assert "update / weight" in texts(fig).lower() or "||dW|| / ||W||" in texts(fig)
    assert "1e-3" in texts(fig)


def test_run_figures_of_a_complete_run(run, tmp_path):
    figs = run_figures(run.dir)
    assert set(figs) == {"learning_curves", "lr", "activations_first", "activations_last", "activation_stats",
                         "activation_heatmap", "gradients"}
    assert all(isinstance(f, Figure) for f in figs.values())
    figs["activation_heatmap"].savefig(tmp_path / "heat.png")  # rendering works, not just building
    assert (tmp_path / "heat.png").stat().st_size > 10_000


def test_run_without_probes_says_so(tmp_path):
    r = train(quick(tmp_path, **{"probe.every": 0}))
    figs = run_figures(r.dir)
    assert set(figs) == {"learning_curves", "lr"}
    assert "no probe snapshots" in texts(figs["learning_curves"])
    empty = ProbeHistory()
    for fn in (activation_histograms, activation_stats, activation_heatmap, gradient_updates):
        assert "no probe snapshots" in texts(fn(empty))


def test_killed_run_draws_what_exists(run, tmp_path):
    d = tmp_path / "killed"
    d.mkdir()
    (d / "config.json").write_text((run.dir / "config.json").read_text())
    lines = (run.dir / "metrics.jsonl").read_text().splitlines()
    cut = [l for l in lines if json.loads(l)["kind"] in ("start", "step")][:10]
    (d / "metrics.jsonl").write_text("\n".join(cut) + '\n{"kind": "step", "ste')  # torn last line
    plines = (run.dir / "probes.jsonl").read_text().splitlines()
    (d / "probes.jsonl").write_text("\n".join(plines[:2]) + "\n" + plines[2][:40])
    (d / "summary.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345}))
    assert len(read_metrics(d)) == 10 and len(read_probes(d)) == 2
    figs = run_figures(d)
    t = texts(figs["learning_curves"])
    assert "killed at step 9 of" in t and "no end record" not in t and "activations_last" in figs


def test_nan_snapshot_is_drawn(run):
    rows = [json.loads(l) for l in (run.dir / "probes.jsonl").read_text().splitlines()]
    layer = next(iter(rows[-1]["layers"]))
    rows[-1]["layers"][layer].update(mean=None, std=None, hist=[0] * 40)
    h = ProbeHistory.from_events(rows)
    fig = activation_histograms(h, -1)
    assert "NaN" in texts(fig)
    for fn in (activation_stats, activation_heatmap, gradient_updates):
        assert isinstance(fn(h), Figure)


def test_cli_plot_writes_pngs(run, tmp_path, capsys):
    assert main(["plot", str(run.dir), "--out", str(tmp_path / "png")]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 7 and all(p.endswith(".png") and os.path.getsize(p) > 5000 for p in printed)
    assert main(["plot", str(tmp_path / "nope")]) == 2


def test_plots_take_a_run_log(run):
    from labkit.plots import run_figure
    from labkit.runlog import RunLog

    log = RunLog.load(run.dir)
    fig = learning_curves(log)
    assert f"Learning curves: {run.id}" in texts(fig)
    assert len(visible_axes(activation_histograms(log, 0))) == 3 + 1  # the log's probe history (and the stds)
    assert run.id in texts(lr_curve(log)) and lr_curve(log).get_axes()[0].get_xlabel() == "epoch"
    assert isinstance(run_figure("gradients", log), Figure)
    assert run_figures(log).keys() == run_figures(run.dir).keys()


def test_ema_is_the_bias_corrected_average_over_finite_values():
    """The vectorized EMA equals the plain recurrence, across its blocks, skipping NaN, inf and None."""
    import math

    import numpy as np

    from labkit.plots.training import EMA_BLOCK, ema

    def recurrence(values, s):
        out, acc, weight = [], 0.0, 0.0
        for v in values:
            if v is None or not math.isfinite(v):
                out.append(math.nan)
                continue
            acc, weight = s * acc + (1 - s) * v, s * weight + (1 - s)
            out.append(acc / weight)
        return np.array(out)

    rng = np.random.default_rng(0)
    for n in (0, 1, EMA_BLOCK - 1, EMA_BLOCK, EMA_BLOCK + 1, 5 * EMA_BLOCK + 7):
        for s in (0.0, 0.6, 0.9, 0.999):
            v = list(rng.normal(2.0, 3.0, size=n))
            for i in range(3, n, 17):
                v[i] = [math.nan, math.inf, None][i % 3]
            np.testing.assert_allclose(ema(v, s), recurrence(v, s), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_search_curves_axis_fits_the_lines_drawn_not_a_raw_spike():
    """Losses between 4 and 6 with one raw spike of 16 were drawn on an axis running to 16."""
    from labkit.plots.search import trial_curves

    rng = np.random.default_rng(0)
    y = list(5 + rng.uniform(-1, 1, 200))
    y[3] = 16.0
    fig = trial_curves({0: {"x": list(np.linspace(0, 2, 200)), "y": y, "running": False, "params": {}}})
    lo, hi = fig.axes[0].get_ylim()
    assert hi < 8 and lo > 2
