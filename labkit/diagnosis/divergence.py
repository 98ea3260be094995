"""The loss blew up (NaN, infinite, 10,000x) or rises instead of falling: the learning rate is too high.

A blow-up explains every other finding but too-large updates (which name the
same cause): after the loss explodes, the gap, dead units, saturation and
update ratios would read meaningless values, so they are not computed.
"""
from __future__ import annotations

import math

import numpy as np

from .finding import Finding, not_judged
from .fixes import BATCH_NORM, CLIP, LR_TEST, WARMUP, Fix, join_or, lower_lr, offer
from .fmt import g
from .registry import ALL, Explains, finding
from .runner import Context
from .thresholds import EXPLODE_FACTOR, GRAD_CLIP, PLOT_CURVES, RISE_FACTOR, WARMUP_EPOCHS

BLOWUP = ("diverged", "lr_too_high")


def blew_up(ctx: Context) -> bool:
    """True when the run diverged or its loss rose (the checks after this one read it)."""
    return ctx.has(*BLOWUP)


def calm_down(ctx: Context) -> tuple[str, list[Fix]]:
    """What to try after a blow-up: a tenth of the LR, warmup, clipping or batch norm (words, fixes)."""
    words, fixes = offer(ctx.config, [
        lower_lr(ctx.run.peak_lr), (f"add {WARMUP_EPOCHS:g} epoch of warmup", WARMUP),
        (f"clip the gradient norm at {GRAD_CLIP:g}", CLIP), ("add batch norm", BATCH_NORM)])
    return join_or(words) + f"; {LR_TEST} finds a rate that does not blow up", fixes


@finding("divergence", codes={*BLOWUP, "not_judged"}, explains=[Explains({ALL}, but={"update_ratio_high"})])
def divergence(ctx: Context) -> list[Finding]:
    """Diverged (NaN, inf, or the loop's 10,000x stop) and lr_too_high (the loss rises or spikes 10x)."""
    run = ctx.run
    out: list[Finding] = []
    loss, n = run.loss, run.n
    lr_txt = g(run.peak_lr)
    sug, fixes = calm_down(ctx)
    bad = ~np.isfinite(loss)
    if run.status == "diverged" or bad.any():
        ok = loss[np.isfinite(loss)]
        where = int(run.step_no[int(np.argmax(bad))]) if bad.any() else (int(run.step_no[-1]) + 1 if n else 0)
        msg = str((run.end or {}).get("message") or f"loss became nan at step {where}")
        ev = msg.split(";")[0]
        if ok.size:
            ev += f"; the loss was {g(float(ok[0]))} at step {int(run.step_no[0])} and {g(float(ok[-1]))} " \
                  f"at step {int(run.step_no[np.isfinite(loss)][-1])} (max {g(float(ok.max()))}); peak LR {lr_txt}"
        out.append(Finding("diverged", "alarm",
                           "Training diverged: the loss blew up (NaN, infinite, or 10,000x where it started)",
                           ev, sug, PLOT_CURVES, where,
                           {"peak_lr": run.peak_lr, "last_finite_loss": float(ok[-1]) if ok.size else None}, list(fixes)))
    # a run the loop stopped for divergence is judged on its few steps too: lr 10 blows up within 5 steps
    if n >= 10 or (run.status == "diverged" and n >= 3):
        w = run.window()
        init = float(loss[0]) if math.isfinite(loss[0]) else math.nan
        chunks = [np.nanmedian(loss[i:i + w]) for i in range(0, n - w + 1, w)] if n >= w else []
        last = float(np.nanmedian(loss[-w:])) if np.isfinite(loss[-w:]).any() else math.nan
        peak = float(np.nanmax(chunks)) if chunks and np.isfinite(chunks).any() else math.nan
        if math.isfinite(init) and init > 0 and (last > RISE_FACTOR * init or peak > EXPLODE_FACTOR * init):
            k = int(np.nanargmax(chunks)) if chunks else 0
            ev = (f"loss {g(init)} at step {int(run.step_no[0])}, median {g(last)} over the last {w} steps "
                  f"(x{g(last / init, 2)}), peak median {g(peak)} around step {int(run.step_no[min(n - 1, k * w)])}; "
                  f"peak LR {lr_txt}")
            out.append(Finding("lr_too_high", "alarm", "Learning rate too high: the loss rises instead of falling", ev,
                               sug, PLOT_CURVES, int(run.step_no[-1]),
                               {"initial_loss": init, "last_loss": last, "peak_loss": peak, "peak_lr": run.peak_lr},
                               list(fixes)))
    if out:
        out.append(not_judged("after_divergence", "Other checks skipped: the run blew up",
                              "after the loss explodes, the gap, dead units, saturation and update ratios read "
                              "meaningless values", "fix the learning rate first, then diagnose the new run"))
    return out
