"""A run's record as the finding checks read it: built from the typed run log, with the numbers they share."""
from __future__ import annotations

import math
import numpy as np

from ..config import Config
from ..runlog import RunLog
from .fmt import g, num


class RunRows:
    """One run for the checks: start/end/epochs as dicts, steps as arrays in step order (from a RunLog)."""

    def __init__(self, log: RunLog, config: Config | None):
        log = log.snapshot()  # one consistent moment of a log that may still be growing
        self.config = config
        self.start = log.start.to_dict() if log.start is not None else None
        self.end = log.end.to_dict() if log.end is not None else None
        steps = log.steps
        order = np.argsort(steps.step, kind="stable")
        self.step_no = steps.step[order].astype(int)
        self.loss = steps.loss[order].astype(float)
        self.lr = steps.lr[order].astype(float)
        self.epochs = [e.to_dict() for e in log.epochs]
        self.classes = int(self.start["classes"]) if self.start and self.start.get("classes") else None
        self.chance = 1.0 / self.classes if self.classes and self.classes > 1 else None
        self.ln_c = math.log(self.classes) if self.classes and self.classes > 1 else None
        finite = self.lr[np.isfinite(self.lr)]
        self.peak_lr = float(finite.max()) if finite.size else (config.optim.lr if config else math.nan)
        self.status = (self.end or {}).get("status")

    @property
    def n(self) -> int:
        """Step rows recorded."""
        return len(self.loss)

    @property
    def val_epochs(self) -> list[dict]:
        """The epoch rows with both a train and a validation accuracy (what a train/validation gap needs)."""
        return [r for r in self.epochs if math.isfinite(num(r.get("val_acc"))) and math.isfinite(num(r.get("train_acc")))]

    def window(self) -> int:
        """Steps in the "first" and "latest" medians: a tenth of the run, within 5-50 (the batch loss is noisy)."""
        return max(5, min(50, self.n // 10))

    def lr_at(self, step: int) -> float:
        """The LR the optimizer used for step `step` -> step + 1 (the step row numbered step + 1)."""
        i = int(np.searchsorted(self.step_no, step + 1))
        if i < len(self.step_no) and self.step_no[i] == step + 1:
            return float(self.lr[i])
        return math.nan

    def loss_note(self) -> str:
        """The loss from its first to its latest steps, for findings that take over a flat loss's blame."""
        if self.n < 2:
            return ""
        w = self.window()
        first, last = float(np.nanmedian(self.loss[:w])), float(np.nanmedian(self.loss[-w:]))
        return f"the loss is {g(first)} -> {g(last)} over {self.n} steps" + (
            f" (chance ln {self.classes} = {self.ln_c:.3f})" if self.ln_c else "")
