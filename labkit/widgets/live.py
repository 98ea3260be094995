"""Live views of a training run: learning curves, the LR so far, probes, and a progress bar with ETA.

`LiveViews` is an event subscriber. The training thread only appends events
to lists (cheap); a render thread redraws, at most a few times a second, the
views whose data changed. The curve and LR figures are kept and their artists
updated in place (set_data, relim); probe views are drawn by labkit.plots when
a new snapshot arrives (every probe.every steps), only for the visible panel.
Every view ends as PNG bytes in an ipywidgets.Image, which reaches the page
from a background thread in Voila and JupyterLab.
"""
from __future__ import annotations

import io
import math
import threading
import time
from typing import Any, Callable

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..config import Config
from ..events import EndEvent, EpochEvent, Event, ProbeEvent, StartEvent, StepEvent

RENDER_INTERVAL = 0.5  # seconds between redraws of the step-driven views (2 per second at most)
PROBE_INTERVAL = 1.5  # probe views are heavier: at most one redraw per this many seconds
# drawing competes with training for the cores (and the GIL): after each redraw the render thread waits
# until its CPU time is at most this fraction of the time passed, so live views cost training little
RENDER_BUDGET = 0.035  # for the curves, and again for the probe panel
MAX_WAIT, MAX_PROBE_WAIT = 3.0, 8.0  # but live means at least this often, whatever a draw costs
DPI = 72
EMA = 0.9
COLORS = {"train": "#1f77b4", "val": "#d62728", "lr": "#2ca02c", "plan": "0.6"}


def png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (what an ipywidgets.Image shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_image(**layout: str) -> W.Image:
    """An Image widget for PNG figures, hidden while it has none (a browser draws an empty image as broken)."""
    img = W.Image(format="png", layout=W.Layout(**layout, display="none"))
    img.observe(lambda change: setattr(img.layout, "display", "" if change["new"] else "none"), names="value")
    return img


def ema(values: np.ndarray, smooth: float = EMA) -> np.ndarray:
    """Bias-corrected exponential moving average that skips non-finite values."""
    out = np.full(len(values), np.nan)
    acc = weight = 0.0
    for i, v in enumerate(values):
        if math.isfinite(v):
            acc = smooth * acc + (1 - smooth) * v
            weight = smooth * weight + (1 - smooth)
            out[i] = acc / weight
    return out


def fmt_seconds(s: float) -> str:
    """Seconds as m:ss or h:mm:ss."""
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class CurvesView:
    """Loss and accuracy against epochs; one Figure whose lines are updated in place."""

    def __init__(self) -> None:
        self.fig = Figure(figsize=(9.0, 3.3), dpi=DPI, layout="constrained")
        self.ax_loss, self.ax_acc = self.fig.subplots(1, 2)
        self.lines: dict[str, Any] = {}
        self.layout = self.fig.get_layout_engine()
        for ax, what in ((self.ax_loss, "loss"), (self.ax_acc, "acc")):
            self.lines[f"{what}_raw"], = ax.plot([], [], color=COLORS["train"], alpha=0.2, lw=0.8)
            self.lines[f"{what}_ema"], = ax.plot([], [], color=COLORS["train"], lw=1.8, label="train (per step, smoothed)")
            self.lines[f"{what}_val"], = ax.plot([], [], "o--", color=COLORS["val"], ms=5, lw=1, label="validation (per epoch)")
            self.lines[f"{what}_last"], = ax.plot([], [], "o", color=COLORS["train"], ms=4)  # visible from step 1
            self.lines[f"{what}_chance"] = ax.axhline(np.nan, color="0.45", ls=":", lw=1, label="chance")
            ax.grid(alpha=0.3)
            ax.set_xlabel("epoch")
        self.ax_loss.set(ylabel="cross-entropy loss", title="Loss")
        self.ax_acc.set(ylabel="accuracy", title="Accuracy", ylim=(-0.02, 1.02))
        self.ax_loss.legend(loc="upper right", fontsize=8)
        self.image = png_image(width="100%", max_width="900px")
        self.points = 0  # step points drawn in the last render
        self.reset(None)

    def reset(self, classes: int | None) -> None:
        """Clear the lines (a new run) and draw the chance levels when the class count is known."""
        for k, ln in self.lines.items():
            if not k.endswith("chance"):
                ln.set_data([], [])
        c = classes if classes and classes > 1 else None
        self.lines["loss_chance"].set_ydata([math.log(c)] * 2 if c else [np.nan] * 2)
        self.lines["acc_chance"].set_ydata([1 / c] * 2 if c else [np.nan] * 2)
        self.points = 0
        self.fig.set_layout_engine(self.layout)

    def update(self, steps: list[StepEvent], epochs: list[EpochEvent]) -> None:
        """Move every line to the events received so far."""
        x = np.array([e.epoch for e in steps], dtype=float)
        for what in ("loss", "acc"):
            y = np.array([getattr(e, what) for e in steps], dtype=float)
            self.lines[f"{what}_raw"].set_data(x, y)
            self.lines[f"{what}_ema"].set_data(x, ema(y))
            self.lines[f"{what}_last"].set_data(x[-1:], y[-1:])
            ex = [e.epoch for e in epochs]
            ey = [np.nan if getattr(e, f"val_{what}") is None else getattr(e, f"val_{what}") for e in epochs]
            self.lines[f"{what}_val"].set_data(ex, ey)
        self.ax_loss.relim()
        self.ax_loss.autoscale_view()
        self.ax_acc.relim()
        self.ax_acc.autoscale_view(scaley=False)
        if len(x) and x[-1] > 0:
            for ax in (self.ax_loss, self.ax_acc):
                ax.set_xlim(0, max(x[-1], 1e-3) * 1.02)
        self.points = len(steps)

    def render(self) -> None:
        """Draw the figure into the Image widget."""
        self.image.value = png(self.fig)
        if self.points and self.fig.get_layout_engine() is not None:
            # keep the margins constrained layout found with real tick labels; re-solving them costs a third of a draw
            self.fig.set_layout_engine("none")


class LRView:
    """The planned LR (from the same Schedule the loop uses) and the LR the optimizer got so far."""

    def __init__(self) -> None:
        self.fig = Figure(figsize=(4.6, 3.0), dpi=DPI, layout="constrained")
        self.ax = self.fig.subplots()
        self.plan, = self.ax.plot([], [], color=COLORS["plan"], ls="--", lw=1.2, label="planned")
        self.seen, = self.ax.plot([], [], color=COLORS["lr"], lw=2, label="used so far")
        self.last, = self.ax.plot([], [], "o", color=COLORS["lr"], ms=4)
        self.ax.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
        self.ax.grid(alpha=0.3)
        self.ax.legend(fontsize=8, loc="upper right")
        self.image = png_image(width="100%", max_width="460px")
        self.curve: list[float] = []  # the data last drawn as the plan (tests compare it with schedule_curve)

    def set_plan(self, curve: list[float], steps_per_epoch: int) -> None:
        """Draw the whole planned curve (the preview before training, the dashed line during it)."""
        self.curve = list(curve)
        x = (np.arange(len(curve)) + 1) / max(1, steps_per_epoch)
        self.plan.set_data(x, curve)
        self.seen.set_data([], [])
        self.last.set_data([], [])
        self._rescale()

    def update(self, steps: list[StepEvent]) -> None:
        """The LRs the optimizer actually used, up to the last step received."""
        self.seen.set_data([e.epoch for e in steps], [e.lr for e in steps])
        self.last.set_data([e.epoch for e in steps[-1:]], [e.lr for e in steps[-1:]])
        self._rescale()

    def _rescale(self) -> None:
        self.ax.relim()
        self.ax.autoscale_view()
        ys = np.concatenate([np.asarray(self.plan.get_ydata(), float), np.asarray(self.seen.get_ydata(), float)])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        self.ax.set_yscale("log" if ys.size and ys.max() / ys.min() > 100 else "linear")

    def render(self) -> None:
        """Draw the figure into the Image widget."""
        self.image.value = png(self.fig)


class HistogramView:
    """Per-layer activation histograms of one snapshot; the grid is built once per run, then updated in place."""

    def __init__(self) -> None:
        self.fig: Figure | None = None
        self.layers: tuple[str, ...] = ()
        self.parts: list[tuple[Any, Any, Any, Any]] = []  # (axes, stairs, title, dead/saturated note) per layer

    def _build(self, layers: list[str]) -> None:
        from ..plots.training import layer_colors

        cols = min(5, len(layers))
        rows = math.ceil(len(layers) / cols)
        self.fig = Figure(figsize=(9.0, 0.6 + 1.9 * rows), dpi=DPI, layout="constrained")
        axes = np.atleast_1d(self.fig.subplots(rows, cols, squeeze=False)).ravel()
        colors = layer_colors(len(layers))
        self.parts = []
        for k, name in enumerate(layers):
            ax = axes[k]
            st = ax.stairs(np.zeros(1), [0.0, 1.0], fill=True, color=colors[k], alpha=0.85)
            title = ax.set_title(f"{k + 1}. {name}\n", fontsize=8)
            note = ax.text(0.97, 0.95, "", transform=ax.transAxes, ha="right", va="top", fontsize=7)
            ax.tick_params(labelsize=7)
            self.parts.append((ax, st, title, note))
        for ax in axes[len(layers):]:
            ax.set_visible(False)
        self.layers = tuple(layers)

    def draw(self, history: Any, i: int) -> bytes:
        """PNG of snapshot `i` of `history` (a labkit.probes.ProbeHistory)."""
        if self.fig is None or tuple(history.layers) != self.layers:
            self._build(list(history.layers))
        snap = history.snapshot(i)
        for (ax, st, title, note), name in zip(self.parts, self.layers):
            v = snap.get(name) or {}
            counts = np.asarray([0 if c is None else c for c in v.get("hist") or []], dtype=float)
            lo, hi = float(v.get("lo") or 0.0), float(v.get("hi") or 1.0)
            if counts.size and counts.sum() > 0 and math.isfinite(lo) and math.isfinite(hi) and hi > lo:
                frac = counts / counts.sum()
                st.set_data(frac, np.linspace(lo, hi, len(frac) + 1))
                srt = np.sort(frac)
                top = srt[-2] * 2.2 if len(srt) > 2 and srt[-2] > 0 and srt[-1] > 4 * srt[-2] else srt[-1] * 1.08
                ax.set_ylim(0, max(top, 1e-6))
                ax.set_xlim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
                extra = [f"{k} {float(v[k]):.0%}" for k in ("dead", "saturated")
                         if v.get(k) is not None and math.isfinite(float(v[k]))]
                note.set_text("\n".join(extra))
            else:
                st.set_data(np.zeros(1), [0.0, 1.0])
                note.set_text("no finite values")
            mean, std = v.get("mean"), v.get("std")
            title.set_text(f"{self.layers.index(name) + 1}. {name} ({v.get('activation', '?')})\n"
                           f"mean {float('nan') if mean is None else mean:.3g}  std {float('nan') if std is None else std:.3g}")
        out = png(self.fig)
        if self.fig.get_layout_engine() is not None:
            self.fig.set_layout_engine("none")  # margins found once; re-solving them is most of a draw
        return out


class ProbeViews:
    """Histograms (with a step slider to scrub through time), activation stats, gradients and update ratios."""

    PANELS = ("Histograms", "Mean/std, dead", "Gradients, updates")

    def __init__(self) -> None:
        self.events: list[ProbeEvent] = []
        self.history: Any = None
        self.images = [png_image(width="100%", max_width="900px") for _ in self.PANELS]
        self.slider = W.IntSlider(value=0, min=0, max=0, description="snapshot", continuous_update=False,
                                  style={"description_width": "70px"}, layout=W.Layout(width="520px"))
        self.slider_label = W.HTML()
        self.slider.observe(self._scrub, names="value")
        self.note = W.HTML("<i>Probe snapshots appear here while training (set probe every &gt; 0).</i>")
        self.tabs = W.Tab(children=[W.VBox([W.HBox([self.slider, self.slider_label]), self.images[0]]),
                                    self.images[1], self.images[2]], titles=self.PANELS)
        self.tabs.observe(lambda ch: self.render(), names="selected_index")
        self.widget = W.VBox([self.note, self.tabs])
        self.drawn = [-1, -1, -1]  # snapshot count each panel last drew
        self.follow = True  # the slider follows the newest snapshot until the learner moves it back
        self._busy = threading.Lock()
        self.hist_view = HistogramView()

    def reset(self) -> None:
        """Forget the previous run's snapshots."""
        self.events, self.history, self.drawn, self.follow = [], None, [-1, -1, -1], True
        self.slider.max = 0
        self.hist_view = HistogramView()

    def add(self, e: ProbeEvent) -> None:
        """Record a snapshot (called on the training thread; drawing happens later)."""
        self.events.append(e)

    @property
    def dirty(self) -> bool:
        """A new snapshot arrived since the visible panel was drawn."""
        return len(self.events) != self.drawn[self.tabs.selected_index or 0]

    def _history(self) -> Any:
        from ..probes import ProbeHistory

        if self.history is None or len(self.history) != len(self.events):
            self.history = ProbeHistory.from_events(list(self.events))
        return self.history

    def render(self, force_index: int | None = None) -> None:
        """Redraw the visible panel if it is out of date (or the histogram at the slider's snapshot)."""
        if not self.events:
            return
        from .. import plots

        with self._busy:
            hist = self._history()
            n = len(hist)
            panel = self.tabs.selected_index or 0
            self.note.value = (f"<small>{n} probe snapshot{'s' * (n != 1)}, steps {hist.steps[0]}-{hist.steps[-1]}, "
                               f"{len(hist.layers)} layers</small>")
            if panel == 0:
                at_end = self.slider.value >= self.slider.max
                self.slider.max = n - 1
                if self.follow and at_end and force_index is None:
                    self.slider.value = n - 1
                i = self.slider.value if force_index is None else force_index
                self.slider_label.value = f"step {hist.steps[i]} (epoch {hist.epochs[i]:.2f})"
                self.images[0].value = self.hist_view.draw(hist, i)
                self.drawn[0] = n if force_index is None else self.drawn[0]
                return
            elif panel == 1:
                fig = plots.activation_stats(hist)
            else:
                fig = plots.gradient_updates(hist)
            self.images[panel].value = png(fig)
            self.drawn[panel] = n if force_index is None or panel != 0 else self.drawn[panel]

    def _scrub(self, change: dict) -> None:
        if not self.events or (self.tabs.selected_index or 0) != 0:
            return
        self.follow = change["new"] >= self.slider.max
        if self._busy.locked():  # a render is under way; it will read the slider itself
            return
        self.render(force_index=change["new"])


class Progress:
    """A progress bar with step, epoch, speed and ETA."""

    def __init__(self) -> None:
        self.bar = W.IntProgress(value=0, min=0, max=1, bar_style="info", layout=W.Layout(width="260px"))
        self.label = W.HTML("<span style='color:#555'>ready</span>")
        self.widget = W.HBox([self.bar, self.label], layout=W.Layout(align_items="center"))

    def start(self, total: int) -> None:
        """A new run of `total` steps."""
        self.bar.max, self.bar.value, self.bar.bar_style = max(1, total), 0, "info"

    def update(self, e: StepEvent | None, total: int, val_acc: float | None) -> None:
        """Step, epoch, steps per second and time left."""
        if e is None:
            return
        done = e.step + 1
        self.bar.value = min(done, self.bar.max)
        rate = done / e.time if e.time > 0 else float("nan")
        eta = (total - done) / rate if rate and math.isfinite(rate) else float("nan")
        val = f" · val acc {val_acc:.3f}" if val_acc is not None else ""
        self.label.value = (f"step {done}/{total} · epoch {e.epoch:.2f} · loss {e.loss:.3f}{val} · "
                            f"{rate:.1f} steps/s · ETA {fmt_seconds(eta)}")

    def end(self, status: str) -> None:
        """Colour the bar by how the run ended."""
        self.bar.bar_style = {"completed": "success", "stopped": "warning"}.get(status, "danger")


class LiveViews:
    """An event subscriber that feeds every live view; rendering runs on its own thread, throttled."""

    def __init__(self, on_end: Callable[[EndEvent], None] | None = None):
        self.curves = CurvesView()
        self.lr = LRView()
        self.probes = ProbeViews()
        self.progress = Progress()
        self.on_end = on_end
        self.steps: list[StepEvent] = []
        self.epochs: list[EpochEvent] = []
        self.start: StartEvent | None = None
        self.end: EndEvent | None = None
        self.counts = {"start": 0, "step": 0, "epoch": 0, "probe": 0, "end": 0}
        self.renders = 0
        self.t_click = 0.0
        self.first_point_s: float | None = None  # seconds from begin() to the first drawn curve point
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._last_probe_render = 0.0
        self._lr_epochs = -1
        self._wait = RENDER_INTERVAL
        self._probe_wait = PROBE_INTERVAL
        self.render_cpu = 0.0  # CPU seconds the render thread spent drawing this run

    # -- lifecycle ------------------------------------------------------------------
    def begin(self, config: Config, plan: list[float] | None = None, steps_per_epoch: int | None = None) -> None:
        """Clear the views for a new run and start the render thread (call when Train is pressed)."""
        self.t_click = time.perf_counter()
        self.steps, self.epochs, self.start, self.end = [], [], None, None
        self.counts = {k: 0 for k in self.counts}
        self.first_point_s = None
        self.renders, self._lr_epochs, self._wait, self.render_cpu = 0, -1, RENDER_INTERVAL, 0.0
        self._probe_wait, self._last_probe_render = PROBE_INTERVAL, 0.0
        self.curves.reset(None)
        self.probes.reset()
        if plan is not None and steps_per_epoch:
            self.lr.set_plan(plan, steps_per_epoch)
        self.progress.start(len(plan) if plan else 1)
        self.progress.label.value = "<span style='color:#555'>loading data and building the model...</span>"
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="labkit-lab-render")
        self._thread.start()

    def __call__(self, e: Event) -> None:
        """Receive one event (on the training thread): store it, nothing heavier."""
        self.counts[e.kind] = self.counts.get(e.kind, 0) + 1
        if isinstance(e, StepEvent):
            self.steps.append(e)
            if len(self.steps) == 1:
                self._wake.set()  # draw the first point at once
        elif isinstance(e, EpochEvent):
            self.epochs.append(e)
        elif isinstance(e, ProbeEvent):
            self.probes.add(e)
        elif isinstance(e, StartEvent):
            self.start = e
            self.curves.reset(e.classes)
            self.progress.start(e.total_steps)
        elif isinstance(e, EndEvent):
            self.end = e
            self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the render thread to finish its final draw; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- drawing ----------------------------------------------------------------------
    def render_now(self) -> None:
        """Redraw every step-driven view from the events so far (and the probe panel if due)."""
        steps, epochs = list(self.steps), list(self.epochs)
        cpu = time.thread_time()
        if len(steps) != self.curves.points or self.end is not None:
            self.curves.update(steps, epochs)
            self.curves.render()
            if len(epochs) != self._lr_epochs or self.end is not None or self.renders == 0:
                self.lr.update(steps)  # the LR moves slowly: redrawn at the first point and at each epoch
                self.lr.render()
                self._lr_epochs = len(epochs)
            self.renders += 1
            if steps and self.first_point_s is None:
                self.first_point_s = time.perf_counter() - self.t_click
        spent = time.thread_time() - cpu
        self.render_cpu += spent
        self._wait = min(MAX_WAIT, max(RENDER_INTERVAL, spent / RENDER_BUDGET))
        total = self.start.total_steps if self.start else len(self.lr.curve)
        val = next((e.val_acc for e in reversed(epochs) if e.val_acc is not None), None)
        self.progress.update(steps[-1] if steps else None, total, val)
        now = time.perf_counter()
        if self.probes.dirty and (now - self._last_probe_render >= self._probe_wait or self.end is not None):
            cpu = time.thread_time()
            self.probes.render()
            spent = time.thread_time() - cpu
            self.render_cpu += spent
            self._probe_wait = min(MAX_PROBE_WAIT, max(PROBE_INTERVAL, spent / RENDER_BUDGET))
            self._last_probe_render = time.perf_counter()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._wait)
            self._wake.clear()
            ended = self.end is not None
            try:
                self.render_now()
            except Exception as err:  # a drawing problem must not kill the views; say what it was
                self.progress.label.value = f"<span style='color:#a00'>could not draw: {type(err).__name__}: {err}</span>"
            if ended:
                self.progress.end(self.end.status)
                if self.on_end is not None:
                    self.on_end(self.end)
                return
