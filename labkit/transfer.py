"""The lectures' transfer-learning table, measured: small or large target x similar or different to the source.

The lectures (CS231n / EECS 498, "Training Neural Networks II"): with little data, start from a network
trained on a bigger, related set; freeze it and train a new linear classifier on its features, or fine-tune
it at a lower learning rate; which one depends on how much data there is and how similar it is:

|                     | very similar dataset           | very different dataset                                   |
|---------------------|--------------------------------|----------------------------------------------------------|
| very little data    | linear classifier on top layer | in trouble... try linear classifiers from other stages   |
| quite a lot of data | fine-tune a few layers         | fine-tune a larger number of layers                      |

`transfer_demo` measures each cell offline. The source is a network trained on CIFAR-10's six animal
classes; the similar target is CIFAR-10's four vehicle classes (photos, as the source saw), the different
target is `shapes` (generated drawings, labkit.data.shapes). In each cell three runs of equal steps are
compared on the target's test set: from scratch, a linear probe (the source frozen, a new head at 10x the
rate; the fast path of labkit.training.transfer), and fine-tuning (a new head, the source's layers at a tenth
of the rate). All use the source's recipe (model, optimizer, schedule, augmentation), none for the probe.

Every run goes through the run store and is reused when a run of the same config is there: the source
(the slow part) is trained once and found again by later demos, and the lab's "start from" menu offers it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import Config
from .errors import LabkitError
from .runs import RunRecord, list_runs, load_run

SOURCE_CLASSES = "bird,cat,deer,dog,frog,horse"
TARGETS: dict[str, dict[str, Any]] = {
    "similar": {"label": "CIFAR-10 vehicles (photos, like the source)",
                "config": {"data.dataset": "cifar10", "data.classes": "airplane,automobile,ship,truck"}, "classes": 4},
    "different": {"label": "generated shapes (drawings, unlike the source)",
                  "config": {"data.dataset": "shapes", "data.classes": ""}, "classes": 5},
}
SIZES = ("small", "large")
METHODS: dict[str, dict[str, Any]] = {
    "scratch": {},
    "linear probe": {"model.freeze": "all", "reg.flip": False, "reg.crop": 0},
    "fine-tune": {"optim.backbone_lr_scale": 0.1},
}
# The linear probe's head trains alone at this multiple of the recipe's rate: with the features fixed nothing else
# moves the logits, and the recipe's convnet scales them by 1/9. Measured on the demo's similar targets (50 and
# 500 images per class): 0.1 left the head under-fitted (61% training accuracy on 200 images) and 4-8 points
# below rates 1-16, which were within 1.5 points of each other.
PROBE_LR_FACTOR = 10.0
# the lectures' advice for each cell, as their table words it
ADVICE: dict[tuple[str, str], str] = {
    ("small", "similar"): "use a linear classifier on the top layer",
    ("small", "different"): "you're in trouble... try linear classifiers from different stages",
    ("large", "similar"): "fine-tune a few layers",
    ("large", "different"): "fine-tune a larger number of layers",
}
DEFAULTS = {"small": 50, "large": 500, "small_steps": 150, "large_steps": 300, "source_images": 9000,
            "source_epochs": 8, "width": None, "batch_size": 64}  # width None: the recipe's (Config().model.width)
DEMO_FOLDER = "transfer-demo"  # the target runs go under the run store's sub-folder of this name
_IGNORED = ("train.out", "train.threads")  # run-store paths and thread counts do not change what a run learns


def _key(cfg: Config) -> dict[str, Any]:
    d = cfg.to_dict()
    for path in _IGNORED:
        section, name = path.split(".")
        d[section].pop(name, None)
    return d


def find_run(config: Config, store: str | Path) -> RunRecord | None:
    """A completed run of `config` (paths and thread counts aside) with a best.pt in `store`, the newest, or None."""
    want = _key(config)
    for run in reversed(list_runs(store)):
        if run.status == "completed" and run.checkpoint is not None and run.config is not None \
                and _key(run.config) == want:
            return run
    return None


def cached_train(config: Config, store: str | Path) -> tuple[RunRecord, bool]:
    """The run of `config` from `store` if there is one (True), else trained now into `store` (False)."""
    from .training import train

    found = find_run(config, store)
    if found is not None:
        return found, True
    run = train(config, out=store)
    if run.status != "completed":
        raise LabkitError(f"run {run.id} ended {run.status}: {run.message}; see {run.dir}")
    return load_run(run.dir), False


def source_config(base: Config | None = None, images: int = DEFAULTS["source_images"],
                  epochs: float = DEFAULTS["source_epochs"], width: int | None = DEFAULTS["width"],
                  seed: int = 0) -> Config:
    """The demo's source: the base recipe (the defaults) on CIFAR-10's six animal classes."""
    over: dict[str, Any] = {"data.dataset": "cifar10", "data.classes": SOURCE_CLASSES, "data.subset": images,
                            "data.val_size": min(600, max(60, images // 10)), "train.epochs": float(epochs),
                            "train.steps": 0, "train.seed": seed, "train.name": "transfer-source", "probe.every": 0,
                            "model.init_from": None, "model.freeze": "none", "optim.backbone_lr_scale": 1.0}
    if width is not None:
        over["model.width"] = width
    return (base or Config()).replace(**over)


def target_config(source: RunRecord, target: str, per_class: int, steps: int, method: str, seed: int = 0,
                  batch_size: int = DEFAULTS["batch_size"]) -> Config:
    """One run of the table: `method` on `per_class` images of each class of `target`, for `steps` steps.

    The model and recipe are the source's, so the source's weights fit; no validation split (each run trains
    its fixed budget and is scored once, on the target's test set).
    """
    if target not in TARGETS:
        raise LabkitError(f"unknown transfer target {target!r}; choose one of: {', '.join(TARGETS)}")
    if method not in METHODS:
        raise LabkitError(f"unknown transfer method {method!r}; choose one of: {', '.join(METHODS)}")
    spec = TARGETS[target]
    over: dict[str, Any] = {**spec["config"], "data.subset": per_class * spec["classes"], "data.val_size": 0,
                            "train.steps": steps, "train.epochs": 0.0, "train.batch_size": batch_size,
                            "train.seed": seed, "train.tta": False, "train.test": True, "train.patience": 0,
                            "probe.every": 0,
                            "train.name": f"{target}-{per_class}-{method.replace(' ', '-')}",
                            "model.init_from": None if method == "scratch" else str(source.dir),
                            "model.freeze": "none", "optim.backbone_lr_scale": 1.0, **METHODS[method]}
    if method == "linear probe":
        over["optim.lr"] = source.config.optim.lr * PROBE_LR_FACTOR
    return source.config.replace(**over)


def transfer_demo(out: str | Path = "runs", *, small: int = DEFAULTS["small"], large: int = DEFAULTS["large"],
                  small_steps: int = DEFAULTS["small_steps"], large_steps: int = DEFAULTS["large_steps"],
                  source: str | Path | None = None, source_images: int = DEFAULTS["source_images"],
                  source_epochs: float = DEFAULTS["source_epochs"], width: int | None = DEFAULTS["width"],
                  seed: int = 0, threads: int = 0, base: Config | None = None,
                  targets: Sequence[str] = tuple(TARGETS), sizes: Sequence[str] = SIZES,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the four quadrants: each cell's test accuracy per method, with its runs, advice and timings.

    `source`: a run directory to start from instead of the demo's own source (which is trained once into `out`
    and reused). `small` / `large`: target images per class; each size trains every method for the same steps.
    `targets` / `sizes`: the columns / rows to measure (default all; the figure marks the others "not measured").
    Returns {"source": {...}, "cells": {(size, target): {"per_class", "steps", "classes", "chance", "advice",
    "label", "accuracy": {method: acc}, "runs": {method: run dir}, "cached": {method: bool}}}, "seconds"}.
    """
    say = progress or (lambda text: None)
    for target in targets:
        if target not in TARGETS:
            raise LabkitError(f"unknown transfer target {target!r}; choose from: {', '.join(TARGETS)}")
    for size in sizes:
        if size not in SIZES:
            raise LabkitError(f"unknown transfer target size {size!r}; choose from: {', '.join(SIZES)}")
    for name, n in (("small", small), ("large", large), ("small-steps", small_steps), ("large-steps", large_steps)):
        if not isinstance(n, int) or n < 1:
            raise LabkitError(f"transfer demo: {name}={n!r} is out of range; allowed: a whole number >= 1; "
                              f"fix: --{name} N (default {DEFAULTS[name.replace('-', '_')]})")
    if small >= large:
        raise LabkitError(f"transfer demo: small={small} must be below large={large} (images per class); fix: "
                          f"--small N with N < {large}, or a larger --large")
    tick = time.perf_counter()
    store = Path(out)
    if source is not None:
        from .training.transfer import source_run

        src, cached = source_run(source, "transfer demo: source"), True
    else:
        cfg = source_config(base, source_images, source_epochs, width, seed)
        if threads:
            cfg = cfg.replace(**{"train.threads": threads})
        found = find_run(cfg, store)
        say("source: found " + found.id if found else
            f"source: training the backbone on CIFAR-10's animals ({source_images} images, {source_epochs:g} "
            "epochs; once, then it is reused)")
        src, cached = cached_train(cfg, store)
    source_info = {"run": str(src.dir), "id": src.id, "cached": cached,
                   "test_acc": (src.summary.get("final") or {}).get("test_acc"),
                   "classes": src.config.data.classes, "dataset": src.config.data.dataset}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    folder = store / DEMO_FOLDER
    for size, per_class, steps in (("small", small, small_steps), ("large", large, large_steps)):
        if size not in sizes:
            continue
        for target in targets:
            spec = TARGETS[target]
            cell: dict[str, Any] = {"per_class": per_class, "steps": steps, "classes": spec["classes"],
                                    "chance": 1 / spec["classes"], "advice": ADVICE[(size, target)],
                                    "label": spec["label"], "accuracy": {}, "runs": {}, "cached": {}, "seconds": {}}
            for method in METHODS:
                cfg = target_config(src, target, per_class, steps, method, seed)
                if threads:
                    cfg = cfg.replace(**{"train.threads": threads})
                what = f"{size} x {target}: {method} ({per_class} images per class, {steps} steps)"
                say(what + (": reused" if find_run(cfg, folder) is not None else ""))
                t0 = time.perf_counter()
                run, hit = cached_train(cfg, folder)
                cell["accuracy"][method] = (run.summary.get("final") or {}).get("test_acc")
                cell["runs"][method] = str(run.dir)
                cell["cached"][method] = hit
                cell["seconds"][method] = round(time.perf_counter() - t0, 2)
            cells[(size, target)] = cell
    return {"source": source_info, "cells": cells, "seconds": round(time.perf_counter() - tick, 1),
            "methods": list(METHODS), "sizes": list(SIZES), "targets": {k: v["label"] for k, v in TARGETS.items()}}


def table_rows(result: Mapping[str, Any]) -> list[str]:
    """The result as text lines: one per cell and method, with the lectures' advice (for the CLI)."""
    lines = []
    for (size, target), cell in result["cells"].items():
        best = max(cell["accuracy"], key=lambda m: cell["accuracy"][m] or 0.0)
        lines.append(f"{size} ({cell['per_class']}/class) x {target}: lectures: {cell['advice']}")
        for method, acc in cell["accuracy"].items():
            mark = "  <- best" if method == best else ""
            lines.append(f"  {method:<13} {acc:.3f}{mark}" if acc is not None else f"  {method:<13} -")
    return lines
