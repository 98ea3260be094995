"""Plots of the babysitting tools: the LR range test and the pre-training checks.

Pure functions: data in, `matplotlib.figure.Figure` out (no pyplot state).
"""
from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .training import empty_panel, new_figure

if TYPE_CHECKING:
    from ..babysit.checks import CheckReport
    from ..babysit.lr_finder import LRFinderResult

PASS_COLOR, FAIL_COLOR = "#2a7d2a", "#c0392b"
STEEP_COLOR, MIN_COLOR, CONFIG_COLOR, EDGE_COLOR = "#1f77b4", "#d62728", "0.45", "#e07b00"
RUNS_COLOR = "#7b3fa0"


def lr_range_plot(result: "LRFinderResult") -> Figure:
    """Loss (raw and smoothed) against the LR on a log axis: the curve's minimum, its floor's end, the suggestion
    (or why there is none) and the stop point marked; beside it, when short runs picked the suggestion, each
    run's validation loss against its LR."""
    fig = new_figure(4.6)
    if result.trials:
        ax, ax_runs = fig.subplots(1, 2, width_ratios=[2.4, 1])
        _short_runs_panel(ax_runs, result)
    else:
        ax = fig.add_subplot()
    lrs = np.asarray(result.lrs, dtype=float)
    raw = np.asarray(result.losses, dtype=float)
    sm = np.asarray(result.smoothed, dtype=float)
    centred = np.asarray(result.centred, dtype=float)
    if len(lrs) == 0:
        empty_panel(ax, f"the LR range test recorded no step ({result.reason})")
        return fig
    ax.plot(lrs, raw, color="0.6", lw=0.9, alpha=0.8, label="loss (each step)")
    ax.plot(lrs, sm, color="0.35", lw=1.0, ls=":", label="EMA (lags; what the stop rule watches)")
    if len(centred):
        ax.plot(lrs[:len(centred)], centred, color="black", lw=2.0, label="smoothed loss (centred, no lag)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    # the divergent tail and single-batch spikes would squash the curve; keep the smoothed curve in view
    curve = centred if len(centred) == len(lrs) else sm  # the curve the suggestion reads
    finite = curve[np.isfinite(curve)]
    lo = float(np.nanmin(np.where(np.isfinite(raw), raw, np.nan))) if np.isfinite(raw).any() else float(finite.min())
    # top: the start of the curve plus room, not the divergent tail (which would squash the useful part)
    if finite.size:
        first, low = float(finite[0]), float(finite.min())
        top = min(float(finite.max()), max(first, low + 2.5 * (first - low)))
        if result.suggestion() is None and np.isfinite(raw).any():  # a flat curve: show its noise, not a sliver
            top = max(top, float(np.percentile(raw[np.isfinite(raw)], 95)))
    else:
        top = 1.0
    span = max(top - lo, 1e-3)
    ax.set_ylim(max(0.0, lo - 0.05 * span), top + 0.15 * span)
    ax.set_xlim(result.start, result.end)
    if max(raw[np.isfinite(raw)].max(), finite.max() if finite.size else 0) > top + 0.15 * span:
        ax.text(0.01, 0.98, "losses above the top are clipped", transform=ax.transAxes, va="top", fontsize=8,
                color="0.4")

    def mark(lr: float | None, color: str, label: str, style: str = "--") -> None:
        if lr is None:
            return
        ax.axvline(lr, color=color, ls=style, lw=1.4, label=f"{label}: {lr:.3g}")

    mark(result.steepest_lr, STEEP_COLOR, "steepest descent")
    mark(result.minimum_lr, "0.3", "minimum")
    mark(result.edge_lr, EDGE_COLOR, "floor ends")
    if result.config_lr:
        mark(result.config_lr, CONFIG_COLOR, "config lr", ":")
    s = result.suggestion()
    on_curve = lambda lr: float(np.interp(math.log(lr), np.log(lrs), np.where(np.isfinite(curve), curve, top)))  # noqa: E731
    if result.trials:
        tried = [t["lr"] for t in result.trials]
        ax.plot(tried, [on_curve(lr) for lr in tried], ls="none", marker="v", ms=7, color=RUNS_COLOR, zorder=4,
                clip_on=False, label=f"short runs ({len(tried)}): lr {min(tried):.3g}-{max(tried):.3g}")
    if s is not None:
        y = on_curve(s)
        ax.plot([s], [y], marker="o", ms=8, color=MIN_COLOR, zorder=5, label=f"suggested: {s:.3g}")
        # in the right part of the axes the label goes below-left, clear of the floor's end and the curve's rise
        right = math.log(s / result.start) > 0.6 * math.log(result.end / result.start)
        ax.annotate(f"suggested lr {s:.3g}\n({result.how()})", (s, y), xytext=(-12, -30) if right else (8, 10),
                    textcoords="offset points", ha="right" if right else "left", va="top" if right else "baseline",
                    fontsize=9, fontweight="bold")
    elif result.why_none:
        ax.text(0.5, 0.5, "no usable suggestion:\n" + textwrap.fill(result.why_none.split(":")[0], 60),
                transform=ax.transAxes, ha="center", va="center", fontsize=10, color=MIN_COLOR,
                bbox=dict(boxstyle="round,pad=0.4", fc="white", ec=MIN_COLOR, alpha=0.9))
    if result.stopped_early and result.stop_lr is not None:
        ystop = float(sm[-1]) if np.isfinite(sm[-1]) and lrs[-1] == result.stop_lr else top
        ax.plot([result.stop_lr], [min(ystop, top + 0.1 * span)], marker="X", ms=10, color="black", ls="none",
                label=f"stopped at lr {result.stop_lr:.3g}", clip_on=False, zorder=6)
    title = f"LR range test: {len(lrs)} of {result.iters} steps, lr {result.start:.0e} to {result.end:g}"
    ax.set_title(title + ("" if not result.stopped_early else " (stopped early)"), loc="left")
    ax.grid(True, which="major", alpha=0.3)
    # below the axes: inside, it hid the stop marker or the curve whichever corner it took
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def _short_runs_panel(ax, result: "LRFinderResult") -> None:
    """The short runs that picked the suggestion: each one's score (validation loss) against its LR."""
    done = [t for t in result.trials if t["status"] == "completed"]
    failed = [t for t in result.trials if t["status"] != "completed"]
    metric = result.score_name()
    if done:
        xs, ys = [t["lr"] for t in done], [t["score"] for t in done]
        order = np.argsort(xs)
        ax.plot(np.asarray(xs)[order], np.asarray(ys)[order], marker="v", ms=7, color=RUNS_COLOR, lw=1.2)
        s = result.suggestion()
        if s is not None:
            ax.plot([s], [min(ys)], marker="o", ms=9, color=MIN_COLOR, zorder=5)
            ax.annotate(f"best: {s:.3g}", (s, min(ys)), xytext=(0, 10), textcoords="offset points", ha="center",
                        fontsize=9, fontweight="bold")
        lo, hi = min(ys), max(ys)
        pad = max(hi - lo, 1e-3)
        ax.set_ylim(lo - 0.15 * pad, hi + 0.35 * pad)
    for t in failed:
        ax.axvline(t["lr"], color=FAIL_COLOR, ls=":", lw=1.2)
        ax.text(t["lr"], 0.02, " diverged", rotation=90, transform=ax.get_xaxis_transform(), fontsize=8,
                color=FAIL_COLOR, va="bottom")
    lrs = [t["lr"] for t in result.trials]
    ax.set_xscale("log")
    ax.set_xlim(min(lrs) / 1.6, max(lrs) * 1.6)
    ax.minorticks_off()  # the tried rates are the ticks: log minor labels (3x10^-2 ...) overprinted each other
    ax.set_xticks(lrs, [f"{lr:.3g}" for lr in lrs], fontsize=8)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"{metric} after the short run")
    ax.set_title(f"{len(lrs)} short runs, {result.trials[0]['steps']} steps each", loc="left", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def checks_figure(report: "CheckReport") -> Figure:
    """Initial loss (and with regularization) against ln C and its pass band; the overfit-20 loss and accuracy."""
    fig = new_figure(4.2)
    ax_init, ax_fit = fig.subplots(1, 2, width_ratios=[1, 1.6])
    by_name = {c.name: c for c in report.checks}
    init = by_name.get("initial loss")
    reg = by_name.get("regularization")
    if init is None:
        empty_panel(ax_init, "no initial-loss check in this report")
    else:
        v = init.values
        bars = [("at init", v["loss"], PASS_COLOR if init.passed else FAIL_COLOR)]
        if reg is not None:
            bars.append(("+ regularization", reg.values["loss_regularized"], PASS_COLOR if reg.passed else FAIL_COLOR))
        xs = np.arange(len(bars))
        ax_init.bar(xs, [b[1] for b in bars], color=[b[2] for b in bars], width=0.6)
        for i, (x, (_, h, _)) in enumerate(zip(xs, bars)):
            extra = f" ({reg.values['raised_by']:+.2g})" if i == 1 and reg is not None else ""
            ax_init.text(x, h, f"{h:.3g}{extra}", ha="center", va="bottom", fontsize=9)
        ax_init.axhline(v["ln_c"], color="black", lw=1.5, label=f"ln C = ln {int(v['classes'])} = {v['ln_c']:.3f}")
        ax_init.axhspan(v["band_low"], v["band_high"], color=PASS_COLOR, alpha=0.08,
                        label=f"pass band {v['band_low']:.2g}-{v['band_high']:.2g}")
        if max(b[1] for b in bars) > 10 * v["band_high"]:
            ax_init.set_yscale("log")
        else:
            ax_init.set_ylim(0, max(v["band_high"], max(b[1] for b in bars)) * 1.12)
        ax_init.set_xticks(xs, [b[0] for b in bars])
        ax_init.set_ylabel("cross-entropy loss")
        ax_init.set_title(f"initial loss: {'PASS' if init.passed else 'FAIL'} ({v['excess']:+.2f} nats from ln C)", loc="left",
                          color=PASS_COLOR if init.passed else FAIL_COLOR)
        ax_init.legend(fontsize=8, loc="upper left")
    fit = next((c for c in report.checks if c.name.startswith("overfit")), None)
    if fit is None or not fit.curves.get("loss"):
        empty_panel(ax_fit, "no overfit check in this report")
        return fig
    loss = np.asarray(fit.curves["loss"], dtype=float)
    acc = np.asarray(fit.curves["accuracy"], dtype=float)
    steps = np.arange(len(loss))
    color = PASS_COLOR if fit.passed else FAIL_COLOR
    ax_fit.plot(steps, loss, color="black", lw=1.6, label="training loss")
    ax_fit.set_xlabel("step (full batch)")
    ax_fit.set_ylabel("training loss")
    if len(loss) > 1 and np.isfinite(loss).all() and loss.min() > 0 and loss.max() / loss.min() > 30:
        ax_fit.set_yscale("log")
    ax_acc = ax_fit.twinx()
    ax_acc.plot(steps, 100 * acc, color=color, lw=1.6, label="training accuracy")
    ax_acc.axhline(100, color=color, lw=0.8, ls=":")
    ax_acc.set_ylim(0, 105)
    ax_acc.set_ylabel("training accuracy (%)", color=color)
    n = int(fit.values["images"])
    if fit.passed:
        k = int(fit.values["steps_to_100"])
        ax_acc.annotate(f"100% after {k} steps", (k, 100), xytext=(-20, -45), textcoords="offset points",
                        ha="right", fontsize=9, arrowprops=dict(arrowstyle="->", color=color),
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.9))
    ax_fit.set_title(f"overfit {n} images: {'PASS' if fit.passed else 'FAIL'} (lr {fit.values['lr']:g}, "
                     f"regularization off)", loc="left", color=color)
    lines = ax_fit.get_legend_handles_labels()[0] + ax_acc.get_legend_handles_labels()[0]
    ax_fit.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="center right")
    ax_fit.grid(True, alpha=0.3)
    return fig
