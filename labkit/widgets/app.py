"""The Lab: the dashboard a learner opens in JupyterLab, Voila or Binder.

`Lab()` assembles the controls, previews, live views and the Compare, Demos,
Search, Diagnose and Ensemble tabs. It is thin: the controls give a Config, Train calls
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
from ..diagnosis.outcome import at_chance
from ..errors import LabkitError
from ..events import EndEvent
from ..fields import differing
from ..schedules import schedule_curve, steps_per_epoch
from ..training import Run, train
from ..training.transfer import check_init_from
from .compare import CompareTab
from .controls import Controls, describe_changes, lab_words, setting_label
from .demos_tab import DemosTab
from .transfer import run_choices
from .live import LiveViews, png, png_image
from .notes import error_html
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
        self.link_note = W.HTML()  # what a shared link asked for that the lab could not do, and why
        self.lr_note = W.HTML()  # when the LR preview is not of the settings shown (they cannot train)
        self.run_caption = W.HTML()  # which run the curves and probe views belong to
        self.train_problem: str | None = None  # why Train is disabled (None: it is not)
        self._shown_config: Config | None = None  # the config of the run the views show
        self.live = LiveViews(on_end=self._ended)
        self.controls = Controls(base, on_change=self._on_change, runs=lambda: run_choices(self.out))
        self.train_btn = W.Button(description="Train", button_style="success", icon="play",
                                  layout=W.Layout(width="110px"))
        self.stop_btn = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                 layout=W.Layout(width="110px"))
        self.train_btn.on_click(lambda _: self.train())
        self.stop_btn.on_click(lambda _: self.stop())
        self.share = W.HTML()
        self.aug_btn = W.Button(description="Preview augmentations", icon="image", layout=W.Layout(width="auto"),
                                tooltip="show real training images with the chosen flip, crop, cutout, mixup, cutmix")
        self.aug_btn.on_click(lambda _: self._augment_async())
        self.aug_img = png_image(width="100%", max_width="760px")
        self.aug_note = W.HTML()
        self._aug_live = False  # after the first preview, it follows the controls
        self.lr_preview: list[float] = []
        self.compare = CompareTab(lambda: self.out, load=self.load_config)
        self.demos = DemosTab(lambda: self.controls.config, out=lambda: self.out)
        self.extra_tabs = self._optional_tabs()
        self.widget = self._layout()
        self._preview(self.controls.config)  # the defaults' preview: what shows if a link's settings cannot train
        problems = self._apply_query(read_query_string() if query is None else query)
        if problems:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
            self.link_note.value = _msg(f"<b>The link's settings had {len(problems)} problem"
                                        f"{'s' * (len(problems) != 1)}:</b><ul style='margin:2px 0'>{items}</ul>",
                                        "warn")
        self._on_change(*self._current())
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
                check_init_from(cfg)  # "start from": the run is still there and its model fits these settings
                size = train_size_of(cfg.data)
                plan = schedule_curve(cfg, size)
                spe = steps_per_epoch(size, cfg.train.batch_size)
            except LabkitError as e:
                self.say("Train is disabled: " + self._why_not(str(e)), "error")
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
                self.say(html.escape(lab_words(str(e))), "error")
                return None
            self.runs.append(self.run)
            self._shown_config = cfg
            self._caption("training")
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
            self.say(html.escape(lab_words(str(e))), "error")

    def apply_fix(self, changes: dict[str, Any]) -> None:
        """Put a finding's suggested settings ({config path: value}) into the controls, or say why they don't fit."""
        try:
            self.controls.set_config(self.controls.config.replace(**changes))
        except LabkitError as e:
            self.say(html.escape(lab_words(str(e))), "error")
        else:
            self.say(f"Applied {html.escape(describe_changes(changes))}: press Train to try it.", "info")

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
        """Validate, say why Train is disabled, redraw the LR preview, update the share link (on every change)."""
        running = self.run is not None and not self.run.done
        shown = cfg
        if cfg is not None and error is None:
            try:
                cfg = cfg.replace(**{"train.out": str(self.out)}).validate()
            except LabkitError as e:
                error = str(e)
        self.train_problem = error
        self.controls.show_config_problem(error)
        self.train_btn.disabled = running or error is not None
        if error is not None:
            self.say("Train is disabled: " + self._why_not(error), "error")
            self.lr_note.value = ("<small style='color:#7a4f00'>the preview shows the last settings that could "
                                  "train; fix the setting marked in red to see these</small>")
        elif not running:
            self.say("")
            self.lr_note.value = ""
            self._preview(cfg)
        self._share(shown, valid=error is None)
        self._settings_moved_on(cfg if error is None else None)
        if self._aug_live and error is None:
            self._augment_async()

    def _why_not(self, error: str) -> str:
        """Why these settings cannot train, as HTML naming the controls as the lab labels them (no CLI flags)."""
        problems = self.controls.problems()
        if not problems and self.controls.config_problem is not None:
            problems = dict([self.controls.config_problem])  # a rule between fields that names one of them
        if problems:
            return "; ".join(f"<b>{html.escape(setting_label(p))}</b>: {html.escape(lab_words(t))}"
                             for p, t in problems.items())
        return html.escape(lab_words(error.split("; fix:")[0]))

    def _preview(self, cfg: Config) -> None:
        """Draw the LR schedule `cfg` would use (before training)."""
        size = train_size_of(cfg.data)
        self.lr_preview = schedule_curve(cfg, size)
        self.live.lr.set_plan(self.lr_preview, steps_per_epoch(size, cfg.train.batch_size))

    def _share(self, cfg: Config | None, valid: bool) -> None:
        """The share box: a link to these settings (the defaults need none), and whether they can train."""
        if cfg is None:  # the controls do not make a config (e.g. milestones "0.3,,x"): keep the last link
            return
        q = query_from_config(cfg)
        where = (f"<a href='?{html.escape(q)}' target='_blank'>link</a> (in Voila) &middot; query "
                 f"<code style='word-break:break-all'>?{html.escape(q)}</code>" if q else
                 "these are the defaults: the lab's address without a query opens them")
        warn = "" if valid else "<br>" + error_html("these settings cannot train yet")
        self.share.value = f"<small>Share these settings: {where}{warn}</small>"

    def _settings_moved_on(self, cfg: Config | None) -> None:
        """Say when the views show a run whose settings differ from the controls; tell the Diagnose tab."""
        diagnose = self.extra_tabs.get("Diagnose")
        if diagnose is not None and hasattr(diagnose, "settings_changed"):
            diagnose.settings_changed(cfg)
        if self.run is not None and self.run.done:
            self._caption(self.run.status)

    def _caption(self, state: str) -> None:
        """The curves' caption: which run they belong to, and whether the settings moved on since."""
        if self.run is None:
            self.run_caption.value = ""
            return
        note = ""
        cfg, _ = self._current()
        ran = self._shown_config
        if state != "training" and ran is not None:
            changed = [] if cfg is None else [p for p, _ in differing(cfg, ran).items() if p not in ("train.out", "train.name")]
            if cfg is None or changed:
                note = (" &middot; <b>the settings have changed since</b>" +
                        (f" ({html.escape(', '.join(setting_label(p) for p in changed[:4]))}"
                         f"{', ...' if len(changed) > 4 else ''})" if changed else "") + ": press Train to run them")
        self.run_caption.value = (f"<small style='color:#555'>run <b>{html.escape(self.run.id)}</b> "
                                  f"({html.escape(state)}){note}</small>")

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
            start = self.live.log.start
            chance = at_chance(final, start.classes if start is not None else None)
            if chance is not None:  # it ran to the end, but learned nothing: not a success
                self.live.progress.warn()
                self.say(f"Run <b>{rid}</b> completed, but <b>at chance level</b>: {', '.join(parts)}; guessing "
                         f"gives {chance['chance']:.3f} (1/{start.classes}), so the model learned nothing. "
                         "The <b>Diagnose</b> tab says why.", "warn")
            else:
                # the loop's message: "completed 300 steps in 1.3 s; accuracy 0.992" (the accuracy is in parts)
                msg = e.message or ""
                how = msg.removeprefix("completed").split(";")[0].strip() if msg.startswith("completed") else ""
                extra = "" if msg.startswith("completed") else f" {html.escape(msg)}"
                self.say(f"Run <b>{rid}</b> completed{' ' + html.escape(how) if how else ''}: "
                         f"{', '.join(parts)}.{extra}", "ok")
        elif e.status == "stopped":
            # the loop's message starts with "stopped" itself ("stopped by request at step 12 (epoch 0.40)")
            how = (e.message or "").removeprefix("stopped").strip()
            self.say(f"Run <b>{rid}</b> stopped {html.escape(how)}; its files are kept.".replace(" ;", ";"), "warn")
        elif e.status == "diverged":
            self.say(f"Run <b>{rid}</b> diverged: {html.escape(e.message)}\n{DIVERGED_HINT}", "error")
        else:
            self.say(f"Run <b>{rid}</b> failed: {html.escape(e.message)}", "error")
        self._caption(e.status)
        try:
            self.compare.refresh()
            self.controls.refresh_runs()  # the run just ended can be a source now
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
            self.aug_note.value = error_html(str(e))

    # -- layout --------------------------------------------------------------------------------
    def _optional_tabs(self) -> dict[str, Any]:
        """The Search, Diagnose and Ensemble tabs."""
        from .diagnose import DiagnosePanel
        from .ensemble import EnsemblePanel
        from .search import SearchTab

        return {"Search": SearchTab(base=lambda: self.config, out=self.out),
                "Diagnose": DiagnosePanel(out=self.out, base=lambda: self.config, apply_lr=self.set_lr,
                                          apply=self.apply_fix),
                "Ensemble": EnsemblePanel(out=lambda: self.out)}

    def _layout(self) -> W.Widget:
        left = W.VBox([_section("Settings", self.controls.widget)],
                      layout=W.Layout(width="450px", min_width="450px", padding="0 12px 0 0"))
        buttons = W.HBox([self.train_btn, self.stop_btn, self.live.progress.bar],
                         layout=W.Layout(align_items="center"))
        right = W.VBox([
            buttons, self.live.progress.label, self.message, self.link_note,
            _section("Learning curves", self.run_caption, self.live.curves.image),
            W.HBox([W.VBox([_section("Learning rate (preview before training, then what the optimizer used)",
                                     self.lr_note, self.live.lr.image)], layout=W.Layout(width="480px")),
                    W.VBox([_section("Share", self.share)], layout=W.Layout(width="400px", padding="0 0 0 12px"))]),
            _section("Inside the network", self.live.probes.widget),
            _section("Augmentation preview", W.HBox([self.aug_btn, self.aug_note]), self.aug_img),
        ], layout=W.Layout(flex="1 1 600px", min_width="600px"))
        # below ~1,100 px the figures would shrink to half size beside the settings: the views wrap below them
        train_tab = W.HBox([left, right], layout=W.Layout(align_items="flex-start", flex_flow="row wrap"))
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
        elif self.tabs.titles[change["new"]] == "Ensemble":
            self.extra_tabs["Ensemble"].refresh()
