"""The Compare tab: pick past runs from the run store, overlay their curves, see their configs side by side.

Runs are chosen from `labkit.runs.list_runs` (paths come only from the run
store); the config JSON and the equivalent `labkit train ...` command of any
run are shown in text boxes ready to copy, and can be loaded into the controls.
"""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as W

from ..fields import command_line
from ..config import Config
from ..runlog import RunLog
from ..runs import RunRecord, compare, list_runs
from .live import png, png_image


def run_label(r: RunRecord) -> str:
    """One line naming a run: id, status and its best validation accuracy."""
    final = r.summary.get("final", {}) or {}
    acc = final.get("val_acc")
    return f"{r.id} · {r.status}" + (f" · val acc {acc:.3f}" if isinstance(acc, (int, float)) else "")


def config_table(runs: list[RunRecord]) -> str:
    """An HTML table of the config paths whose values differ between `runs`."""
    diff = compare(runs)
    if not runs:
        return ""
    if not diff:
        return "<i>These runs have identical configs.</i>" if len(runs) > 1 else ""
    head = "".join(f"<th style='padding:2px 8px'>{html.escape(r.id)}</th>" for r in runs)
    body = "".join(
        f"<tr><td style='padding:2px 8px'><code>{html.escape(k)}</code></td>"
        + "".join(f"<td style='padding:2px 8px'>{html.escape(str(v))}</td>" for v in vals) + "</tr>"
        for k, vals in diff.items())
    return (f"<table style='border-collapse:collapse;font-size:12px'><tr><th style='text-align:left'>setting</th>"
            f"{head}</tr>{body}</table>")


class CompareTab:
    """Overlay past runs; `.widget` is the tab, `.load` (if given) receives a Config to fill the controls."""

    def __init__(self, out: str | Callable[[], str] = "runs", load: Callable[[Config], None] | None = None):
        self._out = out
        self.load = load
        self.runs: dict[str, RunRecord] = {}
        self.pick = W.SelectMultiple(options=[], rows=8, description="runs",
                                     layout=W.Layout(width="560px"), style={"description_width": "50px"})
        self.refresh_btn = W.Button(description="Refresh list", icon="refresh")
        self.refresh_btn.on_click(lambda _: self.refresh())
        self.pick.observe(lambda ch: self.show(), names="value")
        self.one = W.Dropdown(options=[], description="run", layout=W.Layout(width="560px"),
                              style={"description_width": "50px"})
        self.one.observe(lambda ch: self.show_one(), names="value")
        self.command = W.Textarea(layout=W.Layout(width="100%", height="60px"))
        self.config_json = W.Textarea(layout=W.Layout(width="100%", height="220px"))
        self.load_btn = W.Button(description="Load into controls", icon="upload",
                                 tooltip="fill the Train tab's controls with this run's config")
        self.load_btn.on_click(lambda _: self._load())
        self.curves = png_image(width="100%", max_width="900px")
        self.table = W.HTML()
        self.note = W.HTML()
        self.widget = W.VBox([
            W.HTML("<h3 style='margin:4px 0'>Compare runs</h3>"
                   "<span style='color:#555'>Select runs (Ctrl/Shift-click for several) to overlay their curves.</span>"),
            W.HBox([self.pick, self.refresh_btn]), self.note, self.curves, self.table,
            W.HTML("<h4 style='margin:8px 0 2px'>Reproduce a run</h4>"), W.HBox([self.one, self.load_btn]),
            W.HTML("<small>command line</small>"), self.command, W.HTML("<small>config.json</small>"), self.config_json,
        ])

    @property
    def out(self) -> str:
        return self._out() if callable(self._out) else self._out

    def refresh(self) -> None:
        """Re-read the run store (newest first)."""
        self.runs = {r.id: r for r in reversed(list_runs(self.out))}
        labels = [(run_label(r), r.id) for r in self.runs.values()]
        keep = tuple(v for v in self.pick.value if v in self.runs)
        self.pick.options = labels
        self.pick.value = keep
        self.one.options = labels
        if not labels:
            self.note.value = f"<i>No runs in {html.escape(str(self.out))} yet: train one in the Train tab.</i>"
        else:
            self.note.value = ""

    def show(self) -> None:
        """Overlay the selected runs' curves and tabulate their differing settings."""
        from ..plots import learning_curves

        chosen = [self.runs[i] for i in self.pick.value if i in self.runs]
        if not chosen:
            self.curves.value, self.table.value = b"", ""
            return
        self.curves.value = png(learning_curves({r.id: RunLog.load(r) for r in chosen}))
        self.table.value = config_table(chosen)
        self.one.value = chosen[-1].id

    def show_one(self) -> None:
        """The command and config JSON of the run in the single-run picker."""
        r = self.runs.get(self.one.value) if self.one.value else None
        if r is None or r.config is None:
            self.command.value = self.config_json.value = ""
            return
        self.command.value = command_line(r.config)
        self.config_json.value = r.config.to_json()

    def _load(self) -> None:
        r = self.runs.get(self.one.value) if self.one.value else None
        if r is not None and r.config is not None and self.load is not None:
            self.load(r.config)
