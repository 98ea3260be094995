"""The lab's "start from" control: a dropdown of the run store's runs that can be a source (they have a best.pt).

The value is the chosen run's directory, or "" for training from scratch (model.init_from = None), so the
Controls read it like any text field. A run set from elsewhere (a shared config, an Apply) that is not in
the list is added to it rather than dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import ipywidgets as W

from ..runs import list_runs

SCRATCH = "(from scratch)"


def run_choices(store: str | Path) -> list[tuple[str, str]]:
    """(label, run directory) of each run in `store` with a best.pt, newest first, labelled with data and accuracy."""
    out = []
    for run in reversed(list_runs(store)):
        if run.checkpoint is None or run.config is None:
            continue
        d, m = run.config.data, run.config.model
        acc = (run.summary.get("final") or {}).get("test_acc")
        what = d.dataset + (f" [{d.classes}]" if d.classes else "")
        label = f"{run.id} · {what} · {m.kind} w{m.width}" + (f" · test {acc:.2f}" if isinstance(acc, float) else "")
        out.append((label, str(run.dir)))
    return out


class RunPicker(W.Dropdown):
    """A dropdown whose value is a run directory ("" = from scratch); `refresh` re-reads the run store."""

    def __init__(self, value: str | None = "", runs: Callable[[], list[tuple[str, str]]] | None = None, **kw):
        self._runs = runs or (lambda: [])
        super().__init__(options=[(SCRATCH, "")], value="", **kw)
        self.refresh()
        self.select(value)

    def refresh(self) -> None:
        """Re-list the runs, keeping the chosen one (even if it is no longer in the store)."""
        current = self.value or ""
        options = [(SCRATCH, ""), *self._runs()]
        if current and current not in [v for _, v in options]:
            options.append((f"{Path(current).name} (not in the run store)", current))
        self.options = options
        self.value = current

    def select(self, value: str | None) -> None:
        """Choose the run at `value` (a directory; None or "" = from scratch), adding it when it is not listed."""
        value = value or ""
        if value not in [v for _, v in self.options]:
            self.options = [*self.options, (f"{Path(value).name} (not in the run store)", value)]
        self.value = value
