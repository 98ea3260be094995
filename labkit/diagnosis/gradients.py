"""Gradients that vanish on their way back to the input: the first layers' weights get (almost) none.

Read from the probes' per-layer weight-gradient norms (the weight layer that
feeds each activation), in network order. A deep stack of sigmoids (whose
slope is at most 1/4) or of too-small weights multiplies the gradient by a
factor below 1 at every layer, so the first layers stop learning while the
last ones still move: the loss stays at chance, the median update looks
almost normal, and a bigger (deeper) model makes it worse. It is a cause of
a flat loss, tiny updates and underfitting, so it explains them.
"""
from __future__ import annotations

import math

import numpy as np

from ..probe_history import ProbeHistory
from .finding import Finding
from .fixes import BATCH_NORM, RELU_HE, Fix, family, init_options, join_or, offer
from .fmt import g, num
from .registry import Explains, Needs, finding, is_concern
from .runner import Context
from .thresholds import (DEAD_WARN, MIN_COLLAPSE_LAYERS, PLOT_GRADS, VANISH_ALARM, VANISH_RATIO,
                         VANISH_SHRINKING)


def gradient_chain(h: ProbeHistory, i: int) -> list[tuple[str, float]] | None:
    """(layer, weight-gradient norm) in network order at snapshot `i`; None unless every layer has a positive one.

    A gradient of exactly 0 is not "vanishing": it is a dead or a symmetric layer, which their own findings name.
    """
    snap = h.snapshot(i)
    pairs = [(n, num((snap.get(n) or {}).get("grad_norm"))) for n in h.layers if n in snap]
    pairs = [(n, v) for n, v in pairs if math.isfinite(v)]
    if len(pairs) < MIN_COLLAPSE_LAYERS or any(v <= 0 for _, v in pairs):
        return None
    if any(num((snap.get(n) or {}).get("dead")) >= DEAD_WARN for n, _ in pairs):
        return None  # silent units pass no gradient: the dead-units finding explains the shrinking
    return pairs


def vanishing(pairs: list[tuple[str, float]]) -> tuple[float, float] | None:
    """(first / last gradient, factor per layer) when the gradient shrinks layer by layer toward the input."""
    v = np.array([p[1] for p in pairs])
    ratio = float(v[0] / v[-1])
    shrinking = float(np.mean(np.diff(v) > 0))  # each layer's gradient smaller than the next one's
    if ratio < VANISH_RATIO and shrinking >= VANISH_SHRINKING:
        return ratio, ratio ** (1 / (len(v) - 1))
    return None


def chain_text(pairs: list[tuple[str, float]], keep: int = 12) -> str:
    """`a 1e-15 -> b 3e-13 -> ... -> z 0.007`, the middle left out when the chain is long."""
    parts = [f"{n} {g(float(v), 2)}" for n, v in pairs]
    if len(parts) > keep:
        parts = parts[:keep // 2] + ["..."] + parts[-keep // 2:]
    return " -> ".join(parts)


def _options(ctx: Context, per: float) -> tuple[list[str], list[Fix]]:
    cfg = ctx.config
    act = cfg.model.activation if cfg is not None else ""
    relu = ("switch to ReLU with He init (its slope is 1 for every positive input)", RELU_HE)
    bn = ("add batch norm, which rescales every layer's signal and gradient", BATCH_NORM)
    init = init_options(cfg)
    # sigmoid's slope is at most 1/4: even with Xavier init a 10-layer stack loses ~1e-7 of the gradient
    fam = family(cfg)
    options = [relu, bn, *init] if act == "sigmoid" else [*init, bn] if fam in ("relu", None) else [*init, bn, relu]
    if cfg is not None and cfg.model.kind == "mlp" and cfg.model.depth > 2:
        d = max(2, cfg.model.depth // 2)
        options.append((f"use fewer layers (depth {d})",
                        Fix({"model.depth": d}, f"each layer removed multiplies the first layer's gradient by "
                                                f"{g(1 / per, 2)}")))
    return offer(cfg, options)


@finding("vanishing_gradients", codes={"vanishing_gradients"}, needs=Needs(probes=True), explains=[
    Explains({"lr_too_low", "update_ratio_low", "underfitting", "bad_init_plateau"}, when=is_concern)])
def vanishing_gradients(ctx: Context) -> Finding | None:
    """Vanishing gradients: the first layer's weight gradient a thousandth of the last one's, shrinking layer by layer."""
    h = ctx.probes
    latest = gradient_chain(h, -1)
    found = vanishing(latest) if latest is not None else None
    first = gradient_chain(h, 0) if h.steps[0] == 0 else None
    at_init = vanishing(first) if first is not None else None
    if found is None and at_init is None:
        return None
    pairs, (ratio, per), i = (latest, found, -1) if found is not None else (first, at_init, 0)
    ev = (f"weight-gradient norm by depth at step {h.steps[i]}, input side first: {chain_text(pairs)}; the first "
          f"layer gets {ratio:.1e} of the last one's gradient (x{g(per, 2)} per layer)")
    if found is not None and at_init is not None and len(h) > 1:
        ev += f"; at step 0 it was {at_init[0]:.1e}: it never recovered"
    elif found is None:
        ev += f"; by step {h.steps[-1]} it recovered"
    note = ctx.run.loss_note()
    if note:
        ev += f"; {note}"
    sev = "info" if found is None else "alarm" if ratio < VANISH_ALARM else "warn"
    words, fixes = _options(ctx, per)
    sug = (join_or(words) + "; not a bigger model: every extra layer multiplies the first layer's gradient by "
           f"another x{g(per, 2)}")
    return Finding("vanishing_gradients", sev, "Vanishing gradients: the first layers get almost no gradient", ev,
                   sug, PLOT_GRADS, h.steps[i],
                   {"ratio": ratio, "per_layer": per, "grads": dict(pairs), "when": "latest" if found else "init"},
                   fixes)
