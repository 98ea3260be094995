"""The lab's controls: one widget per config path, built from the registries, producing a Config.

Dropdowns read the registries (a new optimizer in OPTIMIZERS appears here by
itself); optimizer and schedule parameters are shown only where the chosen
entry uses them. State is the Config the widgets describe, nothing more.
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as W

from ..activations import ACTIVATIONS
from ..config import Config, config_paths
from ..data import DATASETS
from ..errors import LabkitError
from ..initializers import INITIALIZERS
from ..models import MODELS, NORMS
from ..optimizers import OPTIMIZERS
from ..precision import PRECISIONS
from ..schedules import SCHEDULES

LABEL_W = "120px"
CONTROL_W = "300px"

# datasets that need more than a name (a folder path) are left to the Python API and CLI
HIDDEN_DATASETS = ("folder",)

# which schedule parameters each shape reads (beside the peak LR and warmup)
SCHEDULE_PARAMS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "step": ("milestones", "gamma", "step_every"),
    "multistep": ("milestones", "gamma"),
    "exponential": ("gamma",),
    "cosine": ("min_lr",),
    "linear": ("min_lr",),
    "invsqrt": (),
    "onecycle": ("pct_start", "div_factor", "final_div_factor"),
    "restarts": ("min_lr", "restart_epochs", "restart_mult"),
}

# optimizer parameters the widgets offer; each optimizer's registry entry says which it uses
OPTIM_PARAMS = ("momentum", "beta1", "beta2", "weight_decay")

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

SECTIONS: dict[str, tuple[str, ...]] = {
    "Data": ("data.dataset", "data.subset", "data.val_size", "data.points", "data.noise", "data.preprocess"),
    "Model": ("model.kind", "model.depth", "model.width", "model.activation", "model.init", "model.norm",
              "model.dropout"),
    "Optimizer": ("optim.name", "optim.lr", "optim.momentum", "optim.beta1", "optim.beta2", "optim.weight_decay",
                  "optim.l1", "optim.grad_clip"),
    "Schedule": ("schedule.name", "schedule.warmup_epochs", "schedule.milestones", "schedule.gamma",
                 "schedule.step_every", "schedule.min_lr", "schedule.pct_start", "schedule.div_factor",
                 "schedule.final_div_factor", "schedule.restart_epochs", "schedule.restart_mult"),
    "Regularization": ("reg.flip", "reg.crop", "reg.cutout", "reg.mixup", "reg.cutmix", "reg.label_smoothing"),
    "Training": ("train.epochs", "train.batch_size", "train.seed", "train.patience", "train.precision", "probe.every"),
}

LABELS = {
    "data.dataset": "dataset", "data.subset": "subset (0 = all)", "data.val_size": "validation size",
    "data.points": "points (2-D sets)", "data.noise": "noise (2-D sets)", "data.preprocess": "preprocess",
    "model.kind": "model", "optim.name": "optimizer", "optim.lr": "learning rate", "optim.weight_decay": "weight decay",
    "optim.l1": "L1 penalty", "optim.grad_clip": "grad clip (0 = off)", "schedule.name": "schedule",
    "schedule.warmup_epochs": "warmup (epochs)", "schedule.milestones": "milestones (fractions)",
    "schedule.step_every": "step every (epochs)", "schedule.min_lr": "min LR", "schedule.pct_start": "rise fraction",
    "schedule.div_factor": "start = LR /", "schedule.final_div_factor": "final = start /",
    "schedule.restart_epochs": "first period (ep.)", "schedule.restart_mult": "period x",
    "reg.flip": "horizontal flip", "reg.crop": "pad-crop (px)", "reg.cutout": "cutout side (px)",
    "reg.mixup": "mixup alpha", "reg.cutmix": "cutmix alpha", "reg.label_smoothing": "label smoothing",
    "train.batch_size": "batch size", "train.patience": "early-stop patience", "probe.every": "probe every (steps)",
    "train.precision": "precision",
}

CHOICES: dict[str, Callable[[], list[str]]] = {
    "data.dataset": lambda: [n for n in DATASETS.names() if n not in HIDDEN_DATASETS],
    "data.preprocess": lambda: ["none", "mean", "standardize"],
    "model.kind": MODELS.names,
    "model.activation": ACTIVATIONS.names,
    "model.init": INITIALIZERS.names,
    "model.norm": NORMS.names,
    "optim.name": OPTIMIZERS.names,
    "schedule.name": SCHEDULES.names,
    "train.precision": lambda: list(PRECISIONS),
}

HELP_TABLES = {"data.dataset": DATASETS, "model.kind": MODELS, "model.activation": ACTIVATIONS,
               "model.init": INITIALIZERS, "model.norm": NORMS, "optim.name": OPTIMIZERS, "schedule.name": SCHEDULES}


def _layout() -> W.Layout:
    return W.Layout(width=CONTROL_W)


def _style() -> dict:
    return {"description_width": LABEL_W}


def make_widget(path: str, typ: Any, value: Any) -> W.Widget:
    """The widget for one config path: dropdowns from registries, a log slider for the LR, sliders for fractions."""
    label = LABELS.get(path, path.split(".", 1)[1].replace("_", " "))
    kw = {"description": label, "style": _style(), "layout": _layout()}
    if path in CHOICES:
        return W.Dropdown(options=CHOICES[path](), value=value, **kw)
    if path == "optim.lr":
        return W.FloatLogSlider(value=value, base=10, min=-5, max=1, step=0.05, readout_format=".2e", **kw)
    if path in ("model.dropout", "reg.label_smoothing"):
        return W.FloatSlider(value=value, min=0.0, max=0.9, step=0.05, readout_format=".2f", **kw)
    if path in ("optim.momentum", "optim.beta1", "schedule.pct_start"):
        return W.BoundedFloatText(value=value, min=0.0, max=0.999, step=0.01, **kw)
    if path == "optim.beta2":
        return W.BoundedFloatText(value=value, min=0.0, max=0.99999, step=0.001, **kw)
    if path == "schedule.milestones":
        return W.Text(value=",".join(f"{v:g}" for v in value), **kw)
    t = str(typ)
    if typ is bool or t == "bool":
        return W.Checkbox(value=bool(value), indent=False, **kw)
    if typ is int or t == "int":
        return W.BoundedIntText(value=value, min=0, max=10_000_000, **kw)
    if typ is float or t == "float":
        return W.FloatText(value=value, **kw)
    return W.Text(value="" if value is None else str(value), **kw)


class Controls:
    """Every control of the lab, in sections; `.config` is the Config they describe."""

    def __init__(self, base: Config | None = None, on_change: Callable[[Config | None, str | None], None] | None = None):
        self.base = (base or Config()).copy()
        self.on_change = on_change
        self._silent = False
        types = config_paths()
        self.widgets: dict[str, W.Widget] = {}
        for paths in SECTIONS.values():
            for path in paths:
                w = make_widget(path, types[path], self.base.get(path))
                w.observe(lambda ch, p=path: self._changed(p), names="value")
                self.widgets[path] = w
        self.help = {path: W.HTML(layout=W.Layout(margin="0 0 4px 124px", width=CONTROL_W)) for path in HELP_TABLES}
        self.preset = W.Dropdown(options=["(choose a preset)", *PRESETS], value="(choose a preset)",
                                 description="preset", style=_style(), layout=_layout())
        self.preset.observe(self._preset_chosen, names="value")
        boxes = []
        for title, paths in SECTIONS.items():
            rows: list[W.Widget] = []
            for p in paths:
                rows.append(self.widgets[p])
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
            if isinstance(v, str) or path == "schedule.milestones":
                cfg.set(path, str(v))
            else:
                cfg.set(path, v)
        return cfg

    def set_config(self, cfg: Config) -> None:
        """Fill every control from `cfg` (fields without a control are kept in the base config)."""
        self._silent = True
        try:
            self.base = cfg.copy()
            for path, w in self.widgets.items():
                v = cfg.get(path)
                if path == "schedule.milestones":
                    v = ",".join(f"{x:g}" for x in v)
                elif isinstance(w, W.Dropdown) and v not in w.options:
                    continue  # e.g. dataset "folder": kept in the base config, not offered here
                elif isinstance(w, W.FloatLogSlider):
                    w.min = min(w.min, _log10_floor(v))
                    w.max = max(w.max, _log10_ceil(v))
                w.value = v
        finally:
            self._silent = False
        self._changed(None)

    def apply_preset(self, name: str) -> None:
        """Reset to the defaults (keeping the run store) and apply the named preset."""
        if name not in PRESETS:
            raise LabkitError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        cfg = Config().replace(**{"train.out": self.base.train.out}).replace(**PRESETS[name])
        self.set_config(cfg)

    # -- reactions -----------------------------------------------------------------
    def _preset_chosen(self, change: dict) -> None:
        if change["new"] in PRESETS:
            self.apply_preset(change["new"])

    def _changed(self, path: str | None) -> None:
        if self._silent:
            return
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
        uses = OPTIMIZERS.entry(v["optim.name"].value).traits.get("uses", OPTIM_PARAMS)
        for p in OPTIM_PARAMS:
            _show(v[f"optim.{p}"], p in uses)
        sched = v["schedule.name"].value
        shown = SCHEDULES.entry(sched).traits.get("uses", SCHEDULE_PARAMS.get(sched))
        for p in SECTIONS["Schedule"][2:]:
            _show(v[p], shown is None or p.split(".")[1] in shown)
        image = DATASETS.entry(v["data.dataset"].value).traits.get("kind") == "image"
        for p in ("data.subset", "data.val_size", "data.preprocess", "reg.flip", "reg.crop", "reg.cutout",
                  "reg.mixup", "reg.cutmix"):
            _show(v[p], image)
        for p in ("data.points", "data.noise"):
            _show(v[p], not image)
        for path, table in HELP_TABLES.items():
            self.help[path].value = f"<small style='color:#555'>{table.entry(v[path].value).help}</small>"


def _show(w: W.Widget, visible: bool) -> None:
    w.layout.display = "" if visible else "none"


def _log10_floor(v: float) -> float:
    import math

    return math.floor(math.log10(v)) if v > 0 else -8


def _log10_ceil(v: float) -> float:
    import math

    return math.ceil(math.log10(v)) if v > 0 else 1
