"""Updates too large or too small for the weights: the update/weight ratio against the lectures' ~1e-3."""
from __future__ import annotations

import math

from .divergence import blew_up
from .finding import Finding
from .fixes import LR_TEST, WARMUP, Fix, join_or, offer
from .fmt import g, nice
from .ratios import raised_lr, update_window, window_lr
from .registry import Needs, finding
from .runner import Context
from .thresholds import PLOT_GRADS, UPDATE_ALARM, UPDATE_HIGH, UPDATE_LOW, UPDATE_TARGET, WARMUP_EPOCHS


@finding("update_ratio", codes={"update_ratio_high", "update_ratio_low"}, needs=Needs(probes=True))
def update_ratio(ctx: Context) -> Finding | None:
    """Updates too large (above 3e-2) or too small (below 3e-5) for the weights."""
    h = ctx.probes
    ratio, steps = update_window(ctx)
    if ratio is None:
        return None
    early = blew_up(ctx)
    where = f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step {steps[0]}"
    lr = window_lr(ctx)
    ev = (f"median update/weight ratio {ratio:.1e} over {len(h.weight_params())} weight tensors at {where} "
          f"(LR {g(lr)}); rule of thumb ~1e-3, healthy {UPDATE_LOW:.0e} to {UPDATE_HIGH:.0e}")
    vals = {"ratio": ratio, "steps": steps, "lr": lr}
    toward = f"brings the update/weight ratio toward {UPDATE_TARGET:g}"
    if ratio > UPDATE_HIGH:
        new = nice(lr * max(0.01, UPDATE_TARGET / ratio)) if math.isfinite(lr) else None
        words, fixes = offer(ctx.config, [
            (f"lower the learning rate to {g(new)} (the ratio scales with it)", Fix({"optim.lr": new}, toward))
            if new else ("lower the learning rate (the ratio scales with it)", None),
            (f"add {WARMUP_EPOCHS:g} epoch of warmup", WARMUP)])
        return Finding("update_ratio_high", "alarm" if ratio > UPDATE_HIGH * UPDATE_ALARM else "warn",
                       "Updates too large for the weights", ev, join_or(words), PLOT_GRADS, steps[-1], vals, fixes)
    if ratio < UPDATE_LOW and not early:
        new, why = raised_lr(ctx)  # the same number the flat-loss finding gives
        words, fixes = offer(ctx.config, [
            (f"raise the learning rate to {g(new)}", Fix({"optim.lr": new}, why)) if new
            else ("raise the learning rate", None),
            (f"run {LR_TEST}", None)])
        return Finding("update_ratio_low", "alarm" if ratio < UPDATE_LOW / UPDATE_ALARM else "warn",
                       "Updates too small to change the weights", ev, join_or(words), PLOT_GRADS, steps[-1], vals, fixes)
    return None
