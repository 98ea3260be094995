"""Plots of training runs: learning curves, the LR, and what the probes saw inside the network.

Every function is pure: data in (a `labkit.runlog.RunLog`, or what it is
built from: metric rows, a ProbeHistory), `matplotlib.figure.Figure` out (no
pyplot state, nothing shown). The lab's live views call these same functions
on the log they feed, so a live figure and a saved PNG are drawn by one code. Figures are sized for a notebook (10 inches at 100
dpi); missing data (a run without probes, a killed run, a NaN layer) is drawn
as far as it exists and named in the figure's text.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence, Union

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from ..errors import LabkitError
from ..probe_history import ProbeHistory
from ..runlog import RunLog, as_log
from .ensemble import WEIGHTS_LABELS, averaging_figure, snapshot_schedule, weights_marker

WIDTH = 10.0  # inches: notebook width at 100 dpi
RUN_COLORS = colormaps["tab10"].colors
UPDATE_BAND = (3e-4, 3e-3)  # the lectures' rule of thumb: update/weight ratio near 1e-3
EMA_BLOCK = 64  # steps per block of the vectorized EMA



def log_scale(ax, axis: str = "y") -> None:
    """Make an axis logarithmic with its ticks labelled as plain numbers (0.01, 1e-05).

    matplotlib's default log labels are mathtext (10^-2), whose layout is about half of the LR figure's drawing
    time; the live views redraw these figures every few seconds while training runs on the same cores.
    """
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(LogFormatter())
    target.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))

def new_figure(height: float, width: float = WIDTH) -> Figure:
    """A Figure with constrained layout, not attached to pyplot."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def layer_colors(n: int) -> list:
    """Colours for n layers in network order: dark (input side) to light (output side)."""
    cmap = colormaps["viridis"]
    return [cmap(0.05 + 0.85 * i / max(1, n - 1)) for i in range(n)]


def empty_panel(ax, text: str) -> None:
    """Mark an axes as having nothing to show, with the reason."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def spans_decades(values: Any, ratio: float = 30.0) -> bool:
    """True when the positive finite values span more than `ratio` (worth a log axis)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 1 and v.max() / v.min() > ratio


def ema(values: Sequence[float | None], smooth: float) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing); non-finite values are skipped.

    The recurrence acc[t] = smooth * acc[t-1] + (1 - smooth) * v[t] runs on the finite values in blocks of
    EMA_BLOCK: within a block it is one matrix product, between blocks a carry, so a live view's redraw of
    100,000 steps costs milliseconds instead of a Python loop over every step.
    """
    v = np.asarray(values, dtype=float)  # None reads as NaN
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v)
    x = v[ok]
    n = len(x)
    if n == 0:
        return out
    k = np.arange(EMA_BLOCK)
    lag = k[:, None] - k[None, :]
    weights = np.where(lag >= 0, (1 - smooth) * smooth ** np.clip(lag, 0, None), 0.0)  # [t, i]: v[i]'s share in acc[t]
    blocks = np.concatenate([x, np.zeros(-n % EMA_BLOCK)]).reshape(-1, EMA_BLOCK) @ weights.T
    decay = smooth ** (k + 1)  # what the previous block's last acc still weighs at each position
    carry = 0.0
    for b in blocks:
        b += decay * carry
        carry = b[-1]
    out[ok] = blocks.ravel()[:n] / (1 - smooth ** np.arange(1, n + 1))  # divide by the weights' sum
    return out


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)


# -- inputs ------------------------------------------------------------------------------
RunData = Union[RunLog, Sequence[Mapping[str, Any]]]  # a RunLog, or metric rows as metrics.jsonl holds them


def _runs(runs: RunData | Mapping[str, RunData]) -> dict[str, RunLog]:
    """Label -> RunLog snapshot, from one RunLog or a mapping of RunLogs or metric rows."""
    if isinstance(runs, RunLog):
        return {runs.name: runs.snapshot()}
    return {label: as_log(data, name=label) for label, data in runs.items()}


def _history(history: ProbeHistory | RunLog) -> ProbeHistory:
    return history.probes if isinstance(history, RunLog) else history


# -- learning curves --------------------------------------------------------------
def learning_curves(runs: RunData | Mapping[str, RunData], smooth: float = 0.9, run_notes: bool = True,
                    figsize: tuple[float, float] | None = None) -> Figure:
    """Loss and accuracy against epochs for one or more runs (RunLogs, or metric rows by label).

    Steps draw a faint raw line and an EMA-smoothed line (train); epochs draw
    markers (train mean: hollow squares, validation: filled circles; averaged
    weights validated beside the raw ones, EMA and SWA: hollow diamonds and
    triangles on a dotted line, live as they arrive). A star marks the best epoch, whose weights best.pt
    keeps (early stopping stops `patience` epochs after it). The chance level (ln C for the loss, 1/C for accuracy) is dotted when known. A
    run without an end (live, or killed) marks its newest step with a dot, so
    even its first step shows. With run_notes, a run that did not complete (or
    has no end record yet) is named in the title.
    """
    logs = _runs(runs)
    fig = new_figure(*(figsize[::-1] if figsize else (4.4,)))
    ax_loss, ax_acc = fig.subplots(1, 2)
    notes, classes, any_data, best_marked = [], None, False, False
    handles = []
    averaged: dict[str, None] = {}  # names of other evaluated weights drawn, in order
    for k, (label, log) in enumerate(logs.items()):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        steps, epochs = log.steps, log.epochs
        classes = log.classes or classes
        if len(steps):
            any_data = True
            for ax, y in ((ax_loss, steps.loss), (ax_acc, steps.acc)):
                ax.plot(steps.epoch, y, color=color, alpha=0.18, lw=0.8)
                ax.plot(steps.epoch, ema(y, smooth), color=color, lw=1.8)
                if log.end is None:  # a scatter, not a line: the lines are the run's data, this only marks "now"
                    ax.scatter(steps.epoch[-1:], y[-1:], s=14, color=color, zorder=3)
        if epochs:
            any_data = True
            x = log.epoch_positions()  # a partial last epoch (stopped run) where it ended
            for ax, tr, va in ((ax_loss, "train_loss", "val_loss"), (ax_acc, "train_acc", "val_acc")):
                ax.plot(x, log.epoch_values(tr), "s", mfc="white", color=color, ms=5)
                ax.plot(x, log.epoch_values(va), "o--", color=color, ms=5, lw=1.0)
                for w in log.weight_names:  # averaged weights (EMA, SWA) validated beside the raw ones
                    averaged[w] = None
                    ax.plot(x, log.weight_values(w, va), ls=":", marker=weights_marker(w), color=color, ms=6,
                            lw=1.6, mfc="white")
            b = log.best_epoch()
            if b is not None and not log.weight_names:  # best.pt holds these (with averaging: the averaged ones)
                i = [e.epoch for e in epochs].index(b)
                best_marked = True
                for ax, va in ((ax_loss, "val_loss"), (ax_acc, "val_acc")):
                    ax.plot(x[i], log.epoch_values(va)[i], "*", color=color, ms=15, mec="black", mew=0.7, zorder=4)
        handles.append(Line2D([], [], color=color, lw=2, label=label))
        if not run_notes:
            pass
        elif log.end is None:
            total = log.total_steps
            notes.append(f"{label}: no end record after step {log.last_step}" + (f" of {total}" if total else "")
                         + " (still running, or killed)")
        elif log.end.status not in (None, "completed"):
            notes.append(f"{label}: {log.end.status} - {str(log.end.message or '')[:90]}")
    if not any_data:
        for ax in (ax_loss, ax_acc):
            empty_panel(ax, "no steps recorded yet")
    else:
        if classes and classes > 1:
            ax_loss.axhline(math.log(classes), color="0.4", ls=":", lw=1)
            ax_loss.annotate(f"chance: ln {classes} = {math.log(classes):.2f}", (0.99, math.log(classes)),
                             xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8, color="0.3")
            ax_acc.axhline(1 / classes, color="0.4", ls=":", lw=1)
            ax_acc.annotate(f"chance: 1/{classes}", (0.99, 1 / classes), xycoords=("axes fraction", "data"),
                            ha="right", va="bottom", fontsize=8, color="0.3")
        ys = [ln.get_ydata() for ln in ax_loss.get_lines()]
        if ys and spans_decades(np.concatenate([np.asarray(y, dtype=float) for y in ys]), ratio=8):
            log_scale(ax_loss)
        ax_acc.set_ylim(-0.02, 1.02)
        style = [Line2D([], [], color="0.3", lw=1.8, label=f"train, per step (EMA {smooth:g})"),
                 Line2D([], [], color="0.3", marker="s", mfc="white", ls="none", label="train, epoch mean"),
                 Line2D([], [], color="0.3", marker="o", ls="--", label="validation, per epoch")]
        style += [Line2D([], [], color="0.3", marker=weights_marker(w), mfc="white", ls=":", lw=1.6,
                         label=f"validation, {WEIGHTS_LABELS.get(w, w)}") for w in averaged]
        if best_marked:
            style.append(Line2D([], [], color="0.3", marker="*", ms=12, mec="black", mew=0.7, ls="none",
                                label="best epoch (best.pt)"))
        if len(handles) > 1:  # several runs (Compare): below the panels, where it covers no curve
            fig.legend(handles=style + handles, loc="outside lower center", ncol=min(4, len(style) + len(handles)),
                       fontsize=8, frameon=False)
        else:
            ax_acc.legend(handles=style, fontsize=8, loc="lower right")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss (nats)", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (fraction correct)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    title = "Learning curves" + (f": {next(iter(logs))}" if len(logs) == 1 else f" of {len(logs)} runs")
    fig.suptitle(title + ("\n" + "\n".join(notes) if notes else ""), fontsize=11)
    return fig


# -- learning rate ------------------------------------------------------------------
def _lr_lines(name: str, curve: Sequence[float] | RunLog, spe: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, x, y) per line: a schedule is one line; a run is its base rate, or one line per parameter group."""
    if isinstance(curve, RunLog):
        steps = curve.steps
        start = steps.step - 1  # a step's rate is drawn where the step starts: step n ran from n - 1 to n
        x = start / spe if spe else start
        if steps.lrs:
            return [(f"{name}: {group}", x, y) for group, y in steps.lrs.items()]
        return [(name, x, steps.lr)]
    y = np.asarray(curve, dtype=float)
    return [(name, np.arange(len(y)) / spe if spe else np.arange(len(y)), y)]


def lr_curve(curves: RunLog | Mapping[str, Sequence[float] | RunLog], steps_per_epoch: int | None = None,
             plan: Sequence[float] | None = None, figsize: tuple[float, float] | None = None) -> Figure:
    """LR against steps (or epochs when steps_per_epoch is known) for schedules and runs.

    A run (RunLog) draws the rates its optimizer used: one line per parameter
    group when the groups' rates differ, labelled by group. `plan` (the
    schedule's curve) is drawn dashed grey underneath, as the lab previews it.
    A second, log-scale panel is added when the LRs span more than two decades,
    so warmup starts and annealing tails stay readable.
    """
    if isinstance(curves, RunLog):
        curves = {curves.name: curves}
    curves = {k: v.snapshot() if isinstance(v, RunLog) else v for k, v in curves.items()}
    spe = steps_per_epoch or next((v.steps_per_epoch for v in curves.values()
                                   if isinstance(v, RunLog) and v.steps_per_epoch), None)
    lines = [ln for name, c in curves.items() for ln in _lr_lines(name, c, spe) if len(ln[2])]
    if plan is not None and len(plan):
        lines.insert(0, ("planned", *_lr_lines("planned", plan, spe)[0][1:]))
    all_v = np.concatenate([y for _, _, y in lines]) if lines else np.array([])
    log = spans_decades(all_v, ratio=100)
    fig = new_figure(*(figsize[::-1] if figsize else (4.0,)))
    axes = list(fig.subplots(1, 2)) if log else [fig.subplots(1, 1)]
    unit = "epoch" if spe else "step"
    k = 0
    for label, x, y in lines:
        for ax in axes:
            if label == "planned" and plan is not None:
                ax.plot(x, y, lw=1.2, label=label, color="0.6", ls="--")
            else:
                ax.plot(x, y, lw=1.6, label=label, color=RUN_COLORS[k % len(RUN_COLORS)], ls="-" if k % 2 == 0 else "--")
        k += not (label == "planned" and plan is not None)
    if not lines:
        empty_panel(axes[0], "no learning-rate values (the run took no steps)")
    axes[0].set(xlabel=unit, ylabel="learning rate", title="Learning rate" + (" (linear)" if log else ""))
    if log:
        log_scale(axes[1])
        axes[1].set(xlabel=unit, ylabel="learning rate (log scale)", title="Learning rate (log)")
    for ax in axes:
        ax.grid(alpha=0.3)
    handles = axes[0].get_lines()
    # a snapshot ensemble's cycle ends (known from the config from the start, so the live view marks them too)
    marks = sorted({s for c in curves.values() if isinstance(c, RunLog) for s in c.snapshot_steps})
    for ax in axes if marks else ():
        for s in marks:
            ax.axvline(s / spe if spe else s, color="#c1121f", ls=":", lw=1.2)
    if marks:
        handles = [*handles, Line2D([], [], color="#c1121f", ls=":", lw=1.2, label="snapshots")]
    if len(handles) > 1:
        fig.legend(handles=handles, loc="outside right center", fontsize=8)
    elif lines:
        axes[0].set_title(f"{axes[0].get_title()}: {lines[0][0]}", fontsize=10)
    return fig


# -- probes: one snapshot --------------------------------------------------------------
def _grid(n: int, ncols: int = 5) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


def _step_label(history: ProbeHistory, i: int) -> str:
    ep = history.epochs[i]
    return f"step {history.steps[i]}" + (f" (epoch {ep:.2f})" if math.isfinite(ep) else "")


def _draw_hist(ax, counts: np.ndarray, lo: float, hi: float, color, annotate: bool = True) -> None:
    """Bars as fractions of the values; a spike that would flatten the rest is clipped and labelled."""
    total = counts.sum()
    frac = counts / total if total > 0 else counts
    edges = np.linspace(lo, hi, len(counts) + 1)
    ax.stairs(frac, edges, fill=True, color=color, alpha=0.85)
    srt = np.sort(frac)
    if annotate and len(srt) > 2 and srt[-2] > 0 and srt[-1] > 4 * srt[-2]:
        top = srt[-2] * 2.2
        ax.set_ylim(0, top)
        j = int(np.argmax(frac))
        ax.annotate(f"\u2191{frac[j]:.0%}", (edges[j + 1], top * 0.98), ha="left", va="top", fontsize=8, color="C3")
    pad = 0.03 * (hi - lo)  # a little margin so mass piled in an edge bin is not hidden by the frame
    ax.set_xlim(lo - pad, hi + pad)


def activation_histograms(history: ProbeHistory | RunLog, index: int = -1) -> Figure:
    """Per-layer histograms of one probe snapshot, mean and std in each title (the lectures' init slides)."""
    history = _history(history)
    if len(history) == 0 or not history.layers:
        fig = new_figure(3.0)
        empty_panel(fig.subplots(), "no probe snapshots in this run\n(probes off: train with --probe-every 25)")
        fig.suptitle("Activation histograms")
        return fig
    i = index % len(history)
    snap = history.snapshot(i)
    layers = [l for l in history.layers if l in snap] or history.layers
    rows, cols = _grid(len(layers))
    fig = new_figure(1.0 + 2.2 * rows + 2.3)
    top, bottom = fig.subfigures(2, 1, height_ratios=[0.6 + 2.2 * rows, 2.3])
    axes = np.atleast_1d(top.subplots(rows, cols, squeeze=False)).ravel()
    colors = layer_colors(len(history.layers))
    stds = []
    for k, name in enumerate(layers):
        ax = axes[k]
        s = snap.get(name) or {}
        counts = np.asarray([0 if c is None else c for c in s.get("hist") or []], dtype=float)
        lo, hi = _f(s.get("lo")), _f(s.get("hi"))
        mean, std = _f(s.get("mean")), _f(s.get("std"))
        stds.append(std)
        if counts.size == 0 or counts.sum() == 0 or not (math.isfinite(lo) and math.isfinite(hi)):
            empty_panel(ax, "no finite values\n(NaN/inf)")
        else:
            _draw_hist(ax, counts, lo, hi, colors[history.layers.index(name)])
            if math.isfinite(std) and std < (hi - lo) / max(1, counts.size):
                # narrower than one bin: every collapsed layer draws the same spike, so say its scale in words
                ax.text(0.03, 0.95, f"all within\none bin:\nstd {std:.1e}", transform=ax.transAxes, ha="left",
                        va="top", fontsize=8, color="#b2182b")
        ax.set_title(f"{k + 1}. {name} ({s.get('activation', '?')})\nmean {mean:.3g}  std {std:.3g}", fontsize=8)
        extra = []
        if s.get("dead") is not None and math.isfinite(_f(s.get("dead"))):
            extra.append(f"dead {_f(s['dead']):.0%}")
        if s.get("saturated") is not None and math.isfinite(_f(s.get("saturated"))):
            extra.append(f"saturated {_f(s['saturated']):.0%}")
        if extra:
            ax.text(0.97, 0.95, "\n".join(extra), transform=ax.transAxes, ha="right", va="top", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.8", alpha=0.8))
        ax.tick_params(labelsize=8)
        if k % cols == 0:
            ax.set_ylabel("fraction of values", fontsize=9)
        if k >= len(layers) - cols:
            ax.set_xlabel("activation value", fontsize=9)
    for ax in axes[len(layers):]:
        ax.set_visible(False)
    _std_per_layer(bottom.subplots(), stds, [colors[history.layers.index(n)] for n in layers])
    fig.suptitle(f"Activations on the probe batch at {_step_label(history, i)}"
                 "  (values beyond the range are counted in the edge bins)", fontsize=11)
    return fig


def _std_per_layer(ax, stds: Sequence[float], colors: Sequence) -> None:
    """Bars of each layer's std on a log axis: a collapse over decades, which fixed-range histograms flatten."""
    ax.set_label("std per layer")
    x = np.arange(1, len(stds) + 1)
    v = np.asarray(stds, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    if not ok.any():
        empty_panel(ax, "no layer has a positive, finite std")
        return
    floor = 10 ** math.floor(math.log10(v[ok].min()) - 0.5)  # bars rise from below the smallest std
    ax.bar(x[ok], v[ok] - floor, bottom=floor, color=[c for c, o in zip(colors, ok) if o], width=0.7)
    for xi, vi in zip(x[ok], v[ok]):
        ax.text(xi, vi, f"{vi:.2g}", ha="center", va="bottom", fontsize=7.5)
    log_scale(ax)
    ax.set_ylim(floor, v[ok].max() * 4)
    ax.set_xticks(x)
    ax.tick_params(labelsize=8)
    ax.set(xlabel="layer (input to output)", ylabel="std (log scale)")
    ax.set_title("Std of each layer's activations: a fall by decades is a collapse (the histograms' fixed range "
                 "draws every collapsed layer alike)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)


# -- probes: over training ----------------------------------------------------------------
def _layer_legend(fig, axes, names: Sequence[str], colors: Sequence) -> None:
    handles = [Line2D([], [], color=c, lw=2, label=n) for n, c in zip(names, colors)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="layer (input to output)",
               title_fontsize=8)


def _steps_note(history: ProbeHistory) -> str:
    return f"{len(history)} snapshots, steps {history.steps[0]}-{history.steps[-1]}" if len(history) else ""


def _plot_series(ax, x, y, color, label=None, ls="-") -> None:
    ax.plot(x, y, ls, color=color, lw=1.5, label=label, marker="o" if len(x) < 12 else None, ms=3)


def activation_stats(history: ProbeHistory | RunLog) -> Figure:
    """Mean and std of each layer's activations over training, and the fractions of dead and saturated units."""
    history = _history(history)
    fig = new_figure(8.0)
    ax_mean, ax_std, ax_frac = fig.subplots(3, 1, sharex=True)
    if len(history) == 0 or not history.layers:
        for ax in (ax_mean, ax_std, ax_frac):
            empty_panel(ax, "no probe snapshots in this run (probes off: train with --probe-every 25)")
        fig.suptitle("Activation statistics over training")
        return fig
    x = np.asarray(history.steps)
    colors = layer_colors(len(history.layers))
    stds = []
    has_dead = has_sat = False
    for name, c in zip(history.layers, colors):
        _plot_series(ax_mean, x, history.series(name, "mean"), c)
        s = history.series(name, "std")
        stds.append(s)
        _plot_series(ax_std, x, s, c)
        dead, sat = history.series(name, "dead"), history.series(name, "saturated")
        fam = history.activation(name)
        if np.isfinite(sat).any():
            has_sat = True
            _plot_series(ax_frac, x, sat, c, ls="--")
        if np.isfinite(dead).any() and (fam not in ("tanh", "sigmoid") or np.nanmax(dead) > 0):
            has_dead = True
            _plot_series(ax_frac, x, dead, c)
    has_pre = any(np.isfinite(history.series(n, "std", pre=True)).any() for n in history.layers)
    if has_pre:  # recorded with probe.pre_activation: the input of each activation, dotted
        for name, c in zip(history.layers, colors):
            ax_mean.plot(x, history.series(name, "mean", pre=True), ":", color=c, lw=1.2)
            s = history.series(name, "std", pre=True)
            stds.append(s)
            ax_std.plot(x, s, ":", color=c, lw=1.2)
    if spans_decades(np.concatenate(stds), ratio=20):
        log_scale(ax_std)
    ax_mean.axhline(0, color="0.5", lw=0.8)
    ax_mean.set(ylabel="mean activation", title="Mean per layer (0 = zero-centred)")
    ax_std.set(ylabel="std of activations", title="Spread per layer (shrinking to 0 = collapse; flat = healthy)")
    ax_frac.set(xlabel="training step", ylabel="fraction of units", ylim=(-0.03, 1.03),
                title="Dead units (solid; silent on the whole probe batch) and saturated values (dashed)")
    if not (has_dead or has_sat):
        ax_frac.text(0.5, 0.5, "no dead or saturated fractions recorded", ha="center", transform=ax_frac.transAxes,
                     color="0.4")
    for ax in (ax_mean, ax_std, ax_frac):
        ax.grid(alpha=0.3)
    _layer_legend(fig, [ax_mean], history.layers, colors)
    fig.suptitle(f"Activation statistics over training ({_steps_note(history)})"
                 + ("\nsolid: after the activation, dotted: before it" if has_pre else ""), fontsize=11)
    return fig


def activation_heatmap(history: ProbeHistory | RunLog) -> Figure:
    """Histogram of each layer's activations over time, log colour (fastai's "colorful dimension")."""
    history = _history(history)
    if len(history) == 0 or not history.layers:
        fig = new_figure(3.0)
        empty_panel(fig.subplots(), "no probe snapshots in this run\n(probes off: train with --probe-every 25)")
        fig.suptitle("Activation histograms over training")
        return fig
    rows, cols = _grid(len(history.layers), 4)
    fig = new_figure(1.2 + 2.1 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    steps = np.asarray(history.steps, dtype=float)
    # cell edges halfway between snapshots, so an irregular last snapshot gets its own column
    mids = (steps[1:] + steps[:-1]) / 2 if len(steps) > 1 else np.array([])
    first = steps[0] - (mids[0] - steps[0] if len(mids) else 0.5)
    last = steps[-1] + (steps[-1] - mids[-1] if len(mids) else 0.5)
    xedges = np.concatenate([[first], mids, [last]])
    norm = LogNorm(vmin=1e-4, vmax=1.0)
    mesh = None
    for k, name in enumerate(history.layers):
        ax = axes[k]
        h, (lo, hi) = history.hist(name)
        tot = h.sum(axis=1, keepdims=True)
        frac = np.divide(h, tot, out=np.zeros_like(h), where=tot > 0)
        if h.size == 0 or not (math.isfinite(lo) and math.isfinite(hi)):
            empty_panel(ax, "no histogram")
        else:
            yedges = np.linspace(lo, hi, h.shape[1] + 1)
            mesh = ax.pcolormesh(xedges, yedges, np.ma.masked_less_equal(frac.T, 0), norm=norm, cmap="magma",
                                 shading="flat", rasterized=True)
            ax.set_facecolor("black")
        ax.set_title(f"{k + 1}. {name} ({history.activation(name)})", fontsize=9)
        ax.tick_params(labelsize=8)
        if k % cols == 0:
            ax.set_ylabel("activation value", fontsize=9)
        if k >= len(history.layers) - cols:
            ax.set_xlabel("training step", fontsize=9)
    for ax in axes[len(history.layers):]:
        ax.set_visible(False)
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes[:len(history.layers)]), label="fraction of values in bin (log)", shrink=0.9)
    fig.suptitle("Activation histograms over training: bright = many values; a band pinned at 0 = dead or collapsed, "
                 "at the edges = saturated", fontsize=10)
    return fig


def gradient_updates(history: ProbeHistory | RunLog) -> Figure:
    """Gradient norms (weights and activations) and update/weight ratios over training, log scale, 1e-3 band."""
    history = _history(history)
    fig = new_figure(9.0)
    ax_g, ax_a, ax_u = fig.subplots(3, 1, sharex=True)
    if len(history) == 0 or not history.params:
        for ax in (ax_g, ax_a, ax_u):
            empty_panel(ax, "no probe snapshots in this run (probes off: train with --probe-every 25)")
        fig.suptitle("Gradients and updates")
        return fig
    x = np.asarray(history.steps)
    weights = history.weight_params()
    colors = layer_colors(len(weights))
    for p, c in zip(weights, colors):
        _plot_series(ax_g, x, history.param_series(p, "grad_norm"), c, label=p)
        _plot_series(ax_u, x, history.param_series(p, "update_ratio"), c, label=p)
    lc = layer_colors(len(history.layers))
    for name, c in zip(history.layers, lc):
        _plot_series(ax_a, x, history.series(name, "act_grad_norm"), c, label=name)
    for ax, what in ((ax_g, "gradient norm"), (ax_a, "gradient norm"), (ax_u, "update / weight")):
        vals = np.concatenate([ln.get_ydata() for ln in ax.get_lines()]) if ax.get_lines() else np.array([])
        if (np.asarray(vals, dtype=float) > 0).any():
            log_scale(ax)
        else:
            ax.text(0.5, 0.5, f"no positive {what} values recorded", ha="center", transform=ax.transAxes, color="0.4")
        ax.grid(alpha=0.3, which="major")
    ax_u.axhspan(*UPDATE_BAND, color="tab:green", alpha=0.15, lw=0)
    ax_u.axhline(1e-3, color="tab:green", ls="--", lw=1)
    ax_u.annotate("1e-3: rule of thumb", (0.005, 1e-3), xycoords=("axes fraction", "data"), va="bottom",
                  fontsize=8, color="darkgreen")
    ax_g.set(ylabel="||dL/dW|| (log)", title="Weight gradient norm per weight tensor (biases and norm gains omitted)")
    ax_a.set(ylabel="||dL/da|| (log)", title="Gradient norm at each activation's output (the step's training batch)")
    ax_u.set(xlabel="training step", ylabel="||dW|| / ||W|| (log)",
             title="Update / weight ratio of the step taken (green band: 3e-4 to 3e-3)")
    ax_g.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, title="weight tensor", title_fontsize=8)
    ax_a.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, title="layer", title_fontsize=8)
    fig.suptitle(f"Gradients and updates ({_steps_note(history)})", fontsize=11)
    return fig


# -- everything about one run --------------------------------------------------------------
FIGURES = ("learning_curves", "lr", "activations_first", "activations_last", "activation_stats",
           "activation_heatmap", "gradients", "averaging", "snapshot_schedule")


def run_figure(name: str, run: RunData, history: ProbeHistory | None = None, label: str | None = None) -> Figure:
    """One of a run's figures by its `run_figures` name, from a RunLog (or metric rows), live or stored.

    `history` overrides the log's probe snapshots (callers holding rows and a history separately).
    """
    log = run.snapshot() if isinstance(run, RunLog) else RunLog.from_rows(run, name=label)
    label = label or log.name
    h = history if history is not None else log.probes
    if name == "learning_curves":
        return learning_curves({label: log})
    if name == "lr":
        return lr_curve({label: log})
    if name == "averaging":
        return averaging_figure(log)
    if name == "snapshot_schedule":
        return snapshot_schedule(log)
    if name in ("activations_first", "activations_last"):
        return activation_histograms(h, 0 if name == "activations_first" else -1)
    probe_figures = {"activation_stats": activation_stats, "activation_heatmap": activation_heatmap,
                     "gradients": gradient_updates}
    if name in probe_figures:
        return probe_figures[name](h)
    raise LabkitError(f"unknown figure {name!r}; choose one of: {', '.join(FIGURES)}")


def run_figures(run: str | os.PathLike | RunLog) -> dict[str, Figure]:
    """Every figure of a run (its directory or a RunLog), by name; a partial or probe-less run draws what exists
    and says what is missing."""
    log = (run if isinstance(run, RunLog) else RunLog.load(run)).snapshot()
    history = log.probes
    status = log.status
    notes = []
    if log.end is None and status in ("killed", "running"):
        total = log.total_steps
        notes.append(f"run {status} at step {log.last_step}" + (f" of {total}" if total else "")
                     + ": drawing what was recorded")
    if len(history) == 0:
        every = log.config.probe.every if log.config is not None else None
        why = "probes were off (probe.every=0)" if every == 0 else "the run ended before its first probe snapshot"
        notes.append(f"no probe snapshots: {why}; train with --probe-every 25 to see inside the network")
    figs: dict[str, Figure] = {}
    if log.end is not None and log.end.status not in (None, "completed"):
        notes.insert(0, f"{log.end.status}: {str(log.end.message or '')[:100]}")
    lc = learning_curves({log.name: log}, run_notes=False)
    if notes:
        lc.suptitle(lc._suptitle.get_text() + "\n" + "\n".join(notes), fontsize=10)
    figs["learning_curves"] = lc
    names = ["lr"]
    if len(history):
        names += ["activations_first", *(["activations_last"] if len(history) > 1 else []), "activation_stats",
                  "activation_heatmap", "gradients"]
    summary = log.summary
    if any(k in summary for k in ("ema", "swa", "snapshots")):
        names.append("averaging")  # raw vs EMA / SWA / snapshots vs their ensemble
    if log.snapshot_steps:
        names.append("snapshot_schedule")
    figs.update((name, run_figure(name, log, history, log.name)) for name in names)
    return figs
