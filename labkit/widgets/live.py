"""Live views of a training run: learning curves, the LR so far, probes, and a progress bar with ETA.

`LiveViews` is an event subscriber that feeds a `labkit.runlog.RunLog`: the
training thread only appends to it (cheap). A render thread redraws, at most a
few times a second, the views whose data changed, by calling the same
`labkit.plots` functions that `labkit plot` and the notebooks use, on a
snapshot of the log: one drawing code for live and stored runs. Probe views
are redrawn when a new snapshot arrives (every probe.every steps), only for the
visible panel. Every view ends as PNG bytes in an ipywidgets.Image, which
reaches the page from a background thread in Voila and JupyterLab.
"""
from __future__ import annotations

import html
import io
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import ipywidgets as W
from matplotlib.figure import Figure

from ..config import Config
from ..events import EndEvent, EpochEvent, Event, StartEvent, StepEvent
from ..runlog import RunLog, Steps
from .notes import exception_html

RENDER_INTERVAL = 0.5  # seconds between redraws of the step-driven views (2 per second at most)
PROBE_INTERVAL = 1.5  # probe views are heavier: at most one redraw per this many seconds
# drawing competes with training for the cores (and the GIL): after each redraw the render thread waits
# until its CPU time is at most this fraction of the time passed, so live views cost training little
RENDER_BUDGET = 0.035  # for the curves, and again for the probe panel
MAX_WAIT, MAX_PROBE_WAIT = 3.0, 8.0  # but live means at least this often, whatever a draw costs
DPI = 72
# PNGs carry this many device pixels per CSS pixel: sharp on HiDPI screens (2 on most laptops and phones),
# downsampled by the browser on others. Each image is shown at most at its CSS size (its pixels / this) and
# shrinks with its container, so a figure is never stretched blurry nor cut off.
PIXEL_RATIO = 2
CURVES_SIZE = (9.0, 3.4)  # inches (width, height) at DPI: the dashboard's column, not a notebook page
LR_SIZE = (5.4, 3.0)


def png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (what an ipywidgets.Image shows): `dpi` CSS pixels per inch, PIXEL_RATIO x sharper."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi * PIXEL_RATIO)
    return buf.getvalue()


def png_css_width(data: bytes) -> int | None:
    """The CSS width of a PNG made by `png` (its pixel width from the IHDR header / PIXEL_RATIO); None if not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return max(1, round(int.from_bytes(data[16:20], "big") / PIXEL_RATIO))


def png_image(**layout: str) -> W.Image:
    """An Image widget for PNG figures: as wide as its container up to the figure's own CSS width, height
    in proportion; hidden while it has none (a browser draws an empty image as broken)."""
    layout = {"width": "100%", "height": "auto", **layout}
    img = W.Image(format="png", layout=W.Layout(**layout, display="none"))

    def show(change: dict) -> None:
        width = png_css_width(change["new"])
        if width:
            img.layout.max_width = f"{width}px"
        img.layout.display = "" if change["new"] else "none"

    img.observe(show, names="value")
    return img


def fmt_seconds(s: float) -> str:
    """Seconds as m:ss or h:mm:ss."""
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _tick_width(axis: Any) -> int:
    """The longest major tick label `axis` will draw, in characters (its locator and formatter, no drawing)."""
    try:
        return max((len(t) for t in axis.get_major_formatter().format_ticks(axis.get_major_locator()())), default=0)
    except Exception:  # a locator that needs a renderer: treat the shape as new (re-solve the layout)
        return -1


def _shape(fig: Figure) -> tuple:
    """What decides a figure's margins: its size, axes and scales, the width of their tick labels (an LR of
    1e-4 writes 0.00012 where 0.3 wrote 0.30, and margins solved for the short labels cut the long ones and
    the axis label off), title lines and figure legends."""
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    return (tuple(fig.get_size_inches()), len(fig.axes),
            tuple((ax.get_visible(), ax.get_yscale(), _tick_width(ax.yaxis), _tick_width(ax.xaxis)) for ax in fig.axes),
            title.count("\n"), tuple(tuple(t.get_text() for t in lg.get_texts()) for lg in fig.legends))


class FigureView:
    """One live figure slot: a labkit.plots Figure shown as PNG in an Image widget.

    Constrained layout's margins are solved for the first figure of a shape and reused for the next ones of
    the same shape (re-solving them is a third of a draw); a new shape (a log panel appears, the title grows
    a line) is solved again.
    """

    def __init__(self, **layout: str) -> None:
        self.image = png_image(**layout)
        self.fig: Figure | None = None  # the figure last shown (tests read its lines)
        self._layout: tuple[tuple, list, Any] | None = None

    def show(self, fig: Figure) -> None:
        """Draw `fig` into the Image widget."""
        key = _shape(fig)
        reuse = self._layout is not None and self._layout[0] == key
        if reuse:
            _, positions, title_pos = self._layout
            try:  # no engine at all: savefig then draws once (a placeholder engine still costs a layout pass)
                fig.set_layout_engine(None)
            except RuntimeError:  # a figure with a colorbar keeps a compatible placeholder
                fig.set_layout_engine("none")
            for ax, pos in zip(fig.axes, positions):
                ax.set_position(pos)
            if title_pos is not None and fig._suptitle is not None:
                fig._suptitle.set_position(title_pos[0])
                fig._suptitle.set_verticalalignment(title_pos[1])
        self.image.value = png(fig)
        if not reuse:
            t = fig._suptitle
            title_pos = (t.get_position(), t.get_verticalalignment()) if t is not None else None
            self._layout = (key, [ax.get_position(original=True) for ax in fig.axes], title_pos)
        self.fig = fig

    def reset(self) -> None:
        """Forget the figure and its layout (a new run)."""
        self.fig, self._layout = None, None


class CurvesView(FigureView):
    """Loss and accuracy against epochs: `labkit.plots.learning_curves` of the live log."""

    def __init__(self) -> None:
        super().__init__(width="100%", max_width="900px")
        self.points = 0  # step points drawn in the last render

    def reset(self) -> None:
        """Clear the view for a new run."""
        super().reset()
        self.points = 0

    def update(self, log: RunLog) -> None:
        """Redraw from a snapshot of the log."""
        from ..plots import learning_curves

        self.show(learning_curves({log.name: log}, run_notes=False, figsize=CURVES_SIZE))
        self.points = len(log.steps)


class LRView(FigureView):
    """The planned LR (from the same Schedule the loop uses) and the rates the optimizer used so far.

    Previews of a plan alone are kept (the last PREVIEWS plans, for every view of the process): going back to a
    schedule already drawn (cosine -> onecycle -> cosine, a preset and back, a second Lab) shows it at once
    instead of drawing it again (a quarter of a second of the cores training may be using).
    """

    PREVIEWS = 16
    _previews: "OrderedDict[tuple, tuple[bytes, Figure]]" = OrderedDict()

    def __init__(self) -> None:
        super().__init__(width="100%", max_width="480px")
        self.curve: list[float] = []  # the plan last drawn (tests compare it with schedule_curve)
        self.steps_per_epoch: int | None = None
        self._plan_only = False  # the image shows the plan alone (no run's rates)

    def set_plan(self, curve: list[float], steps_per_epoch: int) -> None:
        """The whole planned curve: the preview before training, the dashed line during it."""
        curve = list(curve)
        if curve == self.curve and steps_per_epoch == self.steps_per_epoch and self._plan_only and self.image.value:
            return  # this very preview is what the view shows (a change that leaves the schedule alone)
        self.curve, self.steps_per_epoch = curve, steps_per_epoch
        self._draw(None)

    def update(self, log: RunLog) -> None:
        """The rates the optimizer used, up to the last step in the log."""
        self._draw(log)

    def _draw(self, log: RunLog | None) -> None:
        from ..plots import lr_curve

        self._plan_only = log is None or not len(log.steps)
        if not self._plan_only:  # a run's rates over the plan: new every redraw while it trains
            self.show(lr_curve({"used so far": log}, self.steps_per_epoch or None, plan=self.curve, figsize=LR_SIZE))
            return
        key = (tuple(self.curve), self.steps_per_epoch)
        if key in self._previews:
            self._previews.move_to_end(key)
            self.image.value, self.fig = self._previews[key]
            return
        self.show(lr_curve({}, self.steps_per_epoch or None, plan=self.curve, figsize=LR_SIZE))
        self._previews[key] = (self.image.value, self.fig)
        while len(self._previews) > self.PREVIEWS:
            self._previews.popitem(last=False)


class ProbeViews:
    """Histograms (with a step slider to scrub through time), activation stats, gradients and update ratios."""

    PANELS = ("Histograms", "Mean/std, dead", "Gradients, updates")

    def __init__(self, log: RunLog | None = None) -> None:
        self.log = log if log is not None else RunLog.live()
        self.views = [FigureView(width="100%", max_width="900px") for _ in self.PANELS]
        self.images = [v.image for v in self.views]
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

    @property
    def events(self) -> list:
        """The probe snapshots received so far (as dicts: step, epoch, layers, params)."""
        return self.log.probe_snapshots()

    def reset(self, log: RunLog | None = None) -> None:
        """Forget the previous run's snapshots (follow `log` from now on)."""
        self.log = log if log is not None else RunLog.live()
        self.drawn, self.follow = [-1, -1, -1], True
        self.slider.max = 0
        for v in self.views:
            v.reset()

    @property
    def dirty(self) -> bool:
        """A new snapshot arrived since the visible panel was drawn."""
        return self.log.probe_count != self.drawn[self.tabs.selected_index or 0]

    def render(self, force_index: int | None = None) -> None:
        """Redraw the visible panel if it is out of date (or the histogram at the slider's snapshot)."""
        if not self.log.probe_count:
            return
        from .. import plots

        with self._busy:
            hist = self.log.probes
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
                self.views[0].show(plots.activation_histograms(hist, i))
                self.drawn[0] = n if force_index is None else self.drawn[0]
                return
            fig = plots.activation_stats(hist) if panel == 1 else plots.gradient_updates(hist)
            self.views[panel].show(fig)
            self.drawn[panel] = n

    def _scrub(self, change: dict) -> None:
        if not self.log.probe_count or (self.tabs.selected_index or 0) != 0:
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
        done = e.step  # a StepEvent's step counts the steps taken, this one included (1 after the first)
        self.bar.value = min(done, self.bar.max)
        rate = done / e.time if e.time > 0 else float("nan")
        eta = (total - done) / rate if rate and math.isfinite(rate) else float("nan")
        self.label.value = (f"step {done}/{total} · epoch {e.epoch:.2f} · loss {e.loss:.3f}{_val(val_acc)} · "
                            f"{rate:.1f} steps/s · ETA {fmt_seconds(eta)}")

    def end(self, status: str, last: StepEvent | None = None, total: int = 0, val_acc: float | None = None) -> None:
        """Colour the bar by how the run ended and say so: no speed or time left once nothing runs."""
        self.bar.bar_style = {"completed": "success", "stopped": "warning"}.get(status, "danger")
        color = {"completed": "#1b5e20", "stopped": "#7a4f00"}.get(status, "#9b1c1c")
        if last is None:
            where = "before its first step"
        else:
            where = (f"at step {last.step}/{total} · epoch {last.epoch:.2f} · loss {last.loss:.3f}{_val(val_acc)}"
                     if status != "completed" else
                     f"{last.step} steps · epoch {last.epoch:.2f} · loss {last.loss:.3f}{_val(val_acc)}")
        self.label.value = f"<span style='color:{color}'><b>{html.escape(status)}</b> {where}</span>"

    def warn(self) -> None:
        """Recolour a finished run's bar and status as a warning (e.g. completed, but at chance level)."""
        self.bar.bar_style = "warning"
        self.label.value = self.label.value.replace("color:#1b5e20", "color:#7a4f00")


def _val(val_acc: float | None) -> str:
    return f" · val acc {val_acc:.3f}" if val_acc is not None else ""


class LiveViews:
    """An event subscriber that feeds a RunLog and every live view; rendering runs on its own thread, throttled."""

    def __init__(self, on_end: Callable[[EndEvent], None] | None = None):
        self.log = RunLog.live()
        self.curves = CurvesView()
        self.lr = LRView()
        self.probes = ProbeViews(self.log)
        self.progress = Progress()
        self.on_end = on_end
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

    # -- the run so far (read from the log) --------------------------------------------
    @property
    def steps(self) -> Steps:
        """The steps received so far (arrays; iterating gives StepEvents)."""
        return self.log.steps

    @property
    def epochs(self) -> list[EpochEvent]:
        return self.log.epochs

    @property
    def start(self) -> StartEvent | None:
        return self.log.start

    @property
    def end(self) -> EndEvent | None:
        return self.log.end

    # -- lifecycle ------------------------------------------------------------------
    def begin(self, config: Config, plan: list[float] | None = None, steps_per_epoch: int | None = None) -> None:
        """Clear the views for a new run and start the render thread (call when Train is pressed)."""
        self.t_click = time.perf_counter()
        self.log = RunLog.live(config)
        self.counts = {k: 0 for k in self.counts}
        self.first_point_s = None
        self.renders, self._lr_epochs, self._wait, self.render_cpu = 0, -1, RENDER_INTERVAL, 0.0
        self._probe_wait, self._last_probe_render = PROBE_INTERVAL, 0.0
        self.curves.reset()
        self.probes.reset(self.log)
        if plan is not None and steps_per_epoch:
            self.lr.set_plan(plan, steps_per_epoch)
        self.progress.start(len(plan) if plan else 1)
        self.progress.label.value = "<span style='color:#555'>loading data and building the model...</span>"
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="labkit-lab-render")
        self._thread.start()

    def __call__(self, e: Event) -> None:
        """Receive one event (on the training thread): log it, nothing heavier."""
        self.counts[e.kind] = self.counts.get(e.kind, 0) + 1
        self.log(e)
        if isinstance(e, StepEvent):
            if self.counts["step"] == 1:
                self._wake.set()  # draw the first point at once
        elif isinstance(e, StartEvent):
            self.progress.start(e.total_steps)
        elif isinstance(e, EndEvent):
            self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the render thread to finish its final draw; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- drawing ----------------------------------------------------------------------
    def render_now(self) -> None:
        """Redraw every step-driven view from the log so far (and the probe panel if due)."""
        log = self.log.snapshot()  # one consistent moment for every view of this render
        steps, n_epochs = log.steps, len(log.epochs)
        cpu = time.thread_time()
        if len(steps) != self.curves.points or log.end is not None:
            self.curves.update(log)
            if n_epochs != self._lr_epochs or log.end is not None or self.renders == 0:
                self.lr.update(log)  # the LR moves slowly: redrawn at the first point and at each epoch
                self._lr_epochs = n_epochs
            self.renders += 1
            if len(steps) and self.first_point_s is None:
                self.first_point_s = time.perf_counter() - self.t_click
        spent = time.thread_time() - cpu
        self.render_cpu += spent
        self._wait = min(MAX_WAIT, max(RENDER_INTERVAL, spent / RENDER_BUDGET))
        total = log.total_steps if log.start else len(self.lr.curve)
        val = next((e.val_acc for e in reversed(log.epochs) if e.val_acc is not None), None)
        self.progress.update(steps.last, total, val)
        now = time.perf_counter()
        if self.probes.dirty and (now - self._last_probe_render >= self._probe_wait or log.end is not None):
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
            end = self.end
            try:
                self.render_now()
            except Exception as err:  # a drawing problem must not kill the views; say what it was
                self.progress.label.value = exception_html(err, "could not draw: ")
            if end is not None:
                log = self.log.snapshot()
                val = next((e.val_acc for e in reversed(log.epochs) if e.val_acc is not None), None)
                self.progress.end(end.status, log.steps.last, log.total_steps if log.start else len(self.lr.curve),
                                  val)
                if self.on_end is not None:
                    self.on_end(end)
                return
