"""The median update/weight ratio ||dW|| / ||W|| from the probes, shared by the checks that read it.

The update-ratio check judges it against the lectures' ~1e-3; the loss-trend
check reads it to tell a too-low LR (weights barely move) from a flat loss
with healthy steps. Computed once per diagnosis (Context.cache).
"""
from __future__ import annotations

import math

import numpy as np

from ..probe_history import ProbeHistory
from .divergence import blew_up
from .rows import RunRows
from .runner import Context
from .fmt import nice
from .thresholds import RAISE_MAX, RAISE_MIN, RAISE_NO_PROBES, RECENT, UPDATE_TARGET, WARMUP_LR


def _update_window(run: RunRows, h: ProbeHistory, early: bool) -> tuple[float | None, list[int]]:
    """Median over weight tensors, then over the window, of the update/weight ratio; and the window's steps."""
    weights = h.weight_params()
    if not weights:
        return None, []
    ur = np.array([h.param_series(p, "update_ratio") for p in weights])  # (weights, snapshots)
    ok = np.isfinite(ur).any(axis=0)
    idx = [i for i in range(len(h)) if ok[i]]
    if len(idx) > 1:
        idx = [i for i in idx if h.steps[i] > 0] or idx  # step 0 of Adam moves every weight by ~lr: not typical
    if not idx:
        return None, []
    if early:
        idx = idx[:RECENT]
    else:
        lrs = np.array([run.lr_at(h.steps[i]) for i in idx])
        if np.isfinite(lrs).any():
            near = [i for i, lr in zip(idx, lrs) if math.isfinite(lr) and lr >= WARMUP_LR * np.nanmax(lrs)]
            idx = near or idx
        idx = idx[-RECENT:]
    meds = [float(np.nanmedian(ur[:, i])) for i in idx]
    return float(np.median(meds)), [h.steps[i] for i in idx]


def update_window(ctx: Context) -> tuple[float | None, list[int]]:
    """(median update/weight ratio, the steps it is read at); (None, []) without probes.

    After a blow-up the window is the first snapshots (what led to it), else the latest ones near the peak LR.
    """
    if "update_window" not in ctx.cache:
        ctx.cache["update_window"] = (_update_window(ctx.run, ctx.probes, early=blew_up(ctx))
                                      if ctx.probes is not None else (None, []))
    return ctx.cache["update_window"]


def window_lr(ctx: Context) -> float:
    """The median LR at the steps the update ratio is read at (the peak LR when unknown)."""
    _, steps = update_window(ctx)
    lrs = [ctx.run.lr_at(s) for s in steps]
    return float(np.nanmedian(lrs)) if np.isfinite(lrs).any() else ctx.run.peak_lr


def raised_lr(ctx: Context) -> tuple[float | None, str]:
    """The LR that brings the update/weight ratio toward 1e-3, and why: one number for every finding that raises it.

    The ratio scales with the LR, so the LR it was measured at times 1e-3 / ratio (at least 10x, at most 1e4x:
    a ratio read off frozen weights says "much more", not exactly how much); 100x without probes.
    """
    ratio, _ = update_window(ctx)
    lr = window_lr(ctx)
    if not (math.isfinite(lr) and lr > 0):
        return None, ""
    if ratio is not None and math.isfinite(ratio) and ratio > 0:
        factor = float(np.clip(UPDATE_TARGET / ratio, RAISE_MIN, RAISE_MAX))
        why = f"brings the update/weight ratio toward {UPDATE_TARGET:g}"
    else:
        factor, why = RAISE_NO_PROBES, "a flat loss needs a step about 100x larger"
    return nice(lr * factor), why
