"""The lab notebook's content, so `labkit lab` can serve it when labkit is installed without the repository.

notebooks/lab.ipynb in the repository is this notebook (a test holds them equal).
"""
from __future__ import annotations

import json
from pathlib import Path

CELLS = [
    ("markdown",
     "# labkit: the training lab\n"
     "\n"
     "Pick a preset or set the controls (dataset, model, activation, initializer, normalization, optimizer, "
     "schedule, regularizers), watch the learning-rate preview, press **Train**, and follow the learning curves "
     "and what happens inside each layer. Every setting is also a `labkit train` flag: the Compare tab shows the "
     "command for any run.\n"
     "\n"
     "Served as a dashboard with `labkit lab`; add settings to the URL (`?optim.lr=0.01&model.init=large`) "
     "to share an experiment."),
    ("code",
     "from labkit.widgets import Lab\n"
     "\n"
     "lab = Lab()\n"
     "lab"),
]


def notebook_dict() -> dict:
    """The notebook as nbformat 4 JSON (no outputs)."""
    cells = []
    for kind, text in CELLS:
        cell = {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_notebook(path: str | Path) -> Path:
    """Write the lab notebook to `path` and return it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(notebook_dict(), indent=1) + "\n")
    return p


def find_notebook() -> Path:
    """The repository's notebooks/lab.ipynb when labkit runs from a checkout, else a copy in the user cache."""
    repo_copy = Path(__file__).resolve().parents[2] / "notebooks" / "lab.ipynb"
    if repo_copy.is_file():
        return repo_copy
    from ..data import cache_dir

    return write_notebook(cache_dir().parent / "lab" / "lab.ipynb")
