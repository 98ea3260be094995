"""The Ensemble tab: pick past runs and score them together; see one run's averaged weights and snapshots.

Scoring calls `labkit.ensemble.ensemble` (what `labkit ensemble RUN_DIR ...` prints) on a background thread and
shows its table and `labkit.plots.ensemble_figure`; a run trained with --ema, --swa-start or --snapshots
shows `averaging_figure` and, for snapshots, `snapshot_schedule`. Runs are offered from the run store only.
"""
from __future__ import annotations

import html
import threading
from typing import Any, Callable

import ipywidgets as W

from ..errors import LabkitError
from ..runlog import RunLog
from ..runs import RunRecord, list_runs
from .compare import run_label
from .live import png, png_image
from .notes import error_html

WEIGHTS = [("best.pt (raw weights)", "best"), ("ema.pt (EMA weights)", "ema"), ("swa.pt (SWA weights)", "swa")]


def result_html(result: Any) -> str:
    """An ensemble's scores as an HTML table: each member, their mean, the best member, the ensemble."""
    cell = "style='padding:2px 10px;text-align:right'"
    rows = [f"<tr><td style='padding:2px 10px'>{html.escape(m.id)}</td><td {cell}>{100 * m.acc:.2f}%</td>"
            f"<td {cell}>{m.loss:.4f}</td></tr>" for m in result.members]
    mean_loss = sum(m.loss for m in result.members) / len(result.members)
    rows.append(f"<tr style='border-top:1px solid #999'><td style='padding:2px 10px'><i>mean of the members</i></td>"
                f"<td {cell}>{100 * result.mean_acc:.2f}%</td><td {cell}>{mean_loss:.4f}</td></tr>")
    rows.append(f"<tr><td style='padding:2px 10px'><i>best member</i> ({html.escape(result.best.id)})</td>"
                f"<td {cell}>{100 * result.best.acc:.2f}%</td><td {cell}>{result.best.loss:.4f}</td></tr>")
    gain = 100 * (result.acc - result.mean_acc)
    rows.append(f"<tr style='font-weight:600;color:#c1121f'><td style='padding:2px 10px'>ensemble "
                f"({gain:+.2f} points over the mean)</td><td {cell}>{100 * result.acc:.2f}%</td>"
                f"<td {cell}>{result.loss:.4f}</td></tr>")
    return (f"<div style='font-size:12px;color:#555'>{result.dataset} test set, {result.images:,} examples, "
            f"{html.escape(result.weights)} weights, softmax averaged</div>"
            f"<table style='border-collapse:collapse;font-size:13px'><tr><th></th><th {cell}>test acc</th>"
            f"<th {cell}>test loss</th></tr>{''.join(rows)}</table>")


class EnsemblePanel:
    """Score past runs as an ensemble; `.widget` is the tab. `score(wait=True)` for scripts and tests."""

    def __init__(self, out: str | Callable[[], str] = "runs"):
        self._out = out
        self.runs: dict[str, RunRecord] = {}
        self.result: Any = None
        self.thread: threading.Thread | None = None
        self.pick = W.SelectMultiple(options=[], rows=8, description="runs", layout=W.Layout(width="560px"),
                                     style={"description_width": "50px"})
        self.weights = W.Dropdown(options=WEIGHTS, value="best", description="weights",
                                  style={"description_width": "50px"}, layout=W.Layout(width="300px"))
        self.score_btn = W.Button(description="Score together", icon="calculator", button_style="primary",
                                  tooltip="average the chosen runs' softmax on the test set")
        self.score_btn.on_click(lambda _: self.score())
        self.refresh_btn = W.Button(description="Refresh list", icon="refresh")
        self.refresh_btn.on_click(lambda _: self.refresh())
        self.note = W.HTML()
        self.table = W.HTML()
        self.figure = png_image(width="100%", max_width="900px")
        self.one = W.Dropdown(options=[], description="run", layout=W.Layout(width="560px"),
                              style={"description_width": "50px"})
        self.one.observe(lambda ch: self.show_run(), names="value")
        self.run_note = W.HTML()
        self.averaging = png_image(width="100%", max_width="900px")
        self.schedule = png_image(width="100%", max_width="900px")
        self.widget = W.VBox([
            W.HTML("<h3 style='margin:4px 0'>Ensembles</h3><span style='color:#555'>Independently trained runs "
                   "usually beat any one of them: pick runs of one dataset (Ctrl/Shift-click) and score their "
                   "averaged softmax on the test set.</span>"),
            W.HBox([self.pick, W.VBox([self.refresh_btn, self.weights, self.score_btn])]),
            self.note, self.table, self.figure,
            W.HTML("<h4 style='margin:10px 0 2px'>One run: raw vs averaged weights vs snapshots</h4>"
                   "<span style='color:#555'>Runs trained with EMA, SWA or snapshots (the Averaging settings) "
                   "show each of their weights here.</span>"),
            self.one, self.run_note, self.averaging, self.schedule,
        ])

    @property
    def out(self) -> str:
        return self._out() if callable(self._out) else self._out

    def refresh(self) -> None:
        """Re-read the run store (newest first), keeping the selection where the runs still exist."""
        self.runs = {r.id: r for r in reversed(list_runs(self.out)) if r.checkpoint is not None}
        labels = [(run_label(r), r.id) for r in self.runs.values()]
        keep = tuple(v for v in self.pick.value if v in self.runs)
        self.pick.options = labels
        self.pick.value = keep
        averaged = [(run_label(r), r.id) for r in self.runs.values()
                    if any(k in r.summary for k in ("ema", "swa", "snapshots"))]
        current = self.one.value
        self.one.options = averaged
        if current in dict((v, k) for k, v in averaged):
            self.one.value = current
        self.note.value = ("" if labels else
                           f"<i>No finished runs in {html.escape(str(self.out))} yet: train some in the Train tab "
                           "(change the seed for independent members).</i>")
        if not averaged:
            self.run_note.value = "<i>No run with EMA, SWA or snapshots yet.</i>"

    def attach(self, run: Any) -> None:
        """A run ended in the lab: offer it."""
        self.refresh()

    def score(self, wait: bool = False) -> None:
        """Score the selected runs as an ensemble (on a thread; `wait` blocks until the table is shown)."""
        chosen = [self.runs[i] for i in self.pick.value if i in self.runs]
        if not chosen:
            self.note.value = error_html("Select one or more runs first.")
            return
        self.score_btn.disabled = True
        self.note.value = f"<i>scoring {len(chosen)} run{'s' * (len(chosen) != 1)} on the test set...</i>"
        self.thread = threading.Thread(target=self._score, args=(chosen, self.weights.value), daemon=True,
                                       name="labkit-lab-ensemble")
        self.thread.start()
        if wait:
            self.thread.join()

    def _score(self, chosen: list[RunRecord], weights: str) -> None:
        from ..ensemble import ensemble
        from ..plots import ensemble_figure

        try:
            self.result = ensemble(chosen, weights=weights)
            self.table.value = result_html(self.result)
            self.figure.value = png(ensemble_figure(self.result))
            self.note.value = ""
        except LabkitError as e:
            self.result = None
            self.table.value, self.figure.value = "", b""
            self.note.value = error_html(str(e))
        finally:
            self.score_btn.disabled = False

    def show_run(self) -> None:
        """The chosen run's raw, EMA, SWA and snapshot accuracies, and its snapshot schedule."""
        from ..plots import averaging_figure, snapshot_schedule

        r = self.runs.get(self.one.value) if self.one.value else None
        if r is None:
            self.averaging.value = self.schedule.value = b""
            return
        log = RunLog.load(r)
        self.averaging.value = png(averaging_figure(log))
        self.schedule.value = png(snapshot_schedule(log)) if log.snapshot_steps else b""
        self.run_note.value = ""
