"""What the lessons in notebooks/lessons/ share: their sizes (normal or fast), a throw-away run store, one widget.

    from labkit.lessons import sizes, run_store, demo_widget, show
    S = sizes("activations")            # {"points": 600, "epochs": 8, ...}; LABKIT_FAST=1 gives the fast column
    store = run_store()                 # a temporary folder, removed when the kernel exits
    demo_widget(compute, {"lr": ipywidgets.FloatLogSlider(...)})   # controls, Run, the figure in an Output
    show(fig)                           # a labkit.plots Figure as PNG in the notebook

Normal sizes run a lesson top to bottom in at most 2 minutes on 2 CPU cores; fast sizes (`LABKIT_FAST=1`, what CI
runs) in at most 20 s: fewer images, epochs, steps and trials, so the numbers are noisier but the code is the same.
Every size a lesson uses is in `SIZES`, so a reader sees in one place what the fast mode cuts.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import LabkitError

__all__ = ["FAST_ENV", "THREADS", "SIZES", "fast", "sizes", "run_store", "show", "demo_widget", "choices"]

FAST_ENV = "LABKIT_FAST"
# Lessons train on one torch thread: two OpenMP threads on a machine that other work keeps busy wait at every
# barrier (measured on this project's shared 2-core machine: a 1,000-image convnet run took 10x longer on two
# threads than on one), and one thread gives the same numbers on every machine.
THREADS = 1

# lesson -> name -> (normal, fast)
SIZES: dict[str, dict[str, tuple[Any, Any]]] = {
    "activations": {"points": (600, 200), "epochs": (8, 1), "zigzag_steps": (600, 100)},
    "preprocessing": {"subset": (2000, 300), "epochs": (5, 2)},
    "initialization": {"depth": (10, 6), "width": (500, 200), "n": (1000, 300), "subset": (1000, 300),
                       "epochs": (3, 1)},
    "batchnorm": {"epochs": (8, 3)},
    "babysitting": {"subset": (1000, 300), "lr_iters": (100, 20), "overfit_steps": (300, 60), "epochs": (4, 1)},
    "search": {"trials": (9, 4), "epochs": (3, 1), "points": (600, 300), "repeats": (500, 100), "cv_repeats": (4, 2),
               "cv_epochs": (20, 4)},
    "optimizers": {"epochs": (6, 2), "points": (600, 300)},
    "schedules": {"epochs": (20, 6), "es_epochs": (60, 60)},
    "regularization": {"subset": (1000, 300), "val_size": (500, 200), "epochs": (20, 2), "l1_epochs": (30, 2),
                       "dropout_epochs": (10, 1), "preview": (6, 3)},
    "ensembles": {"members": (3, 2), "subset": (1000, 300), "epochs": (12, 1)},
    # rows, columns: the transfer table's sizes and targets measured (fast mode measures the small, similar
    # quadrant only; the figure marks the others "not measured")
    "transfer": {"source_images": (6000, 300), "source_epochs": (6, 1), "small": (20, 5), "large": (100, 20),
                 "small_steps": (60, 10), "large_steps": (120, 20), "rows": (("small", "large"), ("small",)),
                 "columns": (("similar", "different"), ("similar",))},
    # test: score each run on the 10,000 test images too (fast mode reads the validation accuracy only)
    "scale": {"subset": (2048, 256), "epochs": (4, 1), "small": (32, 16), "large": (256, 64), "test": (True, False)},
}


def fast() -> bool:
    """True when the environment asks for the fast sizes (`LABKIT_FAST` set to 1, true or yes)."""
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise LabkitError(f"{FAST_ENV}={value!r} is not understood; allowed: 1, true, yes (fast) or 0, false, no, "
                      f"unset (normal); fix: export {FAST_ENV}=1")


def sizes(lesson: str) -> dict[str, Any]:
    """The sizes lesson `lesson` runs with: the fast column of SIZES when `fast()`, else the normal one (and THREADS)."""
    if lesson not in SIZES:
        raise LabkitError(f"unknown lesson {lesson!r}; choose one of: {', '.join(SIZES)}")
    col = 1 if fast() else 0
    return {"threads": THREADS, **{name: pair[col] for name, pair in SIZES[lesson].items()}}


_STORES: list[Path] = []


def _cleanup() -> None:
    for d in _STORES:
        shutil.rmtree(d, ignore_errors=True)


def run_store() -> Path:
    """A new empty run store in the system's temporary folder, removed when the Python process exits.

    Lessons train into it, so running a lesson writes nothing into the repository or the data folder.
    """
    if not _STORES:
        atexit.register(_cleanup)
    d = Path(tempfile.mkdtemp(prefix="labkit-lesson-"))
    _STORES.append(d)
    return d


Result = Any  # a matplotlib Figure, or (Figure, lines of text)


def _png(fig: Any) -> Any:
    from IPython.display import Image

    from .widgets.live import PIXEL_RATIO, png, png_css_width

    data = png(fig, dpi=80)
    width = png_css_width(data) or 800
    return Image(data=data, format="png", width=min(width, 960 * PIXEL_RATIO // 2))


def show(fig: Any) -> None:
    """Display a matplotlib Figure in the notebook as PNG (labkit's figures are made without pyplot)."""
    from IPython.display import display

    display(_png(fig))


def demo_widget(compute: Callable[..., Result], controls: Mapping[str, Any], *, button: str = "Run",
                run_now: bool = True) -> Any:
    """Controls, a Run button and an Output: Run calls `compute(**values)` on a thread and shows its figure.

    `controls` maps compute's keyword names to ipywidgets (their `.value` is passed). `compute` returns a
    matplotlib Figure or (Figure, lines); the lines are printed under it. With `run_now` the first result is
    computed at once, in the cell, so the figure is there without a click (and in a notebook's saved output).
    A LabkitError is shown as its one line. Works in JupyterLab and Voila: outputs are set on the Output widget
    directly, never printed from the thread.
    """
    import ipywidgets as W

    from .widgets.notes import error_html, exception_html

    out = W.Output(layout=W.Layout(min_height="60px"))
    status = W.HTML()
    run = W.Button(description=button, button_style="primary", icon="play")

    def show(result: Result, seconds: float) -> None:
        fig, lines = (result if isinstance(result, tuple) else (result, ()))
        out.outputs = ()
        out.append_display_data(_png(fig))
        if lines:
            out.append_stdout("\n".join(lines) + "\n")
        status.value = f"<span style='color:#555'>done in {seconds:.1f} s</span>"

    def work() -> None:
        import time

        t0 = time.perf_counter()
        try:
            result = compute(**{k: w.value for k, w in controls.items()})
        except LabkitError as e:
            status.value = error_html(str(e))
        except Exception as e:  # a lesson's widget must say what failed rather than die silently on its thread
            status.value = exception_html(e, "failed: ")
        else:
            show(result, time.perf_counter() - t0)
        finally:
            run.disabled = False

    def click(_: Any = None) -> None:
        if run.disabled:
            return
        run.disabled = True
        status.value = "<span style='color:#555'>running...</span>"
        threading.Thread(target=work, daemon=True).start()

    run.on_click(click)
    for w in controls.values():  # labels in full ("weight decay", not "weight de...")
        if hasattr(w, "style") and hasattr(w.style, "description_width"):
            w.style.description_width = "initial"
    box = W.VBox([W.HBox(list(controls.values()), layout=W.Layout(flex_flow="row wrap")), W.HBox([run, status]), out])
    if run_now:
        run.disabled = True
        status.value = "<span style='color:#555'>running...</span>"
        work()
    box.out, box.status, box.button, box.click = out, status, run, click  # for tests and scripted use
    return box


def choices(widget_values: Sequence[str]) -> list[str]:
    """A SelectMultiple's value as a list, refusing an empty choice with a one-line error."""
    values = list(widget_values)
    if not values:
        raise LabkitError("nothing selected; pick at least one (hold Ctrl or Shift to pick several)")
    return values
