"""The lab's controls: one widget per config field, built from its declaration in labkit.fields, producing a Config.

Kinds, labels and dropdown names come from the field declarations (a new
optimizer in OPTIMIZERS appears here by itself); optimizer and schedule
parameters are shown only where the chosen entry uses them. State is the
Config the widgets describe, nothing more.

Number boxes hold what was typed, in range or not: a bounded box would
silently change -5 into 0, which means "all images" for the subset and
"probes off" for probe every. A value outside the field's range is said
beside its control instead (`problem`), and the lab disables Train with the
reason.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Callable

import ipywidgets as W
import traitlets

from ..config import Config
from ..errors import LabkitError
from ..fields import FIELDS, SECTIONS as SECTION_TITLES, get_field, relevant, value_text
from ..registry import Registry
from .notes import ERROR_COLOR
from .transfer import RunPicker

LABEL_W = "150px"  # the longest labels ("milestones (fractions)", "probe every (steps)") fit without "..."
CONTROL_W = "300px"
SLIDER_W = "140px"
UNDER_MARGIN = "0 0 4px 154px"  # help and notes start under the input, not under the label
UNDER_W = "240px"  # and end inside the settings column (450 px less the accordion's padding)

PLACEHOLDER = "(choose a preset)"

PRESETS: dict[str, dict[str, Any]] = {
    "lecture baseline": {"data.dataset": "cifar10", "data.subset": 5000, "model.kind": "convnet", "model.width": 32,
                         "train.epochs": 5},
    "spirals (instant, offline)": {"data.dataset": "spirals", "model.kind": "mlp", "model.depth": 3, "model.width": 64,
                                   "optim.name": "adam", "optim.lr": 0.01, "optim.weight_decay": 0.0,
                                   "schedule.name": "cosine", "reg.label_smoothing": 0.0, "train.epochs": 20,
                                   "train.batch_size": 64, "probe.every": 10},
    "bad init": {"data.dataset": "cifar10", "data.subset": 5000, "model.kind": "mlp", "model.depth": 8,
                 "model.width": 128, "model.activation": "tanh", "model.init": "large", "model.norm": "none",
                 "optim.name": "sgd", "optim.lr": 0.01, "schedule.name": "constant", "train.epochs": 3},
    "too high LR": {"data.dataset": "cifar10", "data.subset": 5000, "model.norm": "none", "optim.name": "momentum",
                    "optim.lr": 8.0, "schedule.name": "constant", "train.epochs": 3},
    "strong regularization": {"data.dataset": "cifar10", "data.subset": 5000, "model.dropout": 0.5,
                              "optim.weight_decay": 5e-3, "reg.mixup": 1.0, "reg.cutout": 12,
                              "reg.label_smoothing": 0.2, "train.epochs": 5},
}

# {section title: paths}, in the declarations' order
SECTIONS: dict[str, tuple[str, ...]] = {
    title: tuple(f.path for f in FIELDS.values() if f.section == title) for title in SECTION_TITLES}

# registry-backed dropdowns show the chosen entry's one-line help below them
HELP_TABLES: dict[str, Registry] = {
    f.path: f.choices for f in FIELDS.values()
    if f.section and isinstance(f.choices, Registry) and any(e.help for e in f.choices)}


def _layout() -> W.Layout:
    return W.Layout(width=CONTROL_W)


def _style() -> dict:
    return {"description_width": LABEL_W}


def setting_label(path: str) -> str:
    """The name the lab's controls give `path` ("learning rate" for optim.lr), from its field declaration."""
    f = FIELDS.get(path)
    return f.widget_label() if f is not None else path


def lab_words(text: str) -> str:
    """A message written for the command line, in the lab's words: each flag of a lab control (`--lr`) becomes
    the control's label in quotes ("learning rate"); other flags stay as they are."""
    labels = {f.flag: f.widget_label() for f in FIELDS.values() if f.flag and f.section}
    return re.sub(r"--[a-z][a-z0-9-]*\b", lambda m: f"'{labels[m[0]]}'" if m[0] in labels else m[0], text)


def describe_changes(changes: dict[str, Any]) -> str:
    """Settings as the lab shows them: "learning rate = 0.01, warmup (epochs) = 1"."""
    return ", ".join(f"{setting_label(p)} = {value_text(v)}" for p, v in changes.items())


def field_problem(path: str, value: Any) -> str | None:
    """Why `value` does not fit the field at `path`, in the lab's words; None when it fits.

    The field's own range and names (labkit.fields) decide; the words name the control as the lab labels it.
    """
    f = get_field(path)
    if f.choices is not None and value not in f.offered():
        return f"{value!r} is not offered; choose one of: {', '.join(f.offered())}"
    if not f.is_range:
        return None
    for v in (value if f.is_list else [value]):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{v!r} is not a number; allowed: {f.range_text()}{f.hint}"
        if not f.in_range(v):
            return f"{value_text(v)} is out of range; allowed: {f.range_text()}{f.hint}"
    return None


def problem_html(text: str) -> str:
    """A control's note: what is wrong with its value (red, small, wrapped to the column)."""
    return (f"<div style='white-space:normal;line-height:1.3;color:{ERROR_COLOR};font-size:12px'>&#9888; "
            f"{html.escape(text)}</div>")


class LogNumber(W.HBox):
    """A number box holding the exact value, with a log slider beside it for dragging across decades.

    A log slider alone snaps typed values to its steps (0.003 became 3.16e-3); here the box is the value
    and the slider only moves it when dragged. A log scale has no 0, so the slider starts at the field's
    `log_min`; smaller values are typed. The box is unbounded: a value outside the field's range (0, a
    negative rate) stays as typed and the lab says beside it why it cannot train.
    """

    value = traitlets.Float()

    def __init__(self, value: float, lo: float, hi: float, log_min: float, step: float, **kw: Any):
        self.box = W.FloatText(value=value, **kw)
        self._step = step
        self._ends = (log_min, hi)
        self.slider = W.FloatLogSlider(value=self._clamp(value), base=10, min=math.log10(log_min),
                                       max=math.log10(hi), step=step, readout=False,
                                       layout=W.Layout(width=SLIDER_W))
        super().__init__([self.box, self.slider])
        self.value = self.box.value
        traitlets.link((self.box, "value"), (self, "value"))
        self.box.observe(self._from_box, names="value")
        self.slider.observe(self._from_slider, names="value")

    @property
    def description(self) -> str:
        """The label, as other controls have it."""
        return self.box.description

    def _clamp(self, v: float) -> float:
        return min(max(v, self._ends[0]), self._ends[1])

    def _stop(self, v: float) -> int:
        return round(math.log10(self._clamp(v)) / self._step)  # the slider position a value snaps to

    def _from_box(self, change: dict) -> None:
        if self._stop(self.slider.value) != self._stop(change["new"]):
            self.slider.value = self._clamp(change["new"])

    def _from_slider(self, change: dict) -> None:
        # the browser echoes a value set from the box snapped to a step: that is not a drag, keep the exact value
        if self._stop(change["new"]) != self._stop(self.box.value):
            self.box.value = float(f"{change['new']:.3g}")


_DEFAULT = object()


def make_widget(path: str, value: Any = _DEFAULT, runs: Callable[[], list[tuple[str, str]]] | None = None) -> W.Widget:
    """The widget for one config field, from its declaration (showing `value`, else the field's default).

    `runs`: what a "run" widget (model.init_from's "start from") lists, as (label, run directory) pairs.
    """
    f = get_field(path)
    value = f.default if value is _DEFAULT else value
    kw = {"description": f.widget_label(), "style": _style(), "layout": _layout(), "tooltip": f.help}
    kind = f.widget_kind()
    if kind == "run":
        return RunPicker(value, runs, **kw)
    if kind == "dropdown":
        return W.Dropdown(options=f.offered(), value=value, **kw)
    if kind == "checkbox":
        return W.Checkbox(value=bool(value), indent=False, **kw)
    if kind == "log":
        return LogNumber(value, f.lo, f.hi, f.log_min, f.step, **kw)
    if kind == "slider":
        return W.FloatSlider(value=value, min=f.lo, max=f.hi, step=f.step, readout_format=".2f", **kw)
    if kind == "int":
        return W.IntText(value=value, **kw)  # unbounded on purpose: see the module doc
    if kind == "float":
        return W.FloatText(value=value, **kw)
    if kind == "list":
        return W.Text(value=value_text(value), **kw)
    return W.Text(value="" if value is None else str(value), **kw)


class Controls:
    """Every control of the lab, in sections; `.config` is the Config they describe."""

    def __init__(self, base: Config | None = None, on_change: Callable[[Config | None, str | None], None] | None = None,
                 runs: Callable[[], list[tuple[str, str]]] | None = None):
        self.base = (base or Config()).copy()
        self.on_change = on_change
        self._silent = False
        self.widgets: dict[str, W.Widget] = {}
        for paths in SECTIONS.values():
            for path in paths:
                w = make_widget(path, self.base.get(path), runs)
                w.observe(lambda ch, p=path: self._changed(p), names="value")
                self.widgets[path] = w
        self.help = {path: W.HTML(layout=W.Layout(margin=UNDER_MARGIN, width=UNDER_W)) for path in HELP_TABLES}
        # beside each control: why its value cannot train (hidden while it can)
        self.notes = {path: W.HTML(layout=W.Layout(margin=UNDER_MARGIN, width=UNDER_W, display="none"))
                      for path in self.widgets}
        self.preset = W.Dropdown(options=[PLACEHOLDER, *PRESETS], value=PLACEHOLDER, description="preset",
                                 style={"description_width": "60px"}, layout=W.Layout(width="330px"))
        self.preset.observe(self._preset_chosen, names="value")
        self._preset_busy = False
        self.config_problem: tuple[str, str] | None = None  # (path, why) of a whole-config error naming a control
        boxes = []
        for title, paths in SECTIONS.items():
            rows: list[W.Widget] = []
            for p in paths:
                rows.append(self.widgets[p])
                rows.append(self.notes[p])
                if p in self.help:
                    rows.append(self.help[p])
            boxes.append(W.VBox(rows, layout=W.Layout(padding="4px")))
        self.accordion = W.Accordion(children=boxes, titles=tuple(SECTIONS), selected_index=0)
        self.widget = W.VBox([self.preset, self.accordion])
        self._show_relevant()

    # -- config <-> widgets ---------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Each control's raw value by config path."""
        return {p: w.value for p, w in self.widgets.items()}

    @property
    def config(self) -> Config:
        """The Config the controls describe (not validated: call .validate() for the readable error)."""
        cfg = self.base.copy()
        for path, w in self.widgets.items():
            v = w.value
            if isinstance(v, str) or FIELDS[path].is_list:
                cfg.set(path, str(v))
            else:
                cfg.set(path, v)
        return cfg

    def set_config(self, cfg: Config) -> None:
        """Fill every control from `cfg` (fields without a control are kept in the base config)."""
        self._show_preset(None)  # settings from elsewhere (a run, a fix, a link) are no preset
        self._silent = True
        try:
            self.base = cfg.copy()
            for path, w in self.widgets.items():
                v = cfg.get(path)
                if FIELDS[path].is_list:
                    v = value_text(v)
                elif isinstance(w, RunPicker):
                    w.select(v)
                    continue
                elif isinstance(w, W.Dropdown) and v not in w.options:
                    continue  # e.g. dataset "folder": kept in the base config, not offered here
                elif isinstance(w, W.Text) and v is None:
                    v = ""
                w.value = v
        finally:
            self._silent = False
        self._changed(None)

    def refresh_runs(self) -> None:
        """Re-read the run store into the "start from" menus (after a run ends, a new source may be there)."""
        for w in self.widgets.values():
            if isinstance(w, RunPicker):
                w.refresh()

    def apply_preset(self, name: str) -> None:
        """Reset to the defaults (keeping the run store) and apply the named preset."""
        if name not in PRESETS:
            raise LabkitError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        cfg = Config().replace(**{"train.out": self.base.train.out}).replace(**PRESETS[name])
        self.set_config(cfg)
        self._show_preset(name)

    # -- problems beside the controls ----------------------------------------------
    def problem(self, path: str) -> str | None:
        """What is wrong with the value in `path`'s control (its range or names), or None."""
        w = self.widgets[path]
        if FIELDS[path].is_list:
            try:
                value = Config().set(path, str(w.value)).get(path)
            except LabkitError as e:
                return str(e)
        else:
            value = w.value
        return field_problem(path, value)

    def problems(self) -> dict[str, str]:
        """Every control whose value does not fit its field: {path: why}."""
        return {p: text for p in self.widgets if (text := self.problem(p)) is not None}

    def show_config_problem(self, error: str | None) -> None:
        """Show a whole-config error (e.g. epochs 0 without steps) beside the control it names, if it names one."""
        m = re.match(r"\s*([a-z_]+\.[a-z_]+)=?", error or "")
        if m and m.group(1) in self.widgets and error:  # beside its control the path goes without saying
            self.config_problem = (m.group(1), lab_words(error[m.end():].split("; fix:")[0]))
        else:
            self.config_problem = None
        self._show_notes()

    def _show_notes(self) -> None:
        for path, note in self.notes.items():
            text = self.problem(path)
            if text is None and self.config_problem is not None and self.config_problem[0] == path:
                text = self.config_problem[1]
            note.value = problem_html(text) if text else ""
            note.layout.display = "" if text else "none"

    # -- reactions -----------------------------------------------------------------
    def _show_preset(self, name: str | None) -> None:
        """Show `name` (None: the placeholder) in the preset dropdown without applying it."""
        self._preset_busy = True
        try:
            self.preset.value = name if name in PRESETS else PLACEHOLDER
        finally:
            self._preset_busy = False

    def _preset_chosen(self, change: dict) -> None:
        if not self._preset_busy and change["new"] in PRESETS:
            self.apply_preset(change["new"])

    def _changed(self, path: str | None) -> None:
        if self._silent:
            return
        if path is not None:
            self._show_preset(None)  # an edit after a preset: the settings are no longer that preset
        self.config_problem = None
        self._show_notes()
        self._show_relevant()
        if self.on_change is not None:
            try:
                cfg = self.config
            except LabkitError as e:  # e.g. milestones typed as "0.3,,x"
                self.on_change(None, str(e))
                return
            self.on_change(cfg, None)

    def _show_relevant(self) -> None:
        """Show only the parameters the chosen optimizer, schedule and dataset use."""
        v = self.widgets
        chosen = {"optimizer": v["optim.name"].value, "schedule": v["schedule.name"].value,
                  "dataset": v["data.dataset"].value}
        for path, w in v.items():
            _show(w, relevant(path, **chosen))
        for path, table in HELP_TABLES.items():
            _show(self.help[path], relevant(path, **chosen))
            self.help[path].value = (f"<div style='white-space:normal;line-height:1.3;color:#555;font-size:12px'>"
                                     f"{html.escape(table.entry(v[path].value).help)}</div>")


def _show(w: W.Widget, visible: bool) -> None:
    w.layout.display = "" if visible else "none"
