"""The lab notebook's content, so `labkit lab` can serve it when labkit is installed without the repository.

notebooks/lab.ipynb in the repository is this notebook (a test holds them equal).
"""
from __future__ import annotations

import json
from pathlib import Path

# one code cell: the dashboard's header explains the lab, so Voila shows nothing but the app
CELLS = [
    ("code",
     "# The training lab: served as a dashboard by `labkit lab`; settings can ride in the URL,\n"
     "# e.g. ?optim.lr=0.01&model.init=large (the Share box shows the link for the current settings).\n"
     "from labkit.widgets import Lab\n"
     "\n"
     "lab = Lab()\n"
     "lab"),
]


def notebook_dict() -> dict:
    """The notebook as nbformat 4 JSON (no outputs)."""
    cells = []
    for i, (kind, text) in enumerate(CELLS):
        cell = {"cell_type": kind, "id": f"lab-{i}", "metadata": {}, "source": text.splitlines(keepends=True)}
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
    from ..data.sets import cache_dir

    return write_notebook(cache_dir().parent / "lab" / "lab.ipynb")
