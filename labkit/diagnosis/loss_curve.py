"""The shape of the loss curve: flat from the start (the LR is too low), or a plateau then a sudden drop (bad init).

A flat loss explains a plateau (there is no drop to see) and underfitting
(it never learned enough to fit), whether it is shown or blamed on the init.
"""
from __future__ import annotations

import math

import numpy as np

from .finding import Finding, not_judged
from .fixes import BATCH_NORM, LR_TEST, Fix, init_options, join_or, offer
from .fmt import g
from .ratios import raised_lr, update_window
from .registry import Explains, Needs, finding, is_concern
from .runner import Context
from .thresholds import (FLAT_ALARM, FLAT_DROP, LOW_LOSS, MIN_TREND_STEPS, PLATEAU_BAND, PLATEAU_DROP,
                         PLATEAU_MIN_STEPS, PLOT_CURVES, RATIO_MOVING, RISE_FACTOR, UPDATE_LOW, WARMUP_LR)


def _too_few_steps(ctx: Context) -> Finding:
    return not_judged("loss_trend", "Loss trend: too few steps to judge yet",
                      f"{ctx.run.n} step(s) recorded; a flat or plateaued loss needs at least {MIN_TREND_STEPS}",
                      "let the run go on", PLOT_CURVES)


# a flat loss with tiny updates is one cause with one advice: the update ratio's own finding would repeat it
@finding("loss_trend", codes={"lr_too_low", "not_judged"}, needs=Needs(steps=MIN_TREND_STEPS),
         unjudged=_too_few_steps, explains=[Explains({"bad_init_plateau", "underfitting"}),
                                            Explains({"update_ratio_low"}, when=is_concern)])
def flat(ctx: Context) -> Finding | None:
    """Learning rate too low: the loss fell less than 10% from the start while the weights barely moved."""
    run = ctx.run
    n = run.n
    update_ratio, _ = update_window(ctx)
    w = run.window()
    first, last = float(np.nanmedian(run.loss[:w])), float(np.nanmedian(run.loss[-w:]))
    if not (math.isfinite(first) and math.isfinite(last)) or first <= 0:
        return None
    change = (last - first) / first
    low = LOW_LOSS * run.ln_c if run.ln_c else 0.0
    if not (-FLAT_DROP < change < RISE_FACTOR - 1) or last < low:
        return None
    if update_ratio is not None and update_ratio >= RATIO_MOVING:
        return None  # the weights move at a healthy rate: the LR is not what holds the loss back
    s0, s1 = int(run.step_no[0]), int(run.step_no[-1])
    ev = (f"loss {g(first)} over steps {s0}-{int(run.step_no[min(w, n) - 1])} and {g(last)} over steps "
          f"{int(run.step_no[-w])}-{s1} ({change:+.1%})")
    if run.ln_c:
        ev += f"; chance is ln {run.classes} = {run.ln_c:.3f}"
    ev += f"; LR {g(run.peak_lr)}"
    if update_ratio is not None and math.isfinite(update_ratio):
        ev += f"; median update/weight ratio {update_ratio:.1e} (rule of thumb ~1e-3)"
    new, why = raised_lr(ctx)
    sev = "alarm" if abs(change) < FLAT_ALARM or (update_ratio is not None and update_ratio < UPDATE_LOW) else "warn"
    words, fixes = offer(ctx.config, [
        (f"raise the learning rate to {g(new)}", Fix({"optim.lr": new}, why)) if new else ("raise the learning rate", None),
        (f"run {LR_TEST}", None)])
    return Finding("lr_too_low", sev, "Learning rate too low: the loss is flat from the start", ev, join_or(words),
                   PLOT_CURVES, s1, {"first_loss": first, "last_loss": last, "change": change, "lr": run.peak_lr,
                                     "update_ratio": update_ratio}, fixes)


@finding("plateau", codes={"bad_init_plateau"}, needs=Needs(steps=2 * MIN_TREND_STEPS))
def plateau(ctx: Context) -> Finding | None:
    """A plateau at the initial loss, then a sudden drop (not during warmup): the classic bad-init curve."""
    run = ctx.run
    n = run.n
    w = max(5, n // 40)
    chunks = np.array([np.nanmedian(run.loss[i:i + w]) for i in range(0, n - w + 1, w)])
    l0 = float(chunks[0])
    if not math.isfinite(l0) or l0 <= 0:
        return None
    p = 0
    while p < len(chunks) and abs(chunks[p] - l0) <= PLATEAU_BAND * l0:
        p += 1
    if p < 3 or p * w < PLATEAU_MIN_STEPS or p >= len(chunks):
        return None
    reach = max(2, p // 2)
    after = chunks[p:p + reach + 1]
    hit = np.nonzero(after <= l0 * (1 - PLATEAU_DROP))[0]
    if not hit.size:
        return None
    plateau_lr = np.nanmean(run.lr[: p * w])
    if math.isfinite(plateau_lr) and plateau_lr < WARMUP_LR * run.peak_lr:
        return None  # the LR was still warming up: the plateau is the schedule, not the init
    j = p + int(hit[0])
    s_end, s_drop = int(run.step_no[p * w - 1]), int(run.step_no[min(n - 1, (j + 1) * w - 1)])
    ev = (f"loss stayed within {PLATEAU_BAND:.0%} of {g(l0)} for {p * w} steps (to step {s_end}), then fell to "
          f"{g(float(chunks[j]))} by step {s_drop} ({(chunks[j] - l0) / l0:+.0%})")
    words, fixes = offer(ctx.config, [*init_options(ctx.config), ("add batch norm", BATCH_NORM)])
    sug = "the init is too small or unlucky, so learning waits to break out: " + join_or(words)
    return Finding("bad_init_plateau", "warn", "Plateau, then a sudden drop: a bad initialization", ev, sug,
                   PLOT_CURVES, s_end, {"plateau_loss": l0, "plateau_steps": p * w, "drop_step": s_drop}, fixes)
