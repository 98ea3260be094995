"""The Lab: the dashboard a learner opens in JupyterLab, Voila or Binder.

`Lab()` assembles the controls, previews, live views and the Compare, Demos,
Search and Diagnose tabs. It is thin: the controls give a Config, Train calls
`labkit.train(config, callbacks=[live views], background=True)`, Stop
calls `run.stop()`, and everything that must survive is in the run store.
"""
from __future__ import annotations

import html
import os
import threading
from typing import Any

import ipywidgets as W

from ..config import Config
from ..data.sets import DATASETS, train_size_of
from ..errors import LabkitError
from ..events import EndEvent
from ..schedules import schedule_curve, steps_per_epoch
from ..training import Run, train
from .compare import CompareTab
from .controls import Controls
from .demos_tab import DemosTab
from .live import LiveViews, png, png_image
from .urlstate import config_from_query, query_from_config, read_query_string

HEADER = """
<div style="background:linear-gradient(90deg,#1d3557,#457b9d);color:white;padding:12px 18px;border-radius:8px;
            margin-bottom:8px;font-family:sans-serif">
  <div style="font-size:22px;font-weight:600">labkit &middot; the training lab</div>
  <div style="font-size:13px;opacity:0.9">Pick an initializer, activation, optimizer, schedule and regularizers,
  press <b>Train</b>, and watch a small network learn: curves, the learning rate, and what happens inside each layer.</div>
</div>"""

DIVERGED_HINT = ("The loss became NaN or blew up. Lower the learning rate (try a tenth), add warmup or gradient "
                 "clipping, or use batch norm.")


def _msg(text: str, kind: str = "info") -> str:
    colors = {"info": ("#eef4fb", "#1d3557"), "ok": ("#eaf7ee", "#1b5e20"), "warn": ("#fff6e0", "#7a4f00"),
              "error": ("#fdecea", "#9b1c1c")}
    bg, fg = colors[kind]
    return (f"<div style='background:{bg};color:{fg};padding:6px 10px;border-radius:6px;font-size:13px;"
            f"white-space:pre-wrap'>{text}</div>")


def _section(title: str, *children: W.Widget) -> W.VBox:
    return W.VBox([W.HTML(f"<div style='font-weight:600;font-size:14px;color:#1d3557;margin:6px 0 2px'>{title}</div>"),
                   *children])


def _warm_up() -> None:
    import importlib

    for name in ("labkit.training.loop", "labkit.plots", "labkit.data.pipeline", "labkit.models", "labkit.runs"):
        importlib.import_module(name)


class Lab:
    """The whole dashboard; display it (or `.widget`) in a notebook. `.config` is what Train would run."""

    def __init__(self, config: Config | None = None, out: str | None = None, query: str | None = None):
        base = (config or Config()).copy()
        self.out = out or os.environ.get("LABKIT_RUNS") or base.train.out
        self.run: Run | None = None
        self.runs: list[Run] = []
        self._lock = threading.Lock()
        self.message = W.HTML()
        self.live = LiveViews(on_end=self._ended)
        self.controls = Controls(base, on_change=self._on_change)
        self.train_btn = W.Button(description="Train", button_style="success", icon="play",
                                  layout=W.Layout(width="110px"))
        self.stop_btn = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                 layout=W.Layout(width="110px"))
        self.train_btn.on_click(lambda _: self.train())
        self.stop_btn.on_click(lambda _: self.stop())
        self.share = W.HTML()
        self.aug_btn = W.Button(description="Preview augmentations", icon="image",
                                tooltip="show real training images with the chosen flip, crop, cutout, mixup, cutmix")
        self.aug_btn.on_click(lambda _: self._augment_async())
        self.aug_img = png_image(width="100%", max_width="760px")
        self.aug_note = W.HTML()
        self._aug_live = False  # after the first preview, it follows the controls
        self.lr_preview: list[float] = []
        self.compare = CompareTab(lambda: self.out, load=self.load_config)
        self.demos = DemosTab(lambda: self.controls.config)
        self.extra_tabs = self._optional_tabs()
        self.widget = self._layout()
        problems = self._apply_query(read_query_string() if query is None else query)
        self._on_change(*self._current())
        if problems:
            self.say("\n".join(problems), "warn")
        self.compare.refresh()
        # import the training side now, so the first Train does not pay for it
        threading.Thread(target=_warm_up, daemon=True, name="labkit-lab-warmup").start()

    # -- public API -----------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The Config the controls describe, with the lab's run store."""
        return self.controls.config.replace(**{"train.out": str(self.out)})

    def load_config(self, cfg: Config) -> None:
        """Fill the controls from `cfg` (e.g. a past run's config)."""
        self.controls.set_config(cfg)
        self.tabs.selected_index = 0

    def train(self) -> Run | None:
        """Start a run of `.config` on a background thread; refused (with a message) while one is going."""
        with self._lock:
            if self.run is not None and not self.run.done:
                self.say(f"A run is already going ({html.escape(self.run.id)}). Press Stop first, "
                         "or wait for it to finish.", "warn")
                return None
            try:
                cfg = self.config.validate()
                size = train_size_of(cfg.data)
                plan = schedule_curve(cfg, size)
                spe = steps_per_epoch(size, cfg.train.batch_size)
            except LabkitError as e:
                self.say(html.escape(str(e)), "error")
                return None
            self.live.begin(cfg, plan, spe)
            diagnose = self.extra_tabs.get("Diagnose")
            if diagnose is not None:
                diagnose.begin(cfg)  # findings refresh live from the same events as the views
            try:
                self.run = train(cfg, callbacks=[self.live, *([diagnose] if diagnose is not None else [])],
                                 background=True)
            except LabkitError as e:  # e.g. the run store cannot be created
                self.live(EndEvent("failed", str(e), {}))  # ends the views' render thread
                if diagnose is not None:
                    diagnose(EndEvent("failed", str(e), {}))
                self.say(html.escape(str(e)), "error")
                return None
            self.runs.append(self.run)
            self.train_btn.disabled, self.stop_btn.disabled = True, False
            self.say(f"Training <b>{html.escape(self.run.id)}</b> ... files in {html.escape(str(self.run.dir))}")
            return self.run

    def stop(self) -> None:
        """Ask the current run to stop; it ends within one batch with status 'stopped'."""
        if self.run is not None and not self.run.done:
            self.run.stop()
            self.say("Stopping after the current batch...", "warn")

    def wait(self, timeout: float | None = None) -> Run | None:
        """Wait for the current run and the views' final draw (for scripts and tests)."""
        if self.run is not None:
            self.run.wait(timeout)
        self.live.wait(timeout)
        return self.run

    def set_lr(self, lr: float) -> None:
        """Put `lr` into the learning-rate control (e.g. the LR range test's suggestion from the Diagnose tab)."""
        try:
            self.controls.set_config(self.controls.config.replace(**{"optim.lr": float(lr)}))
        except LabkitError as e:
            self.say(html.escape(str(e)), "error")

    def apply_fix(self, changes: dict[str, Any]) -> None:
        """Put a finding's suggested settings ({config path: value}) into the controls, or say why they don't fit."""
        try:
            self.controls.set_config(self.controls.config.replace(**changes))
        except LabkitError as e:
            self.say(html.escape(str(e)), "error")
        else:
            names = ", ".join(f"{k} = {v}" for k, v in changes.items())
            self.say(f"Applied {html.escape(names)}: press Train to try it.", "info")

    def say(self, text_html: str, kind: str = "info") -> None:
        """Show a message in the dashboard's message area."""
        self.message.value = _msg(text_html, kind) if text_html else ""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- reactions ----------------------------------------------------------------------------
    def _current(self) -> tuple[Config | None, str | None]:
        try:
            return self.controls.config, None
        except LabkitError as e:
            return None, str(e)

    def _on_change(self, cfg: Config | None, error: str | None) -> None:
        """Validate, redraw the LR preview, update the share link (runs on every control change)."""
        running = self.run is not None and not self.run.done
        if cfg is not None:
            try:
                cfg = cfg.replace(**{"train.out": str(self.out)}).validate()
            except LabkitError as e:
                cfg, error = None, str(e)
        if error is not None:
            self.say(html.escape(error), "error")
            self.train_btn.disabled = True
            return
        self.train_btn.disabled = running
        if not running:
            self.say("")
            size = train_size_of(cfg.data)
            self.lr_preview = schedule_curve(cfg, size)
            self.live.lr.set_plan(self.lr_preview, steps_per_epoch(size, cfg.train.batch_size))
        q = query_from_config(cfg)
        self.share.value = (f"<small>Share these settings: <a href='?{html.escape(q)}' target='_blank'>link</a> "
                            f"(in Voila) &middot; query <code style='word-break:break-all'>?{html.escape(q)}</code></small>")
        if self._aug_live:
            self._augment_async()

    def _apply_query(self, query: str) -> list[str]:
        if not query:
            return []
        cfg, problems = config_from_query(query, self.controls.config)
        self.controls.set_config(cfg)
        return problems

    def _ended(self, e: EndEvent) -> None:
        """Called by the views after their final draw: say how the run ended, in words."""
        self.train_btn.disabled, self.stop_btn.disabled = False, True
        rid = html.escape(self.run.id) if self.run else "the run"
        if e.status == "completed":
            final = (e.summary or {}).get("final", {}) or {}
            parts = [f"{k.replace('_', ' ')} {final[k]:.3f}" for k in ("train_acc", "val_acc", "test_acc")
                     if isinstance(final.get(k), (int, float))]
            self.say(f"Run <b>{rid}</b> completed: {', '.join(parts)}. {html.escape(e.message or '')}", "ok")
        elif e.status == "stopped":
            self.say(f"Run <b>{rid}</b> stopped ({html.escape(e.message)}); its files are kept.", "warn")
        elif e.status == "diverged":
            self.say(f"Run <b>{rid}</b> diverged: {html.escape(e.message)}\n{DIVERGED_HINT}", "error")
        else:
            self.say(f"Run <b>{rid}</b> failed: {html.escape(e.message)}", "error")
        try:
            self.compare.refresh()
            for tab in self.extra_tabs.values():
                if hasattr(tab, "attach") and self.run is not None:
                    tab.attach(self.run)
        except Exception as err:  # the run is over and saved; a side panel must not hide that
            self.say(self.message.value + f"<br><small>(could not refresh a tab: {html.escape(str(err))})</small>")

    # -- augmentation preview --------------------------------------------------------------------
    def _augment_async(self) -> None:
        threading.Thread(target=self.augment_preview, daemon=True, name="labkit-lab-augment").start()

    def augment_preview(self) -> None:
        """Draw real training images with the chosen augmentations (image datasets only)."""
        from ..demos import augment_preview
        from ..plots import augment_preview as draw

        self._aug_live = True
        cfg, _ = self._current()
        if cfg is None:
            return
        if DATASETS.entry(cfg.data.dataset).traits.get("kind") != "image":
            self.aug_note.value = "<i>Augmentations apply to image datasets; the 2-D sets are used as they are.</i>"
            self.aug_img.value = b""
            return
        self.aug_note.value = "<i>loading images...</i>"
        try:
            data_cfg = cfg.data.__class__(**{**cfg.data.__dict__, "subset": 500, "val_size": 100})
            self.aug_img.value = png(draw(augment_preview(cfg.reg, data_cfg, n=8, seed=cfg.train.seed)))
            self.aug_note.value = ""
        except LabkitError as e:
            self.aug_note.value = f"<span style='color:#a00'>{html.escape(str(e))}</span>"

    # -- layout --------------------------------------------------------------------------------
    def _optional_tabs(self) -> dict[str, Any]:
        """The Search and Diagnose tabs."""
        from .diagnose import DiagnosePanel
        from .search import SearchTab

        return {"Search": SearchTab(base=lambda: self.config, out=self.out),
                "Diagnose": DiagnosePanel(out=self.out, base=lambda: self.config, apply_lr=self.set_lr,
                                          apply=self.apply_fix)}

    def _layout(self) -> W.Widget:
        left = W.VBox([_section("Settings", self.controls.widget)],
                      layout=W.Layout(width="450px", min_width="450px", padding="0 12px 0 0"))
        buttons = W.HBox([self.train_btn, self.stop_btn, self.live.progress.bar],
                         layout=W.Layout(align_items="center"))
        right = W.VBox([
            buttons, self.live.progress.label, self.message,
            _section("Learning curves", self.live.curves.image),
            W.HBox([W.VBox([_section("Learning rate (preview before training, then what the optimizer used)",
                                     self.live.lr.image)], layout=W.Layout(width="480px")),
                    W.VBox([_section("Share", self.share)], layout=W.Layout(width="400px", padding="0 0 0 12px"))]),
            _section("Inside the network", self.live.probes.widget),
            _section("Augmentation preview", W.HBox([self.aug_btn, self.aug_note]), self.aug_img),
        ], layout=W.Layout(flex="1 1 auto", min_width="0"))
        train_tab = W.HBox([left, right], layout=W.Layout(align_items="flex-start"))
        children = [train_tab, self.compare.widget, self.demos.widget]
        titles = ["Train", "Compare", "Demos"]
        for name, tab in self.extra_tabs.items():
            children.append(tab.widget)
            titles.append(name)
        self.tabs = W.Tab(children=children, titles=titles)
        self.tabs.observe(self._tab_changed, names="selected_index")
        return W.VBox([W.HTML(HEADER), self.tabs], layout=W.Layout(max_width="1400px"))

    def _tab_changed(self, change: dict) -> None:
        if self.tabs.titles[change["new"]] == "Compare":
            self.compare.refresh()
