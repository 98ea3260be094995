"""How a finished run came out, in one judgement a status line can show: it learned, or it stayed at chance."""
from __future__ import annotations

import math
from typing import Any, Mapping

from .fmt import num
from .thresholds import CHANCE_BAND

ACCURACIES = ("train_acc", "val_acc", "test_acc")


def at_chance(final: Mapping[str, Any], classes: int | None) -> dict[str, float] | None:
    """{"best", "chance", "level"} when even the best final accuracy is at chance level (nothing learned), else None.

    `final` is a summary's final metrics (train_acc, val_acc, test_acc). "Completed" says the loop ran to its
    end, not that the model learned: a 10-layer sigmoid stack ends at 10% on CIFAR-10 with status completed.
    """
    accs = [num(final.get(k)) for k in ACCURACIES]
    accs = [a for a in accs if math.isfinite(a)]
    if not accs or not classes or classes < 2:
        return None
    chance = 1.0 / classes
    level = chance + CHANCE_BAND * (1 - chance)
    best = max(accs)
    return {"best": best, "chance": chance, "level": level} if best < level else None
