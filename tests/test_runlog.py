"""The typed run log: live and loaded logs agree, partial runs load, group rates come through, the live views draw
what the static plots draw, and appends stay cheap and safe to read while training goes on."""
from __future__ import annotations

import json
import math
import sys
import threading
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from conftest import tiny_spirals  # noqa: E402
from labkit import Config, load_run, schedule_curve, train  # noqa: E402
from labkit.events import EndEvent, EpochEvent, StartEvent, StepEvent  # noqa: E402
from labkit.plots import learning_curves, lr_curve, run_figures  # noqa: E402
from labkit.runlog import INITIAL_CAPACITY, STEP_COLUMNS, RunLog  # noqa: E402
from labkit.runs import read_metrics  # noqa: E402
from labkit.widgets.live import LiveViews  # noqa: E402


tiny = tiny_spirals


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One run fed to a live RunLog and to the lab's live views at once."""
    cfg = tiny(tmp_path_factory.mktemp("runs")).validate()
    log, views = RunLog.live(cfg), LiveViews()
    views.begin(cfg, schedule_curve(cfg), 9)
    run = train(cfg, callbacks=[log, views])
    assert views.wait(30)
    return run, log, views


def lines_xy(fig) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float))
            for ax in fig.get_axes() for ln in ax.get_lines()]


# -- live and loaded ----------------------------------------------------------------------------------------

def test_live_and_loaded_logs_are_equal(watched):
    run, live, _ = watched
    loaded = RunLog.load(run.dir)
    a, b = live.steps, loaded.steps
    assert len(a) == 27 and a.step.tolist() == list(range(1, 28))
    for col in STEP_COLUMNS:
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)
        assert getattr(a, col).dtype == getattr(b, col).dtype
    assert a.lrs == {} and b.lrs == {}  # one group: no per-group rates
    assert live.epochs == loaded.epochs and [e.epoch for e in live.epochs] == [1, 2, 3]
    assert all(isinstance(e, EpochEvent) for e in loaded.epochs)
    np.testing.assert_array_equal(live.epoch_values("val_acc"), loaded.epoch_values("val_acc"))
    assert live.start == loaded.start and isinstance(loaded.start, StartEvent)
    assert (live.end.status, live.end.message) == (loaded.end.status, loaded.end.message) == ("completed", run.message)
    assert json.loads(json.dumps(live.end.summary)) == loaded.end.summary
    assert live.status == loaded.status == "completed" and loaded.name == run.id and loaded.config == run.config
    # probes.jsonl keeps 4 significant digits: the same snapshots, compactly stored
    assert live.probes.steps == loaded.probes.steps == [0, 5, 10, 15, 20, 25, 26]
    assert live.probes.layers == loaded.probes.layers
    np.testing.assert_allclose(live.probes.series(live.probes.layers[0], "std"),
                               loaded.probes.series(live.probes.layers[0], "std"), rtol=1e-3)
    # rows out equal rows in (grouped by kind), and a log from rows equals the loaded one
    assert loaded.rows() == [r for k in ("start", "step", "epoch", "end") for r in read_metrics(run.dir) if r["kind"] == k]
    again = RunLog.from_rows(read_metrics(run.dir))
    np.testing.assert_array_equal(again.steps.loss, b.loss)
    assert again.epochs == loaded.epochs


def test_steps_read_back_as_step_events(watched):
    run, live, _ = watched
    steps = live.steps
    rows = load_run(run.dir).rows("step")
    assert [e.to_dict() for e in steps] == rows
    assert steps.last == steps[-1] and steps.last.step == 27
    assert steps.index(5) == 4 and steps.index(99) is None
    with pytest.raises(ValueError):
        steps.loss[0] = 0.0  # readers get read-only views of the buffer the training thread fills


def test_torn_last_line_and_killed_run_load(watched, tmp_path):
    run, _, _ = watched
    d = tmp_path / "killed"
    d.mkdir()
    (d / "config.json").write_text((run.dir / "config.json").read_text())
    lines = (run.dir / "metrics.jsonl").read_text().splitlines()
    kept = lines[:12]  # start, 9 steps, epoch 1, step 10
    (d / "metrics.jsonl").write_text("\n".join(kept) + '\n{"kind": "step", "step": 11, "epo')  # torn by the kill
    plines = (run.dir / "probes.jsonl").read_text().splitlines()
    (d / "probes.jsonl").write_text("\n".join(plines[:2]) + "\n" + plines[2][:30])
    (d / "summary.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345}))
    log = RunLog.load(d)
    assert log.end is None and log.status == "killed"
    assert len(log.steps) == 10 and log.last_step == 10 and len(log.epochs) == 1
    assert log.total_steps == 27 and log.classes == 2
    assert log.probes.steps == [0, 5]
    assert log.summary == {"status": "running", "pid": 2**22 + 12345}
    # no summary.json at all, and an empty metrics file, load too
    (d / "summary.json").unlink()
    assert RunLog.load(d).status == "killed"
    (d / "metrics.jsonl").write_text("")
    empty = RunLog.load(d)
    assert len(empty.steps) == 0 and empty.steps.last is None and empty.last_step == 0 and empty.start is None


def test_rows_missing_fields_load_with_defaults():
    rows = [{"kind": "start", "classes": 10}, {"kind": "step", "step": 1, "loss": 2.3},
            {"kind": "epoch", "epoch": 1, "val_acc": 0.4}, {"kind": "end", "status": "stopped"}, {"kind": "whatever"}]
    log = RunLog.from_rows(rows)
    assert log.classes == 10 and log.total_steps is None
    assert log.steps.loss.tolist() == [2.3] and math.isnan(log.steps.time[0])
    assert log.epochs[0].val_acc == 0.4 and log.epochs[0].weights == {} and math.isnan(log.epoch_values("val_loss")[0])
    assert log.status == "stopped" and log.end.summary == {}


# -- per-group learning rates -------------------------------------------------------------------------------

def test_per_group_rates_come_through(tmp_path):
    log = RunLog.live()
    run = train(tiny(tmp_path, **{"probe.every": 0}), callbacks=[log], lr_scales={"net.1": 0.1})
    for lg in (log, RunLog.load(run.dir)):
        s = lg.steps
        assert list(s.lrs) == ["model", "net.1"]
        np.testing.assert_array_equal(s.lrs["model"], s.lr)
        np.testing.assert_allclose(s.lrs["net.1"], 0.1 * s.lr, rtol=1e-12)
        assert s[3].lrs == {"model": s.lr[3], "net.1": s.lrs["net.1"][3]}
    fig = lr_curve(log)
    try:
        lines = {ln.get_label(): ln for ln in fig.get_axes()[0].get_lines()}
        assert set(lines) == {f"{run.id}: model", f"{run.id}: net.1"}
        np.testing.assert_array_equal(lines[f"{run.id}: net.1"].get_ydata(), log.steps.lrs["net.1"])
        np.testing.assert_allclose(lines[f"{run.id}: net.1"].get_xdata(), np.arange(27) / 9, rtol=1e-12)
        assert {t.get_text() for t in fig.legends[0].get_texts()} == set(lines)
    finally:
        fig.clf()


def test_a_group_first_recorded_late_had_the_base_rate_before():
    """The loop records group rates only while they differ: earlier steps ran every group at the base rate."""
    log = RunLog.live()
    for i, lrs in enumerate([None, None, {"model": 0.1, "head": 0.01}, None]):
        log(StepEvent(i + 1, (i + 1) / 4, 1.0, 0.5, 0.1, float(i), lrs))
    assert log.steps.lrs["head"].tolist() == [0.1, 0.1, 0.01, 0.1]


# -- the live views draw what the static plots draw -----------------------------------------------------------

def test_live_views_and_static_plots_draw_the_same_lines(watched):
    run, _, views = watched
    figs = run_figures(run.dir)
    assert views.curves.points == 27 and views.counts["step"] == 27
    live, static = lines_xy(views.curves.fig), lines_xy(figs["learning_curves"])
    assert len(live) == len(static) == 12  # per panel: raw, EMA, epoch train, epoch val, best-epoch star, chance
    for (lx, ly), (sx, sy) in zip(live, static):
        np.testing.assert_array_equal(lx, sx)
        np.testing.assert_array_equal(ly, sy)
    # the LR view: the plan (dashed, underneath) and the rates used, which are the static plot's line
    lr_live = {ln.get_label(): ln for ln in views.lr.fig.get_axes()[0].get_lines()}
    assert set(lr_live) == {"planned", "used so far"}
    (static_lr,) = figs["lr"].get_axes()[0].get_lines()
    for get in ("get_xdata", "get_ydata"):
        np.testing.assert_array_equal(getattr(lr_live["used so far"], get)(), getattr(static_lr, get)())
    np.testing.assert_array_equal(lr_live["planned"].get_ydata(), schedule_curve(run.config))
    # the histogram panel is labkit.plots.activation_histograms at the newest snapshot
    hist = views.probes.views[0].fig
    assert "step 26 " in hist.get_suptitle() and views.probes.slider.max == len(views.probes.events) - 1 == 6


def test_a_live_log_marks_its_newest_step():
    log = RunLog.live()
    log(StartEvent("r", "", 10, 5, 100, 2, 10))
    log(StepEvent(1, 0.2, 0.7, 0.5, 0.1, 0.01))
    fig = learning_curves(log)
    try:
        (dot,) = fig.get_axes()[0].collections  # one step is no line yet: the dot shows it
        np.testing.assert_array_equal(dot.get_offsets(), [[0.2, 0.7]])
        assert "no end record after step 1 of 10" in fig.get_suptitle()
    finally:
        fig.clf()


# -- appending is cheap; reading while appending is consistent -------------------------------------------------

def step(i: int, groups: bool = False) -> StepEvent:
    lr = 1.0 / (i + 1)
    return StepEvent(i + 1, (i + 1) / 100, 2.0 * i, i % 2, lr, 0.001 * i, {"a": lr, "b": lr / 10} if groups else None)


def test_ten_thousand_appends_grow_geometrically():
    log = RunLog.live()
    caps = set()
    for i in range(10_000):
        log(step(i))
        caps.add(log.capacity)
    assert len(log.steps) == 10_000 and log.steps.step[-1] == 10_000
    # doubling: 256 -> 512 -> ... -> 16384 is 6 reallocations, not one per step
    assert sorted(caps) == [INITIAL_CAPACITY * 2**k for k in range(7)] and log.grows == 6
    assert 10_000 <= log.capacity < 2 * 10_000
    np.testing.assert_array_equal(log.steps.loss, 2.0 * np.arange(10_000))


def test_reads_during_appends_see_consistent_snapshots():
    log = RunLog.live()
    n_total, done, seen, bad = 20_000, threading.Event(), [], []

    def write() -> None:
        for i in range(n_total):
            log(step(i, groups=i >= 500))  # the groups appear mid-run, and the arrays grow while being read
            if i % 1000 == 0:
                log(EpochEvent(i // 1000, i + 1, 1.0, 0.5, None, None, 0.1, 0.0, False))
            if i % 100 == 0:
                time.sleep(0)  # as a training step would, let the reader in
        done.set()

    t = threading.Thread(target=write)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL back and forth often, so reads land between appends and growths
    try:
        t.start()
        read_until_done(log, n_total, done, seen, bad)
    finally:
        sys.setswitchinterval(interval)
        t.join()
    assert not bad, f"inconsistent snapshots at lengths {bad[:5]}"
    assert seen == sorted(seen) and seen[-1] == n_total and len(log.epochs) == 20
    assert len(set(seen)) > 20  # the reads did interleave with the appends
    with pytest.raises(TypeError):
        log.snapshot().append(step(0))


def read_until_done(log: RunLog, n_total: int, done: threading.Event, seen: list, bad: list) -> None:
    """Snapshot the log until the writer is done; record each length, and the lengths whose snapshot was torn."""
    while not done.is_set() or not seen or seen[-1] < n_total:
        snap = log.snapshot()
        s = snap.steps
        n = len(s)
        i = np.arange(n)
        ok = (all(len(getattr(s, c)) == n for c in STEP_COLUMNS) and all(len(a) == n for a in s.lrs.values())
              and np.array_equal(s.step, i + 1) and np.array_equal(s.loss, 2.0 * i) and np.array_equal(s.lr, 1.0 / (i + 1))
              and all(e.step <= n for e in snap.epochs))
        if s.lrs:
            ok = ok and np.array_equal(s.lrs["b"][500:], s.lr[500:] / 10) and np.array_equal(s.lrs["b"][:500], s.lr[:500])
        if not ok:
            bad.append(n)
        seen.append(n)


def test_end_event_makes_the_status():
    log = RunLog.live()
    assert log.status is None and log.summary == {} and log.count == 0
    log(EndEvent("diverged", "loss became nan", {"steps": 3}))
    assert log.status == "diverged" and log.summary == {"steps": 3} and log.count == 1
