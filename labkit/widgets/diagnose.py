"""The lab's Diagnose panel: findings about the run as it trains, the plots that show them, and the checks.

Thin: the judgement is labkit.diagnosis', the figures are labkit.plots', the
checks are labkit.babysit.checks'. The panel is an event subscriber whose __call__
only stores the event (LiveDiagnosis); its own thread re-diagnoses about once
a second and updates a fixed set of coloured cards in place (no widgets are
created while a run trains). Each card's button draws the figure that shows
the evidence, from the rows and probe snapshots received so far (or from a
stored run's files). "Check this config" runs the pre-training checks and
the LR range test with its short runs on a background thread, naming each part in
the status line as it starts; "Use suggested LR" puts the suggestion (the best short
run's rate) into the LR control (when the curve gives none, the button says
so and stays disabled). Nothing stale stays live: a new run clears
the cards and the plot of the previous one, and once the settings differ
from those checked, the check's result is marked as being for other
settings and its "Use suggested LR" button is disabled. Each finding's fixes (config path -> value)
show as buttons naming the settings and values; Apply hands the changes to
`apply` (the lab sets its controls), so the learner sees what changed and
trains again.
"""
from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W
from matplotlib.figure import Figure

from ..babysit.checks import run_checks
from ..config import Config
from ..diagnosis import Finding, LiveDiagnosis, diagnose_run
from ..errors import LabkitError
from ..events import EndEvent, Event, StartEvent
from ..fields import differing
from ..plots.babysit import lr_range_plot
from ..plots.training import run_figure
from ..runlog import RunLog
from .controls import describe_changes, setting_label  # noqa: F401  (setting_label: re-exported for callers)
from .live import png, png_image
from .notes import error_html, exception_html

# a check's result still holds when only these differ: the LR range test sweeps the LR itself, and where runs
# are stored changes nothing it measured
CHECK_IGNORES = ("optim.lr", "train.out", "train.name")
REFRESH_INTERVAL = 1.0  # seconds between live re-diagnoses (diagnose() on a few thousand rows takes milliseconds)
MAX_CARDS = 12  # card widgets built once; more findings than this are summarized in one line
MAX_FIXES = 7  # Apply buttons per card, built once (overfitting offers the most: up to 7)
PLOT_DPI = 80

STYLE = {  # severity -> (accent, background, label)
    "alarm": ("#c62828", "#fdecea", "ALARM"),
    "warn": ("#b26a00", "#fff6e0", "WARNING"),
    "info": ("#1d3557", "#eef4fb", "NOTE"),
    "not_judged": ("#666666", "#f3f3f3", "NOT JUDGED"),
}
PLOT_NAMES = {"learning_curves": "learning curves", "lr": "learning rate", "activations_first": "first histograms",
              "activations_last": "latest histograms", "activation_stats": "activation statistics",
              "activation_heatmap": "activation heatmap", "gradients": "gradients and updates"}


def card_html(f: Finding) -> str:
    """One finding as a coloured card: severity, title, evidence, suggestion."""
    accent, bg, label = STYLE["not_judged" if f.code == "not_judged" else f.severity]
    return (f"<div style='border-left:6px solid {accent};background:{bg};padding:6px 10px;border-radius:6px;"
            f"font-size:13px;line-height:1.35'>"
            f"<span style='color:{accent};font-weight:700;font-size:11px;letter-spacing:0.05em'>{label}</span> "
            f"<b>{html.escape(f.title)}</b><br>"
            f"<span style='color:#333'><b>evidence:</b> {html.escape(f.evidence)}</span><br>"
            f"<span style='color:#333'><b>try:</b> {html.escape(f.suggestion)}</span></div>")


class DiagnosePanel:
    """Live findings for the run in training, any past run's diagnosis, and the pre-training checks."""

    def __init__(self, out: str | None = None, base: Callable[[], Config] | None = None,
                 apply_lr: Callable[[float], None] | None = None,
                 apply: Callable[[dict[str, Any]], None] | None = None):
        """`apply(changes)` sets config values in the lab's controls (without it no Apply buttons are shown)."""
        self.out = out or "runs"
        self.base, self.apply_lr, self.apply = base, apply_lr, apply
        self.live: LiveDiagnosis | None = None
        self.findings: list[Finding] = []
        self.source: dict[str, Any] = {}  # what the cards describe: label, rows, history (or run_dir to read them)
        self.suggested_lr: float | None = None
        self.check_report: Any = None
        self.check_config: Config | None = None  # the settings the shown check result is for
        self.check_stale = False  # the settings changed since: its result and button are for another config
        self._plot_for: str | None = None  # the run label the shown plot was drawn from
        self._gen = 0  # bumped by begin/attach/past-run diagnosis: an older thread's result is dropped
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

        self.status = W.HTML("<i>Findings appear here while a run trains, or pick a past run below.</i>")
        self.cards: list[tuple[W.HTML, W.Button, W.VBox]] = []
        self.fix_buttons: list[list[W.Button]] = []  # per card: one Apply button per fix
        for i in range(MAX_CARDS):
            text = W.HTML()
            btn = W.Button(description="show the plot", icon="line-chart", layout=W.Layout(width="auto"))
            btn.on_click(lambda _, i=i: self._plot_async(i))
            fixes = []
            for j in range(MAX_FIXES):
                fb = W.Button(icon="wrench", layout=W.Layout(width="auto", display="none"))
                fb.on_click(lambda _, i=i, j=j: self.apply_fix(i, j))
                fixes.append(fb)
            self.fix_buttons.append(fixes)
            row = W.HBox([btn, *fixes], layout=W.Layout(flex_flow="row wrap"))
            box = W.VBox([text, row], layout=W.Layout(margin="3px 0", display="none"))
            self.cards.append((text, btn, box))
        self.more = W.HTML()
        self.plot_title = W.HTML()
        self.plot = png_image(width="100%", max_width="900px")

        self.runs = W.Dropdown(options=[], description="past run", style={"description_width": "70px"},
                               layout=W.Layout(width="520px"))
        self.runs_btn = W.Button(description="Diagnose", icon="search", layout=W.Layout(width="110px"))
        self.refresh_btn = W.Button(icon="refresh", tooltip="list the run store again", layout=W.Layout(width="40px"))
        self.runs_btn.on_click(lambda _: self.diagnose_past(self.runs.value))
        self.refresh_btn.on_click(lambda _: self.refresh())

        self.check_btn = W.Button(description="Check this config", icon="check", button_style="info",
                                  tooltip="initial loss vs ln C, overfit 20 images, LR range test (about 20 s on CIFAR)",
                                  layout=W.Layout(width="170px"))
        self.check_btn.on_click(lambda _: self.check_async())
        self.use_lr_btn = W.Button(description="Use suggested LR", icon="arrow-left", disabled=True,
                                   layout=W.Layout(width="auto"))
        self.use_lr_btn.on_click(lambda _: self.use_suggested_lr())
        self.check_status = W.HTML()
        self.check_text = W.HTML()
        self.check_img = png_image(width="100%", max_width="760px")

        title = "<div style='font-weight:600;font-size:14px;color:#1d3557;margin:6px 0 2px'>{}</div>"
        self.widget = W.VBox([
            W.HTML(title.format("Diagnosis of the run")), self.status,
            *[c[2] for c in self.cards], self.more, self.plot_title, self.plot,
            W.HTML(title.format("Diagnose a past run")), W.HBox([self.runs, self.runs_btn, self.refresh_btn]),
            W.HTML(title.format("Before training: sanity checks and the LR range test")),
            W.HBox([self.check_btn, self.use_lr_btn, self.check_status], layout=W.Layout(align_items="center")),
            self.check_text, self.check_img,
        ], layout=W.Layout(padding="4px"))
        self.refresh()

    # -- live runs ----------------------------------------------------------------------------------
    def begin(self, config: Config) -> None:
        """A run of `config` is about to start: forget the last one and diagnose this one as events arrive."""
        with self._lock:
            self._gen += 1
            gen = self._gen
            self.live = LiveDiagnosis(config)
            self.source = {"label": config.train.name or "this run", "live": self.live}
            self.findings = []
            for _, _, box in self.cards:  # the previous run's cards and plot are not about this run
                box.layout.display = "none"
            self.more.value = ""
            self._clear_plot()
        self.status.value = "<i>waiting for the first steps...</i>"
        self._wake.clear()
        self._spawn(self._live_loop, gen, self.live, name="labkit-lab-diagnose")

    def __call__(self, event: Event) -> None:
        """Receive one event on the training thread: store it (the panel's thread does the work)."""
        live = self.live
        if live is None:
            return
        live(event)
        if isinstance(event, (EndEvent, StartEvent)):
            if isinstance(event, StartEvent):
                self.source["label"] = event.run_id
            self._wake.set()

    def _live_loop(self, gen: int, live: LiveDiagnosis) -> None:
        seen = -1
        while gen == self._gen:
            self._wake.wait(REFRESH_INTERVAL)
            self._wake.clear()
            ended = live.ended
            if live.count != seen:
                seen = live.count
                try:
                    found = live.findings()
                except Exception as e:  # a diagnosis bug must not stop the views; say what it was
                    self.status.value = exception_html(e, "could not diagnose: ")
                else:
                    self._show(gen, found, live.log.snapshot(), live=not ended,
                               source={"label": self.source.get("label", "this run"), "live": live})
            if ended:
                return

    def attach(self, run: Any) -> None:
        """Final diagnosis of a finished run (a labkit Run, a RunRecord or a run directory), from its files."""
        run_dir = Path(getattr(run, "dir", run))
        model, data = getattr(run, "model", None), getattr(run, "data", None)
        with self._lock:
            self._gen += 1
            gen = self._gen
        self.refresh(select=str(run_dir))
        self._spawn(self._diagnose_dir, gen, run_dir, model, data, name="labkit-lab-diagnose-run")

    def diagnose_past(self, run_dir: str | None) -> None:
        """Diagnose a stored run (the dropdown's choice) on a background thread."""
        if not run_dir:
            self.status.value = f"<i>no runs under {html.escape(str(self.out))} yet</i>"
            return
        with self._lock:
            self._gen += 1
            gen = self._gen
        self.status.value = f"<i>diagnosing {html.escape(Path(run_dir).name)}...</i>"
        self._spawn(self._diagnose_dir, gen, Path(run_dir), None, None, name="labkit-lab-diagnose-past")

    def _diagnose_dir(self, gen: int, run_dir: Path, model: Any, data: Any) -> None:
        try:
            log = RunLog.load(run_dir)
            found = diagnose_run(run_dir, model=model, data=data, log=log)
        except LabkitError as e:
            if gen == self._gen:
                self.status.value = error_html(str(e))
            return
        self._show(gen, found, log, live=False, source={"label": run_dir.name, "run_dir": str(run_dir)})

    # -- showing ----------------------------------------------------------------------------------------
    def _show(self, gen: int, found: list[Finding], log: RunLog, live: bool, source: dict[str, Any]) -> None:
        with self._lock:
            if gen != self._gen:
                return  # a newer run or choice owns the cards
            self.findings = found
            history = log.probes
            self.source = dict(source, log=log)
            if self._plot_for is not None and self._plot_for != str(self.source.get("label")):
                self._clear_plot()  # drawn from another run: it would sit under this run's findings
            steps = len(log.steps)
            alarms = sum(f.severity == "alarm" for f in found)
            warns = sum(f.severity == "warn" and f.code != "not_judged" for f in found)
            where = f"{html.escape(str(self.source.get('label', 'run')))}: {steps} steps, {len(history)} probe snapshots"
            if alarms or warns:
                head = (f"<b style='color:{STYLE['alarm'][0] if alarms else STYLE['warn'][0]}'>{alarms} alarm"
                        f"{'s' * (alarms != 1)}, {warns} warning{'s' * (warns != 1)}</b>")
            else:
                head = f"<b style='color:#1b5e20'>no alarms</b>{' so far' if live else ''}"
            self.status.value = f"{head} &middot; {where}{' &middot; <i>live</i>' if live else ''}"
            for i, (text, btn, box) in enumerate(self.cards):
                if i < len(found):
                    f = found[i]
                    text.value = card_html(f)
                    btn.description = f"show the plot: {PLOT_NAMES.get(f.plot, f.plot)}"
                    box.layout.display = ""
                    self._show_fixes(i, f)
                else:
                    box.layout.display = "none"
            extra = len(found) - MAX_CARDS
            self.more.value = f"<small>... and {extra} more (see `labkit diagnose`)</small>" if extra > 0 else ""

    def _show_fixes(self, i: int, f: Finding) -> None:
        for j, fb in enumerate(self.fix_buttons[i]):
            if self.apply is not None and j < len(f.fixes):
                fb.description = f"Apply: {describe_changes(f.fixes[j].changes)}"
                fb.tooltip = f.fixes[j].reason or "set these values in the controls"
                fb.layout.display = ""
            else:
                fb.layout.display = "none"

    def apply_fix(self, i: int, j: int = 0) -> dict[str, Any] | None:
        """Set finding `i`'s fix `j` in the lab's controls (the Apply button); the changes, or None if none."""
        if self.apply is None or i >= len(self.findings) or j >= len(self.findings[i].fixes):
            return None
        changes = dict(self.findings[i].fixes[j].changes)
        try:
            self.apply(changes)
        except LabkitError as e:  # a value the controls refuse: say which
            self.status.value = error_html(str(e))
            return None
        self.status.value = (f"<b>set {html.escape(describe_changes(changes))}</b>: train again to see the effect "
                             f"<small>(for: {html.escape(self.findings[i].title)})</small>")
        return changes

    def _plot_async(self, i: int) -> None:
        self._spawn(self.show_plot, i, name="labkit-lab-diagnose-plot")

    def show_plot(self, i: int) -> Figure | None:
        """Draw the plot that shows finding `i` (from the rows and snapshots the cards were made from)."""
        if i >= len(self.findings):
            return None
        f = self.findings[i]
        log = self.source.get("log") or RunLog()
        self.plot_title.value = f"<i>drawing {html.escape(PLOT_NAMES.get(f.plot, f.plot))}...</i>"
        label = str(self.source.get("label", "run"))
        fig = run_figure(f.plot, log, log.probes, label)
        self.plot.value = png(fig, PLOT_DPI)
        self._plot_for = label
        self.plot_title.value = (f"<b>{html.escape(PLOT_NAMES.get(f.plot, f.plot))}</b> of {html.escape(label)} "
                                 f"<small>(for: {html.escape(f.title)})</small>")
        return fig

    def _clear_plot(self) -> None:
        self.plot.value = b""
        self.plot_title.value = ""
        self._plot_for = None

    # -- the run store ---------------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        """List the run store in the dropdown (newest first)."""
        from ..runs import list_runs

        try:
            runs = list(reversed(list_runs(self.out)))
        except (LabkitError, OSError):
            runs = []
        options = [(f"{r.id}  ({r.status})", str(r.dir)) for r in runs]
        self.runs.options = options
        if select is not None and any(v == select for _, v in options):
            self.runs.value = select

    # -- pre-training checks ----------------------------------------------------------------------------
    def check_async(self) -> None:
        """Run the checks on the current config in the background (the button's action)."""
        self._spawn(self.check, name="labkit-lab-check")

    def check(self) -> Any:
        """Run labkit.babysit.checks.run_checks on base() and show the report, the LR range plot and the suggested LR."""
        if self.base is None:
            self.check_status.value = "<i>no configuration to check</i>"
            return None
        self.check_btn.disabled, self.use_lr_btn.disabled = True, True
        self.use_lr_btn.description, self.use_lr_btn.tooltip = "Use suggested LR", ""
        self.check_status.value = "<i>checking...</i>"
        self.check_text.value, self.check_img.value = "", b""
        self.check_config, self.check_stale, self.suggested_lr = None, False, None
        try:
            cfg = self.base().validate()
            report = run_checks(cfg, progress=lambda s: setattr(self.check_status, "value",
                                                                 f"<i>{html.escape(str(s))}</i>"))
        except LabkitError as e:
            self.check_status.value = error_html(str(e))
            return None
        finally:
            self.check_btn.disabled = False
        self.check_report = report
        self.check_config = cfg
        ok = report.passed
        status = (f"<b style='color:{'#1b5e20' if ok else STYLE['alarm'][0]}'>"
                  f"{'all checks passed' if ok else 'some checks failed'}</b> <small>({report.seconds:.1f} s)</small>")
        self.check_text.value = (f"<pre style='font-size:12px;line-height:1.3;white-space:pre-wrap'>"
                                 f"{html.escape(report.text(fix_text=describe_changes))}</pre>")
        self.suggested_lr = report.lr.suggestion() if report.lr is not None else None
        self.check_img.value = png(lr_range_plot(report.lr), PLOT_DPI) if report.lr is not None else b""
        if self.suggested_lr is not None and self.apply_lr is not None:
            self.use_lr_btn.description = f"Use suggested LR {self.suggested_lr:.3g}"
            self.use_lr_btn.disabled = False
        elif report.lr is not None and report.lr.why_none:  # a flat curve: the button says so and stays off
            self.use_lr_btn.description = "No usable LR suggestion"
            self.use_lr_btn.tooltip = report.lr.why_none
            status += (f"<br><span style='color:{STYLE['warn'][0]}'>LR range test: no usable "
                       f"suggestion: {html.escape(report.lr.why_none)}</span>")
        # last: "all checks passed" is the sign the check is done, so the plot and the button are there when it shows
        self.check_status.value = status
        try:  # the settings may have changed while the check ran
            self.settings_changed(self.base().validate())
        except LabkitError:
            self.settings_changed(None)
        return report

    def settings_changed(self, config: Config | None) -> None:
        """The lab's settings are now `config` (None: they cannot train): mark a check of other settings stale."""
        checked = self.check_config
        if checked is None or self.check_stale:
            return
        changed = (["the settings cannot train"] if config is None else
                   [setting_label(p) for p in differing(config, checked) if p not in CHECK_IGNORES])
        if not changed:
            return
        self.check_stale = True
        self.use_lr_btn.disabled = True
        self.check_img.value = b""
        what = ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")
        self.check_status.value = (f"<b style='color:{STYLE['warn'][0]}'>this check was for other settings</b> "
                                   f"<small>(changed since: {html.escape(what)}): press Check this config "
                                   "again</small>")
        self.check_text.value = f"<div style='opacity:0.45'>{self.check_text.value}</div>"

    def use_suggested_lr(self) -> None:
        """Hand the LR range test's suggestion to apply_lr (the lab's LR control), unless it is for other settings."""
        if self.check_stale:
            return
        if self.suggested_lr is not None and self.apply_lr is not None:
            self.apply_lr(float(self.suggested_lr))
            self.check_status.value = f"<b>learning rate set to {self.suggested_lr:.3g}</b>"

    # -- threads ---------------------------------------------------------------------------------------
    def _spawn(self, target: Callable, *args: Any, name: str) -> None:
        t = threading.Thread(target=self._guard, args=(target, *args), daemon=True, name=name)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _guard(self, target: Callable, *args: Any) -> None:
        try:
            target(*args)
        except Exception as e:  # a background job's failure is shown, not lost in a thread
            self.status.value = exception_html(e)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the panel's background work (diagnoses, plots, checks); True when all of it finished."""
        for t in list(self._threads):
            t.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
