"""A finding: what is wrong with a run, the numbers that show it, what to try (words and fixes), and its plot."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from .fixes import Fix
from .thresholds import PLOT_CURVES

SEVERITIES = ("alarm", "warn", "info")


@dataclass
class Finding:
    """One diagnosis: what is wrong, the numbers that show it, what to try, and the plot that shows it."""

    code: str  # lr_too_low, lr_too_high, diverged, bad_init_plateau, overfitting, underfitting, update_ratio_high,
    # update_ratio_low, dead_units, saturated_units, activation_collapse, vanishing_gradients, symmetry; not_judged (too little data yet)
    severity: str  # "alarm" | "warn" | "info"
    title: str
    evidence: str
    suggestion: str  # what to try, in words and numbers (no flag syntax: each top layer renders `fixes`)
    plot: str  # the run_figures name that shows the evidence
    step: int | None = None
    values: dict = field(default_factory=dict)
    fixes: list[Fix] = field(default_factory=list)  # the suggestion as config changes, alternatives, best first

    @property
    def fix(self) -> dict[str, Any]:
        """The first fix's changes (config path -> value); {} when the finding suggests no setting."""
        return dict(self.fixes[0].changes) if self.fixes else {}

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict (with `fix`, the first of `fixes`)."""
        d = {k: jsonable(v) for k, v in asdict(self).items()}
        d["fix"] = jsonable(self.fix)
        return d


def jsonable(v: Any) -> Any:
    """`v` with non-finite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return jsonable(v.item())
    return v


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Alarms first, then warnings, then notes; findings before "not judged" notes; otherwise as found."""
    order = {"alarm": 0, "warn": 1, "info": 2}
    return sorted(findings, key=lambda f: (order.get(f.severity, 3), f.code == "not_judged"))


def not_judged(check: str, title: str, evidence: str, suggestion: str, plot: str = PLOT_CURVES,
               fixes: list[Fix] | None = None) -> Finding:
    """An "info" note for a check that had too little to go on (it says so instead of guessing)."""
    return Finding("not_judged", "info", title, evidence, suggestion, plot, values={"check": check},
                   fixes=list(fixes or []))


def has_alarms(findings: Iterable[Finding]) -> bool:
    """True when any finding is an alarm."""
    return any(f.severity == "alarm" for f in findings)
