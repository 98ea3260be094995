"""Fixes as data: what to change in the config (path -> value), so each top layer can offer it its own way.

A finding or a check result says what to try in words ("lower the learning
rate to 1") and carries the same advice as `Fix`es: `{"optim.lr": 1.0}`.
The CLI prints a fix as flags (`--lr 1`), the lab as an Apply button that
sets its controls; neither has to parse the words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..config import Config
from .fmt import g, round3
from .thresholds import GRAD_CLIP, WARMUP_EPOCHS


@dataclass
class Fix:
    """One thing to try: config path -> new value (several paths change together), and why it helps."""

    changes: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fix as a JSON-ready dict."""
        return {"changes": dict(self.changes), "reason": self.reason}

    def changes_anything(self, config: Config | None) -> bool:
        """True unless `config` already has every value of the fix (unknown config: assume it changes)."""
        if config is None:
            return True
        return any(_get(config, path) != value for path, value in self.changes.items())


def _get(config: Config, path: str) -> Any:
    try:
        return config.get(path)
    except Exception:  # a path the config does not have: the fix is not a no-op, the validator will say why
        return object()


# one alternative in a suggestion: its words, and the fix that does it (None: advice without a setting)
Option = tuple[str, "Fix | None"]


def offer(config: Config | None, options: Sequence[Option]) -> tuple[list[str], list[Fix]]:
    """The options worth offering (words, fixes): those whose fix `config` does not already have."""
    words: list[str] = []
    fixes: list[Fix] = []
    for text, fix in options:
        if fix is not None and not fix.changes_anything(config):
            continue  # e.g. "add batch norm" to a model that has it: no advice, no button
        changes = dict(fix.changes) if fix is not None else {}
        scale = lr_flag_scale(config)
        if "optim.lr" in changes and scale != 1:  # advice names the rate the run used; the flag is that / scale
            changes["optim.lr"] = round3(changes["optim.lr"] / scale)
            text += f" (--lr {g(changes['optim.lr'])}: --scale-lr linear multiplies it by {scale:g})"
        words.append(text)
        if fix is not None:
            fixes.append(Fix(changes, fix.reason))  # a copy: the shared ones below stay as written
    return words, fixes


def lr_flag_scale(config: Config | None) -> float:
    """The factor between optim.lr and the peak rate a run of `config` uses (batch/128 under --scale-lr linear)."""
    if config is None or not config.optim.lr:
        return 1.0
    from ..schedules import peak_lr

    return peak_lr(config) / config.optim.lr


def join_or(words: Sequence[str]) -> str:
    """ "a", "a or b", "a, b, or c": alternatives in a sentence."""
    words = [w for w in words if w]
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + ", or " + words[-1]


def family(config: Config | None) -> str | None:
    """The activation family of `config`'s model (relu, saturating, ...), None when unknown."""
    from ..activations import ACTIVATIONS

    if config is None or config.model.activation not in ACTIVATIONS:
        return None
    return ACTIVATIONS.entry(config.model.activation).traits.get("family")


def lower_lr(lr: float, factor: float = 10.0, why: str = "") -> Option:
    """ "lower the learning rate to lr / factor (why)", with its fix (words only when `lr` is unknown)."""
    if not (math.isfinite(lr) and lr > 0):
        return (f"lower the learning rate{f' ({why})' if why else ''}", None)
    new = round3(lr / factor)
    part = "a tenth" if factor == 10 else f"1/{factor:g}"
    return (f"lower the learning rate to {g(new)} ({part}{f'; {why}' if why else ''})",
            Fix({"optim.lr": new}, f"{part} of the LR {g(lr)}"))


# where the LR range test is, for suggestions read in the lab and on the command line alike
LR_TEST = "the LR range test (`labkit check`; in the lab: Check this config)"

HE = Fix({"model.init": "kaiming"}, "He init keeps the variance of ReLU-family layers from layer to layer")
XAVIER = Fix({"model.init": "xavier"}, "Xavier init keeps the variance of tanh and sigmoid layers from layer to layer")
BATCH_NORM = Fix({"model.norm": "batch"}, "batch norm re-centres and rescales every layer's inputs")
RELU_HE = Fix({"model.activation": "relu", "model.init": "kaiming"}, "ReLU does not saturate for positive inputs")
WARMUP = Fix({"schedule.warmup_epochs": WARMUP_EPOCHS}, "the LR ramps up while the first large gradients settle")
CLIP = Fix({"optim.grad_clip": GRAD_CLIP}, "caps the size of any one step")


def init_options(config: Config | None) -> list[Option]:
    """The variance-keeping init for `config`'s activation (both, ReLU family first, when it is unknown)."""
    fam = family(config)
    act = config.model.activation if config is not None else ""
    if fam == "relu":
        return [(f"use He (kaiming) init (made for {act})", HE)]
    if fam == "saturating":
        return [(f"use Xavier init (made for {act})", XAVIER)]
    return [("use He (kaiming) init for the ReLU family", HE), ("Xavier init for tanh and sigmoid", XAVIER)]


def changes_text(changes: dict[str, Any]) -> str:
    """`changes` as path=value pairs, the plain rendering when no top layer supplies its own."""
    from ..fields import value_text

    return " ".join(f"{path}={value_text(v)}" for path, v in changes.items())
