"""Plots draw the run's numbers: line, point, bar and scatter data read back from the figures and compared
with what the run (metrics.jsonl, probes.jsonl, its config) and the search (its trials) recorded."""
from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.patches import StepPatch  # noqa: E402

from conftest import tiny_spirals  # noqa: E402
from labkit import Config, load_run, schedule_curve, train  # noqa: E402
from labkit.plots import (activation_histograms, activation_stats,  # noqa: E402
                          learning_curves, lr_curve, run_figures)
from labkit.plots import search as splots  # noqa: E402
from labkit.runs import PROBE_FILE
from labkit.probe_history import read_probes  # noqa: E402
from labkit.search import Space, compare_samplers, trial_rows  # noqa: E402
from labkit.search.analysis import bergstra_demo, demo_params  # noqa: E402

EXACT = dict(rtol=1e-12, atol=0)


tiny = tiny_spirals


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(tiny(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def rec(run):
    return load_run(run.dir)


@pytest.fixture(scope="module")
def figs(run):
    f = run_figures(run.dir)
    yield f
    for fig in f.values():
        plt.close(fig)


def close(fig) -> None:
    plt.close(fig)


def xy(line) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def ema_closed_form(v, s: float) -> np.ndarray:
    """Bias-corrected EMA as a weighted mean: out[t] = sum_i (1-s) s^(t-i) v[i] / (1 - s^(t+1))."""
    v = np.asarray(v, dtype=float)
    t = np.arange(len(v))
    w = np.where(t[None, :] <= t[:, None], (1 - s) * s ** (t[:, None] - t[None, :]).clip(min=0), 0.0)
    return (w @ v) / (1 - s ** (t + 1))


def curve_lines(ax) -> dict[str, list]:
    """The learning-curve lines of one panel by their documented style (see learning_curves' legend)."""
    lines = ax.get_lines()
    return {
        "raw": [ln for ln in lines if ln.get_alpha() == pytest.approx(0.18)],
        "ema": [ln for ln in lines if ln.get_alpha() is None and ln.get_marker() in ("None", "", None)
                and ln.get_linestyle() == "-"],
        "train_epoch": [ln for ln in lines if ln.get_marker() == "s"],
        "val_epoch": [ln for ln in lines if ln.get_marker() == "o"],
    }


# -- learning curves ---------------------------------------------------------------------------------------------

def check_curves(fig, steps: list[dict], epochs: list[dict], spe: int, smooth: float, k: int = 0) -> None:
    """Run k's lines in both panels equal its step and epoch rows."""
    ax_loss, ax_acc = fig.get_axes()[:2]
    assert (ax_loss.get_title(), ax_acc.get_title()) == ("Loss", "Accuracy")
    n = len(steps)
    step_x = np.array([r["step"] for r in steps]) / spe  # step s (1-based) ends at epoch s / steps_per_epoch
    assert [r["step"] for r in steps] == list(range(1, n + 1))
    for ax, key, tr, va in ((ax_loss, "loss", "train_loss", "val_loss"), (ax_acc, "acc", "train_acc", "val_acc")):
        lines = curve_lines(ax)
        y = np.array([r[key] for r in steps])
        raw = lines["raw"][k]
        np.testing.assert_allclose(xy(raw)[0], step_x, **EXACT)
        np.testing.assert_array_equal(xy(raw)[1], y)
        ema = lines["ema"][k]
        np.testing.assert_allclose(xy(ema)[0], step_x, **EXACT)
        np.testing.assert_allclose(xy(ema)[1], ema_closed_form(y, smooth), rtol=1e-9, atol=0)
        ex = np.array([r["step"] for r in epochs]) / spe  # where each epoch ended (whole epochs: its number)
        np.testing.assert_array_equal(xy(lines["train_epoch"][k])[0], ex)
        np.testing.assert_array_equal(xy(lines["train_epoch"][k])[1], [r[tr] for r in epochs])
        np.testing.assert_array_equal(xy(lines["val_epoch"][k])[0], ex)
        np.testing.assert_array_equal(xy(lines["val_epoch"][k])[1], [r[va] for r in epochs])
        # one colour per run for all four of its lines
        colours = {to_hex(lines[s][k].get_color()) for s in lines}
        assert len(colours) == 1


def test_learning_curves_draw_the_runs_steps_and_epochs(rec):
    rows = rec.metrics
    start = rec.rows("start")[0]
    steps, epochs = rec.rows("step"), rec.rows("epoch")
    assert len(steps) == start["total_steps"] == 27 and [r["epoch"] for r in epochs] == [1, 2, 3]
    fig = learning_curves({"run": rows}, smooth=0.8)
    try:
        check_curves(fig, steps, epochs, start["steps_per_epoch"], smooth=0.8)
        lines = curve_lines(fig.get_axes()[0])
        assert [len(v) for v in lines.values()] == [1, 1, 1, 1]
        # the chance line: ln 2 for the two spirals
        chance = [ln for ln in fig.get_axes()[0].get_lines() if ln.get_linestyle() == ":"]
        assert len(chance) == 1 and xy(chance[0])[1] == pytest.approx([math.log(2)] * 2, rel=1e-12)
    finally:
        close(fig)


def test_run_figures_learning_curves_read_from_disk(rec, figs):
    start = rec.rows("start")[0]
    check_curves(figs["learning_curves"], rec.rows("step"), rec.rows("epoch"), start["steps_per_epoch"], smooth=0.9)


def test_learning_curves_overlay_keeps_each_runs_data(rec, tmp_path):
    other = load_run(train(tiny(tmp_path, **{"train.epochs": 2, "optim.lr": 0.03, "probe.every": 0})).dir)
    fig = learning_curves({"a": rec.metrics, "b": other.metrics})
    try:
        spe = rec.rows("start")[0]["steps_per_epoch"]
        check_curves(fig, rec.rows("step"), rec.rows("epoch"), spe, smooth=0.9, k=0)
        check_curves(fig, other.rows("step"), other.rows("epoch"), spe, smooth=0.9, k=1)
        a, b = (curve_lines(fig.get_axes()[0])["val_epoch"][k] for k in (0, 1))
        assert a.get_color() != b.get_color()
    finally:
        close(fig)


def test_a_run_stopped_mid_epoch_draws_its_last_epoch_where_it_stopped(tmp_path):
    from labkit.training import TrainHook

    class StopAt(TrainHook):
        def after_step(self, ctx) -> None:
            if ctx.step == 13:  # 9 steps per epoch: 4 steps into the second epoch
                ctx.request_stop("stop mid-epoch")

    log = load_run(train(tiny(tmp_path, **{"probe.every": 0}), hooks=[StopAt()]).dir)
    epochs = log.rows("epoch")
    assert [(r["epoch"], r["step"]) for r in epochs] == [(1, 9), (2, 13)]
    fig = learning_curves({"run": log.metrics})
    try:
        for ax in fig.get_axes()[:2]:
            for kind in ("train_epoch", "val_epoch"):
                np.testing.assert_allclose(xy(curve_lines(ax)[kind][0])[0], [1.0, 13 / 9], **EXACT)
    finally:
        close(fig)


# -- learning rate -------------------------------------------------------------------------------------------------

def test_lr_plot_is_the_schedule_and_the_recorded_lr(rec, figs):
    cfg = rec.config
    start = rec.rows("start")[0]
    spe, total = start["steps_per_epoch"], start["total_steps"]
    expected = schedule_curve(cfg)
    recorded = [r["lr"] for r in rec.rows("step")]
    assert len(expected) == total == len(recorded)
    np.testing.assert_allclose(recorded, expected, **EXACT)  # the optimizer used the closed-form schedule
    fig = figs["lr"]
    axes = fig.get_axes()
    assert len(axes) == 2 and axes[1].get_yscale() == "log"  # onecycle from lr/25 up, then down to lr/25e4
    for ax in axes:
        (line,) = ax.get_lines()
        x, y = xy(line)
        np.testing.assert_allclose(y, expected, **EXACT)
        np.testing.assert_array_equal(y, recorded)
        # x in epochs: the LR of 0-based step i is drawn from epoch i / steps_per_epoch (where that step starts)
        np.testing.assert_allclose(x, np.arange(total) / spe, **EXACT)
        np.testing.assert_allclose(x + 1 / spe, [r["epoch"] for r in rec.rows("step")], rtol=1e-12, atol=1e-15)
    # with onecycle the warmup is its own rise (one ramp, not two): from lr / div_factor to the peak at the end
    # of epoch 1
    assert expected[spe - 1] == pytest.approx(cfg.optim.lr, rel=1e-12)
    assert expected[0] == pytest.approx(cfg.optim.lr / cfg.schedule.div_factor, rel=1e-12)


def test_lr_curve_keeps_each_schedule_on_its_own_line():
    base = Config().replace(**{"data.dataset": "spirals", "data.points": 600, "train.epochs": 4,
                               "train.batch_size": 64, "optim.lr": 0.1})
    curves = {"cosine": schedule_curve(base.replace(**{"schedule.name": "cosine", "schedule.min_lr": 0.01})),
              "step": schedule_curve(base.replace(**{"schedule.name": "step", "schedule.step_every": 1.0,
                                                     "schedule.gamma": 0.5}))}
    fig = lr_curve(curves, steps_per_epoch=9)
    try:
        lines = {ln.get_label(): ln for ln in fig.get_axes()[0].get_lines()}
        assert set(lines) == {"cosine", "step"}
        for name, c in curves.items():
            np.testing.assert_array_equal(xy(lines[name])[1], c)
            np.testing.assert_allclose(xy(lines[name])[0], np.arange(len(c)) / 9, **EXACT)
        assert len(set(np.round(curves["step"], 12))) == 4  # the step schedule halves at each of 3 epoch ends
    finally:
        close(fig)


# -- probes ----------------------------------------------------------------------------------------------------------

def stored_snapshots(run_dir) -> list[dict]:
    """probes.jsonl read with plain json (latest line per step, in step order), not through labkit.probe_history."""
    by_step = {}
    with open(run_dir / PROBE_FILE) as f:
        for line in f:
            d = json.loads(line)
            by_step[int(d["step"])] = d
    return [by_step[k] for k in sorted(by_step)]


def check_histograms(fig, snap: dict) -> None:
    layers = list(snap["layers"])
    axes = [ax for ax in fig.get_axes() if ax.get_visible() and ax.get_label() != "std per layer"]
    assert len(axes) == len(layers) == 3
    (std_ax,) = [ax for ax in fig.get_axes() if ax.get_label() == "std per layer"]  # the stds on a log axis
    assert std_ax.get_yscale() == "log" and len(std_ax.patches) == 3
    assert f"step {snap['step']} " in fig.get_suptitle()
    for k, (ax, name) in enumerate(zip(axes, layers)):
        assert ax.get_title().startswith(f"{k + 1}. {name} ")
        s = snap["layers"][name]
        counts = np.array([0 if c is None else c for c in s["hist"]], dtype=float)
        assert counts.sum() > 0
        (patch,) = [p for p in ax.patches if isinstance(p, StepPatch)]
        values, edges, _ = patch.get_data()
        np.testing.assert_allclose(values, counts / counts.sum(), **EXACT)
        np.testing.assert_allclose(edges, np.linspace(s["lo"], s["hi"], len(counts) + 1), **EXACT)
        assert f"mean {s['mean']:.3g}" in ax.get_title() and f"std {s['std']:.3g}" in ax.get_title()


def test_activation_histograms_draw_the_stored_counts(run, figs):
    snaps = stored_snapshots(run.dir)
    assert [s["step"] for s in snaps] == [0, 5, 10, 15, 20, 25, 26]
    check_histograms(figs["activations_first"], snaps[0])
    check_histograms(figs["activations_last"], snaps[-1])
    h = read_probes(run.dir)
    for i in (2, -3):
        fig = activation_histograms(h, i)
        try:
            check_histograms(fig, snaps[i])
        finally:
            close(fig)


def test_activation_heatmap_columns_are_the_stored_histograms(run, figs):
    snaps = stored_snapshots(run.dir)
    steps = np.array([s["step"] for s in snaps], dtype=float)
    layers = list(snaps[0]["layers"])
    fig = figs["activation_heatmap"]
    axes = [ax for ax in fig.get_axes() if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(axes) == len(layers)
    for ax, name in zip(axes, layers):
        assert f". {name} (" in ax.get_title()
        (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
        counts = np.array([[0 if c is None else c for c in s["layers"][name]["hist"]] for s in snaps], dtype=float)
        frac = counts / counts.sum(axis=1, keepdims=True)  # steps x bins
        drawn = np.ma.filled(mesh.get_array(), 0.0).reshape(frac.T.shape)  # bins x steps
        np.testing.assert_allclose(drawn, frac.T, **EXACT)
        coords = mesh.get_coordinates()  # (bins + 1, steps + 1, 2)
        xedges, yedges = coords[0, :, 0], coords[:, 0, 1]
        assert np.all((xedges[:-1] < steps) & (steps < xedges[1:]))  # snapshot j sits in column j
        lo, hi = snaps[0]["layers"][name]["lo"], snaps[0]["layers"][name]["hi"]
        np.testing.assert_allclose(yedges, np.linspace(lo, hi, counts.shape[1] + 1), **EXACT)


def test_activation_stats_draw_each_layers_mean_and_std(run):
    snaps = stored_snapshots(run.dir)
    layers = list(snaps[0]["layers"])
    fig = activation_stats(read_probes(run.dir))
    try:
        ax_mean, ax_std, _ = fig.get_axes()[:3]
        for ax, stat in ((ax_mean, "mean"), (ax_std, "std")):
            lines = ax.get_lines()[:len(layers)]  # one line per layer in network order (then the zero line)
            for ln, name in zip(lines, layers):
                x, y = xy(ln)
                np.testing.assert_array_equal(x, [s["step"] for s in snaps])
                np.testing.assert_array_equal(y, [s["layers"][name][stat] for s in snaps])
    finally:
        close(fig)


# -- searches --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    base = Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "model.width": 16, "train.epochs": 1,
                               "data.points": 400, "data.val_size": 100, "train.batch_size": 32,
                               "reg.label_smoothing": 0.0, "optim.weight_decay": 0.0, "train.threads": 1,
                               "train.test": False, "probe.every": 0})
    space = Space.parse(["optim.lr=log:1e-2:3e-1", "model.dropout=0:0.3"])
    studies = compare_samplers(base, space, trials=4, samplers=("grid", "random"), study="plotdata", out=str(out))
    return space, {k: trial_rows(s) for k, s in studies.items()}


def offsets(coll) -> np.ndarray:
    return np.asarray(coll.get_offsets(), dtype=float)


def test_random_vs_grid_plane_draws_the_trials(searches):
    space, rows = searches
    x, y = space["optim.lr"], space["model.dropout"]
    for r in rows["grid"] + rows["random"]:  # the trials' numbers are the runs' numbers
        run = load_run(r["run_dir"])
        assert (run.config.optim.lr, run.config.model.dropout) == (r["params"]["optim.lr"], r["params"]["model.dropout"])
        assert r["value"] == max(e["val_acc"] for e in run.rows("epoch"))
    panels = {"grid (plotdata-grid)": rows["grid"], "random (plotdata-random)": rows["random"]}
    fig = splots.sampler_planes(panels, x, y)
    try:
        axes = fig.get_axes()
        for i, trials in enumerate(panels.values()):
            main, top, right = axes[3 * i: 3 * i + 3]
            px = np.array([t["params"]["optim.lr"] for t in trials])
            py = np.array([t["params"]["model.dropout"] for t in trials])
            v = np.array([t["value"] for t in trials])
            assert len(v) == 4 and None not in list(v)
            (sc,) = [c for c in main.collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(offsets(sc), np.column_stack([px, py]))
            np.testing.assert_array_equal(np.asarray(sc.get_array()), v)  # colour = score
            (st,) = [c for c in top.collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(offsets(st), np.column_stack([px, v]))
            (sr,) = [c for c in right.collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(offsets(sr), np.column_stack([v, py]))
            assert main.get_xscale() == "log" and main.get_yscale() == "linear"
        # the point of the figure: a 2x2 grid tries 2 learning rates, random search 4
        assert len(np.unique(offsets(axes[0].collections[0])[:, 0])) == 2
        assert len(np.unique(offsets(axes[3].collections[0])[:, 0])) == 4
        assert sorted(set(offsets(axes[0].collections[0])[:, 0])) == pytest.approx(x.grid(2), rel=1e-12)
    finally:
        close(fig)


def test_bergstra_demo_plane_draws_its_example():
    r = bergstra_demo(budgets=(4, 9), repeats=20, seed=3)
    ex = r.example
    x, y = demo_params()
    fig = splots.sampler_planes({"grid": ex["grid"], "random": ex["random"]}, x, y,
                                curves={"x": ex["x_curve"], "y": ex["y_curve"]}, score="score")
    try:
        axes = fig.get_axes()
        for i, key in enumerate(("grid", "random")):
            main, top, right = axes[3 * i: 3 * i + 3]
            pts = ex[key]
            px = [p["params"]["x"] for p in pts]
            py = [p["params"]["y"] for p in pts]
            v = [p["value"] for p in pts]
            sc = [c for c in main.collections if isinstance(c, PathCollection)][0]
            np.testing.assert_array_equal(offsets(sc), np.column_stack([px, py]))
            np.testing.assert_array_equal(np.asarray(sc.get_array()), v)
            np.testing.assert_array_equal(offsets(top.collections[0]), np.column_stack([px, v]))
            np.testing.assert_array_equal(offsets(right.collections[0]), np.column_stack([v, py]))
            # the true marginals: g(x) along the top, h(y) drawn sideways on the right
            (gx,) = top.get_lines()[:1]
            np.testing.assert_array_equal(xy(gx)[0], ex["x_curve"][0])
            np.testing.assert_array_equal(xy(gx)[1], ex["x_curve"][1])
            (hy,) = right.get_lines()[:1]
            np.testing.assert_array_equal(xy(hy)[0], ex["y_curve"][1])
            np.testing.assert_array_equal(xy(hy)[1], ex["y_curve"][0])
        assert sorted(set(p["params"]["x"] for p in ex["grid"])) == pytest.approx([1 / 6, 1 / 2, 5 / 6], rel=1e-5)
    finally:
        close(fig)


def test_score_vs_params_and_best_so_far_draw_the_trials(searches):
    space, rows = searches
    trials = rows["random"]
    v = [t["value"] for t in trials]
    fig = splots.score_vs_params(trials, space)
    try:
        for ax, p in zip(fig.get_axes(), space):
            (sc,) = [c for c in ax.collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(offsets(sc), np.column_stack([[t["params"][p.path] for t in trials], v]))
            other = next(q.path for q in space if q.path != p.path)  # coloured by the other parameter
            np.testing.assert_array_equal(np.asarray(sc.get_array()), [t["params"][other] for t in trials])
    finally:
        close(fig)
    hist = {"grid": [t["value"] for t in rows["grid"]], "random": v}
    fig = splots.best_so_far(hist)
    try:
        ax = fig.get_axes()[0]
        lines = ax.get_lines()
        assert len(lines) == 2
        for ln, vals in zip(lines, hist.values()):
            x, yv = xy(ln)
            np.testing.assert_array_equal(x, np.arange(1, len(vals) + 1))
            np.testing.assert_array_equal(yv, np.maximum.accumulate(vals))
    finally:
        close(fig)
