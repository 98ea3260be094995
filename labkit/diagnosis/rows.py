"""A run's metric rows, split by kind, with the numbers the finding checks share."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..config import Config
from .fmt import g, num


class RunRows:
    """The rows of one run (the dicts of metrics.jsonl), split by kind, as arrays where the checks want them."""

    def __init__(self, metrics: Sequence[dict], config: Config | None):
        self.config = config
        self.start = next((r for r in metrics if r.get("kind") == "start"), None)
        self.end = next((r for r in reversed(metrics) if r.get("kind") == "end"), None)
        steps = sorted((r for r in metrics if r.get("kind") == "step"), key=lambda r: int(r.get("step", 0)))
        self.step_no = np.array([int(r.get("step", 0)) for r in steps], dtype=int)
        self.loss = np.array([num(r.get("loss")) for r in steps])
        self.lr = np.array([num(r.get("lr")) for r in steps])
        self.epochs = [r for r in metrics if r.get("kind") == "epoch"]
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
