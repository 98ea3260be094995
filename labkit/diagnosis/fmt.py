"""Numbers as the findings' sentences and fixes show them."""
from __future__ import annotations

import math
from typing import Any


def num(v: Any) -> float:
    """`v` as a float; NaN for None or anything not a number (rows may hold either)."""
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def g(v: float, digits: int = 3) -> str:
    """A number for a sentence: 3 significant digits, scientific when tiny or huge."""
    return f"{v:.{digits}g}" if math.isfinite(v) else str(v)


def pct(v: float) -> str:
    """A fraction as a percentage: whole percents from 10%, one decimal below."""
    return f"{v:.0%}" if abs(v) >= 0.1 else f"{v:.1%}"


def nice(v: float) -> float:
    """`v` rounded to 1, 2, 3 or 5 times a power of ten (a value a person would type)."""
    if not (math.isfinite(v) and v > 0):
        return v
    e = math.floor(math.log10(v))
    m = v / 10**e
    m = 1 if m < 1.5 else 2 if m < 2.5 else 3 if m < 4 else 5 if m < 7.5 else 10
    return float(f"{m * 10**e:.3g}")


def round3(v: float) -> float:
    """`v` to 3 significant digits, as the sentence shows it (so the fix and the words agree)."""
    return float(f"{v:.3g}")
