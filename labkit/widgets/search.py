"""The lab's Search tab: ranges, sampler and budget as widgets; the search runs on a background thread.

Thin by design: the widgets build a Space (from spec strings) and a Config, and
call labkit.search; what is drawn comes from labkit.search (trial rows, curves)
and labkit.plots.search. Points appear as trials finish, the learning curves of
running trials are redrawn every second from their metrics.jsonl, Stop ends the
running trial cleanly, and Compare runs grid and random at the same budget.

The budget, epochs, subset and workers boxes hold what was typed: a value the
search cannot use is said beside its box and the buttons are disabled with
the reason (a bounded box turned a subset of -5 into 0, all 49,000 images).
"""
from __future__ import annotations

import html
import os
import threading
from typing import Any, Callable

import ipywidgets as W

from ..config import Config
from ..errors import LabkitError
from ..fields import FIELDS
from ..search.space import PRUNERS, SAMPLERS
from .live import png, png_image
from .notes import error_html, exception_html, is_error_html

KINDS = ("log", "linear", "choice")
MIN_TRIAL_STEPS = 50  # fewer optimizer steps than this per trial: the loss has barely left ln C (the diagnosis
# judges no loss trend before 50 steps either), so the scores rank noise, not settings
SCORE_SPREAD = 0.02  # finished trials whose scores all lie within 2 points: nothing tells the settings apart


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def trial_steps(base: Config) -> int:
    """Optimizer steps one trial of `base` takes (without loading data)."""
    from ..data.sets import train_size_of
    from ..schedules import total_steps

    return total_steps(base, train_size_of(base.data))


def too_small(base: Config, values: list[float]) -> list[str]:
    """Why a search's results cannot teach anything (too few steps per trial, scores all alike); [] if they can."""
    out = []
    steps = trial_steps(base)
    if steps < MIN_TRIAL_STEPS:
        out.append(f"each trial trains only {steps} steps (under {MIN_TRIAL_STEPS}): too few for the scores to "
                   "rank the settings; give more epochs or a larger subset")
    if len(values) >= 3 and max(values) - min(values) < SCORE_SPREAD:
        out.append(f"all {len(values)} scores lie within {SCORE_SPREAD * 100:.0f} points ({min(values):.3f} to "
                   f"{max(values):.3f}): the plots show noise, not which parameter matters")
    return out


def settings_problems(trials: int, epochs: float, subset: int, workers: int, cores: int) -> dict[str, str]:
    """What is wrong with the Search tab's budget, epochs, subset and workers: {box: why}; {} when all fit."""
    out: dict[str, str] = {}
    if trials < 1:
        out["trials"] = f"a budget of {trials} trials runs nothing: give at least 1"
    if not epochs > 0:
        out["epochs"] = f"{epochs:g} epochs trains nothing: give more than 0"
    if subset < 0:
        out["subset"] = f"a subset of {subset} images is not a size: give 0 or more (0 = all training images)"
    if workers < 1:
        out["workers"] = f"{workers} workers run nothing: give at least 1"
    elif workers > cores:
        # each worker trains on its own share of the cores: more workers than cores only slows every trial
        out["workers"] = (f"{workers} workers on {cores} core{'s' * (cores != 1)}: each trial would get a fraction of "
                          f"a core; use at most {cores}")
    return out
DPI = 80  # the search figures carry more text than the live views
DEFAULT_RANGES = (("optim.lr", "log", "1e-3", "1", ""), ("model.dropout", "linear", "0", "0.5", ""))


def _searchable_paths() -> list[str]:
    return [p for p, f in FIELDS.items() if not f.is_list]  # a list (milestones) has no range to search


class RangeRow:
    """One searched parameter: config path, kind (log / linear / choice), low and high, or choices."""

    def __init__(self, path: str = "optim.lr", kind: str = "log", low: str = "1e-3", high: str = "1",
                 choices: str = "", on_remove: Callable[["RangeRow"], None] | None = None):
        self.path = W.Dropdown(options=_searchable_paths(), value=path, layout=W.Layout(width="210px"))
        self.kind = W.Dropdown(options=KINDS, value=kind, layout=W.Layout(width="90px"))
        self.low = W.Text(value=low, placeholder="low", layout=W.Layout(width="80px"))
        self.high = W.Text(value=high, placeholder="high", layout=W.Layout(width="80px"))
        self.choices = W.Text(value=choices, placeholder="a,b,c", layout=W.Layout(width="164px"))
        self.remove = W.Button(icon="trash", tooltip="remove this range", layout=W.Layout(width="36px"))
        self.remove.on_click(lambda _: on_remove and on_remove(self))
        self.kind.observe(lambda _: self._show(), names="value")
        self.widget = W.HBox([self.path, self.kind, self.low, self.high, self.choices, self.remove])
        self._show()

    def _show(self) -> None:
        choice = self.kind.value == "choice"
        self.low.layout.display = self.high.layout.display = "none" if choice else ""
        self.choices.layout.display = "" if choice else "none"

    def spec(self) -> str:
        """The --space text this row stands for."""
        if self.kind.value == "choice":
            return f"{self.path.value}={self.choices.value.strip()}"
        prefix = "log:" if self.kind.value == "log" else ""
        return f"{self.path.value}={prefix}{self.low.value.strip()}:{self.high.value.strip()}"


class SearchTab:
    """The Search tab; `.widget` is the ipywidgets container the lab shows."""

    def __init__(self, base: Config | Callable[[], Config] | None = None, out: str = "runs"):
        self._base = base
        self.out = out
        self.rows: list[RangeRow] = []
        self.rows_box = W.VBox()
        add = W.Button(description="add range", icon="plus")
        add.on_click(lambda _: self.add_range("optim.weight_decay", "choice", choices="0,1e-5,1e-4"))
        for path, kind, low, high, choices in DEFAULT_RANGES:
            self.add_range(path, kind, low, high, choices)
        self.sampler = W.Dropdown(options=SAMPLERS.names(), value="random", description="sampler")
        # unbounded boxes: a value out of range is said beside its box, never changed (see the module doc)
        self.trials = W.IntText(value=9, description="budget")
        self.epochs = W.FloatText(value=2, step=1, description="epochs")
        self.subset = W.IntText(value=1000, description="subset", tooltip="training images per trial (0 = all)")
        self.workers = W.IntText(value=1, description="workers", tooltip=f"trials at once (at most {usable_cores()})")
        self.notes = {name: W.HTML(layout=W.Layout(display="none", max_width="300px"))
                      for name in ("trials", "epochs", "subset", "workers")}
        for name in self.notes:
            getattr(self, name).observe(lambda _: self._check_settings(), names="value")
        self.pruner = W.Dropdown(options=PRUNERS.names(), value="none", description="pruner")
        self.study = W.Text(value="lab", description="study")
        self.run_btn = W.Button(description="Search", button_style="primary", icon="play")
        self.stop_btn = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.compare_btn = W.Button(description="Grid vs random", icon="th",
                                    tooltip="run grid and random search at the same budget and compare them")
        self.preview_btn = W.Button(description="Preview points", icon="eye",
                                    tooltip="where grid and random would put their trials (no training)")
        self.run_btn.on_click(lambda _: self.start("search"))
        self.compare_btn.on_click(lambda _: self.start("compare"))
        self.stop_btn.on_click(lambda _: self.stop())
        self.preview_btn.on_click(lambda _: self.preview())
        self.status = W.HTML("Define ranges, pick a sampler and a budget, press Search.")
        self.scores = png_image()
        self.curves = png_image()
        self.compare = png_image()
        self.best = png_image()
        self.table = W.HTML()
        self.warnings = W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>Ranges</b> (log for learning rates and weight decay; choices for names)"),
            self.rows_box, add,
            W.HBox([W.VBox([self.sampler, self.trials, self.notes["trials"], self.pruner]),
                    W.VBox([self.epochs, self.notes["epochs"], self.subset, self.notes["subset"]]),
                    W.VBox([self.workers, self.notes["workers"], self.study])]),
            W.HBox([self.run_btn, self.stop_btn, self.compare_btn, self.preview_btn]),
            self.status, self.warnings, self.curves, self.scores, self.compare, self.best, self.table,
        ])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._storage: Any = None
        self._base_used: Config | None = None  # the base config of the search shown
        self._names: list[str] = []

    def problems(self) -> dict[str, str]:
        """What is wrong with the budget, epochs, subset and workers now ({} when a search can start)."""
        return settings_problems(int(self.trials.value), float(self.epochs.value), int(self.subset.value),
                                 int(self.workers.value), usable_cores())

    def _check_settings(self) -> dict[str, str]:
        """Show each problem beside its box; disable the buttons (with the reasons) while there are any."""
        from .controls import problem_html

        found = self.problems()
        for name, note in self.notes.items():
            note.value = problem_html(found[name]) if name in found else ""
            note.layout.display = "" if name in found else "none"
        running = self._thread is not None and self._thread.is_alive()
        self.run_btn.disabled = self.compare_btn.disabled = running or bool(found)
        self.preview_btn.disabled = bool(found)
        if found:
            self._say(error_html("Search is disabled: " + "; ".join(found.values())))
        elif is_error_html(self.status.value) and "Search is disabled" in self.status.value:
            self._say("Define ranges, pick a sampler and a budget, press Search.")
        return found

    # -- building the search from the widgets ------------------------------------------------------------------
    def add_range(self, path: str, kind: str = "linear", low: str = "", high: str = "", choices: str = "") -> RangeRow:
        """Add one range row (also what the 'add range' button does)."""
        row = RangeRow(path, kind, low, high, choices, on_remove=self._remove)
        self.rows.append(row)
        self.rows_box.children = [r.widget for r in self.rows]
        return row

    def _remove(self, row: RangeRow) -> None:
        self.rows.remove(row)
        self.rows_box.children = [r.widget for r in self.rows]

    def base_config(self) -> Config:
        """The lab's current config with this tab's epochs and subset (probes off: a search wants scores)."""
        base = self._base() if callable(self._base) else (self._base or Config())
        return base.replace(**{"train.epochs": float(self.epochs.value), "data.subset": int(self.subset.value),
                               "probe.every": 0, "train.out": self.out})

    def space(self) -> Any:
        """The Space the rows describe (validated on the base config)."""
        from ..search.space import Space

        return Space.parse([r.spec() for r in self.rows], base=self.base_config())

    # -- running -------------------------------------------------------------------------------------------------
    def start(self, kind: str = "search") -> None:
        """Start a search ("search") or a grid-vs-random comparison ("compare") on a background thread."""
        if self._thread is not None and self._thread.is_alive():
            self._say("a search is running; press Stop first")
            return
        if self._check_settings():
            return
        try:
            base, space = self.base_config(), self.space()
        except LabkitError as e:
            self._say(error_html(str(e)))
            return
        self._stop.clear()
        self._base_used = base
        for img in (self.curves, self.scores, self.compare, self.best):  # the last search's plots are not this one's
            img.value = b""
        self.table.value = ""
        self.warnings.value = self._warn_html(too_small(base, []))
        self.run_btn.disabled = self.compare_btn.disabled = True
        self.stop_btn.disabled = False
        self._thread = threading.Thread(target=self._run, args=(kind, base, space), daemon=True,
                                        name="labkit-search-tab")
        self._thread.start()

    def stop(self) -> None:
        """Stop the search: the running trial ends cleanly and is queued again for a resume."""
        self._stop.set()
        self._say("stopping after the running trial ends its current step...")

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background search ends (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, kind: str, base: Config, space: Any) -> None:
        import optuna

        from .. import search

        workers = int(self.workers.value)
        # one in-process worker: a fresh memory store; worker processes: the journal file under the run store
        self._storage = optuna.storages.InMemoryStorage() if workers == 1 else search.default_journal(self.out)
        common = dict(workers=workers, storage=self._storage, out=self.out, stop_event=self._stop,
                      pruner=None if self.pruner.value == "none" else self.pruner.value)
        name = self.study.value.strip() or "lab"
        if kind == "compare":
            budget = space.grid_size(budget=int(self.trials.value))
            self._names = [f"{name}-grid", f"{name}-random"]
        else:
            self._names = [name]
        done = threading.Event()
        poller = threading.Thread(target=self._poll, args=(done,), daemon=True)
        poller.start()
        try:
            if kind == "compare":
                self._say(f"grid vs random at the same budget: {budget} trials each")
                search.compare_samplers(base, space, trials=budget, samplers=("grid", "random"), study=name, **common)
            else:
                self._say(f"searching {html.escape(str(space))} with {self.sampler.value}")
                search.run_search(base, space, sampler=self.sampler.value, trials=int(self.trials.value),
                                  study=name, **common)
        except LabkitError as e:
            self._say(error_html(str(e)))
        except Exception as e:  # keep the tab alive; show what broke
            self._say(exception_html(e))
        finally:
            done.set()
            poller.join()
            self._refresh(final=True, kind=kind)
            self.run_btn.disabled = self.compare_btn.disabled = bool(self.problems())
            self.stop_btn.disabled = True

    def _poll(self, done: threading.Event) -> None:
        last = None
        while not done.wait(1.0):
            try:
                last = self._refresh(last=last)
            except Exception:
                pass  # the study may not exist yet in the first second

    def _studies(self) -> list[Any]:
        from ..search.storage import load_study

        out = []
        for n in self._names:
            try:
                out.append(load_study(n, self._storage))
            except LabkitError:
                pass
        return out

    def _refresh(self, last: Any = None, final: bool = False, kind: str = "search") -> Any:
        """Redraw from the study: points of finished trials, live curves of running ones; returns a change key."""
        from ..plots import search as plots
        from ..search.analysis import border_warnings, trial_curves, trial_rows, trials_table
        from ..search.storage import study_setup
        from ..search.analysis import plane_axes, importances

        studies = self._studies()
        if not studies:
            return last
        s = studies[-1]
        rows = trial_rows(s)
        curves = trial_curves(s, metric="loss")
        key = (len(studies), tuple((r["number"], r["state"]) for r in rows),
               sum(len(c["x"]) for c in curves.values()))
        if key == last and not final:
            return last
        setup = study_setup(s)
        finished = sum(r["state"] != "running" for r in rows)
        running = sum(r["state"] == "running" for r in rows)
        if curves:
            self.curves.value = png(plots.trial_curves(curves, metric="loss", label_params=setup.space.paths), DPI)
        if any(r["value"] is not None for r in rows):
            self.scores.value = png(plots.score_vs_params(rows, setup.space), DPI)
        state = "done" if final else "running"
        self._say(f"{s.study_name}: {finished} finished, {running} running ({state})" +
                  (" &mdash; stopped; press Search again with the same study name to resume" if final and self._stop.is_set() else ""))
        if final:
            self.table.value = "<pre>" + html.escape("\n\n".join(trials_table(x) for x in studies)) + "</pre>"
            values = [r["value"] for st in studies for r in trial_rows(st) if r["value"] is not None]
            small = too_small(self._base_used, values) if self._base_used is not None else []
            self.warnings.value = self._warn_html(small + list(border_warnings(s)))
            if kind == "compare" and len(studies) == 2:
                grid, rand = studies
                x, y = plane_axes(setup.space, importances(rand))
                panels = {f"grid ({grid.study_name})": trial_rows(grid), f"random ({rand.study_name})": trial_rows(rand)}
                if x is not None:
                    self.compare.value = png(plots.sampler_planes(panels, x, y, ranked=not small), DPI)
                self.best.value = png(plots.best_so_far(
                    {f"{g.study_name} ({study_setup(g).sampler})": [r["value"] for r in trial_rows(g)] for g in studies}), DPI)
        return key

    def preview(self) -> None:
        """Show where grid and random search would put `budget` trials (instant, no training)."""
        from ..plots import search as plots
        from ..search.run import sample_points

        if self._check_settings():
            return
        try:
            space = self.space()
        except LabkitError as e:
            self._say(error_html(str(e)))
            return
        ranges = [p for p in space if p.is_range] or list(space)
        if len(ranges) < 2:
            self._say("the preview needs two parameters")
            return
        budget = space.grid_size(budget=int(self.trials.value))
        pts = {"grid": sample_points(space, "grid", budget), "random": sample_points(space, "random", budget)}
        self.compare.value = png(plots.sample_preview(pts, ranges[0], ranges[1]), DPI)
        self._say(f"preview: {budget} trials each; the grid tries only {len(set(p[ranges[0].path] for p in pts['grid']))} "
                  f"values of {ranges[0].path}, random tries {budget}")

    @staticmethod
    def _warn_html(warns: list[str]) -> str:
        return "".join(f"<div style='color:#a60'>&#9888; {html.escape(w)}</div>" for w in warns)

    def _say(self, text: str) -> None:
        self.status.value = text
