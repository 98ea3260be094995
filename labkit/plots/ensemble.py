"""Ensembles and weight averaging, drawn: members vs ensemble vs averaged weights, and a snapshot schedule.

Pure functions, data in and `Figure` out, as every labkit plot:

- `ensemble_figure(result)`: each member of `labkit.ensemble.ensemble(...)` (and its EMA, when the run kept
  one), their mean, the best member and the ensemble, as test accuracy on one axis;
- `averaging_figure(log)`: one run's raw weights (best.pt), EMA, SWA, each snapshot and the snapshot ensemble;
- `snapshot_schedule(log)`: the learning rate of a snapshot-ensemble run with each snapshot marked.

The learning curves draw averaged weights' validation live (labkit.plots.training.learning_curves); the
markers of averaged weights are defined here so every figure uses the same ones.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..runlog import RunLog

if TYPE_CHECKING:
    from ..ensemble import EnsembleResult

WEIGHTS_LABELS = {"ema": "EMA (averaged) weights", "swa": "SWA (averaged) weights"}
_MARKERS = ("D", "^", "v", "P", "X", "*")
COLORS = {"member": "0.45", "raw": "#1d3557", "ema": "#e76f51", "swa": "#2a9d8f", "snapshot": "0.45",
          "mean": "0.2", "ensemble": "#c1121f"}


def weights_marker(name: str) -> str:
    """The marker of other evaluated weights (EMA: diamond, SWA: triangle), the same in every figure."""
    fixed = {"ema": "D", "swa": "^"}
    return fixed.get(name, _MARKERS[2 + sum(map(ord, name)) % (len(_MARKERS) - 2)])


def _figure(height: float, width: float = 10.0) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.subplots()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None and math.isfinite(v) else math.nan


# a row of the dot plot: (label, accuracy, kind) where kind picks the marker and colour
Row = tuple[str, float, str]
_STYLE = {"member": ("o", True), "snapshot": ("o", True), "raw": ("s", True), "ema": ("D", False),
          "swa": ("^", False), "mean": ("o", False), "ensemble": ("*", True)}  # averaged weights hollow, as in the curves


def accuracy_dots(rows: Sequence[Row], title: str, xlabel: str = "test accuracy (%)",
                  extra: Sequence[tuple[int, float, str]] = ()) -> Figure:
    """A dot plot of accuracies, one row each, top to bottom, with the value printed beside each dot.

    `extra` adds markers to existing rows: (row index, accuracy, kind), e.g. a member's EMA beside it. The axis
    spans the values, not 0-100%: ensembles and averages move accuracy by a point or two, which a bar from zero
    would hide; the values printed beside the dots keep the scale honest.
    """
    rows = [r for r in rows if math.isfinite(r[1])]
    if not rows:
        return _empty(_figure(2.5), "no accuracies to draw (the runs were not tested: train.test was off?)")
    fig = _figure(1.6 + (0.5 if extra else 0.38) * len(rows))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    shared = {i for i, acc, _ in extra if math.isfinite(acc)}  # rows with a second marker: values above and below
    for i, (yi, (label, acc, kind)) in enumerate(zip(y, rows)):
        marker, filled = _STYLE.get(kind, ("o", True))
        color = COLORS.get(kind, "0.3")
        ax.plot([100 * acc], [yi], marker=marker, ms=14 if kind == "ensemble" else 9, color=color,
                mfc=color if filled else "white", mew=1.6, ls="none", zorder=3)
        where = dict(xytext=(0, -8), va="top", ha="center") if i in shared else dict(xytext=(9, 0), va="center")
        ax.annotate(f"{100 * acc:.2f}", (100 * acc, yi), textcoords="offset points", fontsize=9 if i not in shared
                    else 8, color=color, fontweight="bold" if kind == "ensemble" else "normal", **where)
    for i, acc, kind in extra:
        if 0 <= i < len(rows) and math.isfinite(acc):
            marker, _ = _STYLE.get(kind, ("D", True))
            ax.plot([100 * acc], [y[i]], marker=marker, ms=8, color=COLORS.get(kind, "0.3"), mfc="white", mew=1.6,
                    ls="none", zorder=3)
            ax.annotate(f"{100 * acc:.2f}", (100 * acc, y[i]), xytext=(0, 7), textcoords="offset points",
                        va="bottom", ha="center", fontsize=8, color=COLORS.get(kind, "0.3"))
    means = [acc for _, acc, kind in rows if kind == "mean"]
    if means:
        ax.axvline(100 * means[0], color=COLORS["mean"], ls="--", lw=1, zorder=1)
    values = [100 * a for _, a, _ in rows] + [100 * a for _, a, _ in extra if math.isfinite(a)]
    lo, hi = min(values), max(values)
    pad = max(0.6, 0.18 * (hi - lo))
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks(y, [label for label, _, _ in rows], fontsize=9)
    ax.set_ylim(y.min() - 0.6, y.max() + 0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(xlabel)
    kinds = {kind for _, _, kind in rows} | {kind for _, _, kind in extra}
    legend = [Line2D([], [], marker=_STYLE[k][0], color=COLORS[k], mfc=COLORS[k] if _STYLE[k][1] else "white",
                     ls="none", label=lab) for k, lab in
              (("raw", "raw weights (best.pt)"), ("member", "a model alone"), ("ema", "EMA weights"),
               ("swa", "SWA weights"), ("mean", "mean of the models"), ("ensemble", "ensemble (softmax averaged)"))
              if k in kinds or (k == "member" and "snapshot" in kinds)]
    fig.legend(handles=legend, fontsize=8, loc="outside lower center", ncol=len(legend), frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def _result_dict(result: "EnsembleResult | Mapping[str, Any]") -> Mapping[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else result


def ensemble_figure(result: "EnsembleResult | Mapping[str, Any]") -> Figure:
    """Members vs their mean vs the ensemble (and each member's EMA where its run kept one): test accuracy."""
    r = _result_dict(result)
    members = r["members"]
    rows: list[Row] = []
    extra: list[tuple[int, float, str]] = []
    for i, m in enumerate(members):
        rows.append((f"{i + 1}: {_short(m['id'])}", _num(m["acc"]), "member"))
        ema = _num((m.get("recorded") or {}).get("ema_test_acc"))
        if r.get("weights") == "best" and math.isfinite(ema):
            extra.append((i, ema, "ema"))
    rows.append((f"mean of {len(members)}", _num(r["mean_acc"]), "mean"))
    rows.append(("ensemble", _num(r["ensemble_acc"]), "ensemble"))
    gain = 100 * (_num(r["ensemble_acc"]) - _num(r["mean_acc"]))
    best = 100 * (_num(r["ensemble_acc"]) - _num(r["best_acc"]))
    title = (f"Ensemble of {len(members)} runs ({r['weights']} weights) on the {r['dataset']} test set "
             f"({r['images']:,} examples)\nensemble {gain:+.2f} points over the members' mean, {best:+.2f} over the "
             "best member")
    return accuracy_dots(rows, title, extra=extra)


def _short(run_id: str, n: int = 46) -> str:
    return run_id if len(run_id) <= n else "..." + run_id[-(n - 3):]


def averaging_rows(summary: Mapping[str, Any]) -> tuple[list[Row], str]:
    """One run's accuracies by weights: raw (best.pt), EMA, SWA, each snapshot, the snapshot ensemble; and the split."""
    final = summary.get("final") or {}
    split = "test" if final.get("test_acc") is not None else "val"
    rows: list[Row] = [("raw weights (best.pt)", _num(final.get(f"{split}_acc")), "raw")]
    for name, kind in (("ema", "ema"), ("swa", "swa")):
        if name in summary:
            acc = final.get(f"{name}_test_acc") if split == "test" else (summary[name] or {}).get("val_acc")
            info = summary[name] or {}
            what = (f"EMA, decay {info.get('decay', 0):g}" if name == "ema" else
                    f"SWA from epoch {info.get('start_epoch', 0):g}, {info.get('updates', 0)} averaged")
            rows.append((what, _num(acc), kind))
    snaps = summary.get("snapshots") or {}
    members = snaps.get("members") or []
    if members:
        for m in members:
            rows.append((f"snapshot {m.get('cycle')} (epoch {m.get('epoch', 0):.3g})", _num(m.get(f"{split}_acc")),
                         "snapshot"))
        rows.append((f"mean of {len(members)} snapshots", _num(snaps.get(f"mean_{split}_acc")), "mean"))
        rows.append((f"snapshot ensemble ({len(members)})", _num(snaps.get(f"ensemble_{split}_acc")), "ensemble"))
    return rows, split


def averaging_figure(log: RunLog) -> Figure:
    """One run's weights side by side: raw best.pt, EMA, SWA, each snapshot and the snapshot ensemble."""
    log = log.snapshot()
    summary = log.summary
    rows, split = averaging_rows(summary)
    if len(rows) < 2:
        return _empty(_figure(2.5), "this run kept no averaged weights or snapshots; train with --ema 0.999, "
                                    "--swa-start EPOCH or --snapshots 3")
    names = {"ema": "EMA", "swa": "SWA", "snapshots": "snapshots"}
    title = f"Raw weights vs {' vs '.join(n for k, n in names.items() if k in summary)}: {log.name}"
    return accuracy_dots(rows, title, xlabel=f"{split} accuracy (%)")


def snapshot_schedule(log: RunLog, plan: Sequence[float] | None = None) -> Figure:
    """The learning rate of a snapshot-ensemble run (as used, else `plan`) with each cycle's snapshot marked."""
    log = log.snapshot()
    fig = _figure(3.8)
    ax = fig.subplots()
    steps, spe = log.steps, log.steps_per_epoch or 1
    ends = log.snapshot_steps
    if len(steps):
        ax.plot((steps.step - 1) / spe, steps.lr, color=COLORS["raw"], lw=1.6, label="learning rate used")
    if plan is not None and len(plan):
        ax.plot(np.arange(len(plan)) / spe, plan, color="0.6", ls="--", lw=1.2, label="planned", zorder=1)
    if not len(steps) and (plan is None or not len(plan)):
        ax.text(0.5, 0.5, "no learning-rate values yet", ha="center", va="center", transform=ax.transAxes)
    members = {m.get("step"): m for m in ((log.summary.get("snapshots") or {}).get("members") or [])}
    for k, s in enumerate(ends, 1):
        ax.axvline(s / spe, color=COLORS["ensemble"], lw=1.2, ls=":")
        m = members.get(s) or {}
        acc = _num(m.get("test_acc", m.get("val_acc")))
        text = f"snapshot {k}" + (f"\n{100 * acc:.1f}%" if math.isfinite(acc) else "")
        ax.annotate(text, (s / spe, 1.0), xycoords=("data", "axes fraction"), xytext=(-4, -4),
                    textcoords="offset points", ha="right", va="top", fontsize=8, color=COLORS["ensemble"])
    ax.set(xlabel="epoch", ylabel="learning rate")
    ax.grid(alpha=0.3)
    if ends:
        ax.plot([], [], color=COLORS["ensemble"], ls=":", label="snapshot saved (cycle end)")
    ax.legend(fontsize=8, loc="center right")
    snaps = log.summary.get("snapshots") or {}
    ens = _num(snaps.get("ensemble_test_acc", snaps.get("ensemble_val_acc")))
    title = f"Snapshot schedule: {len(ends)} cosine cycles" if ends else "Learning rate (no snapshot ensemble)"
    if math.isfinite(ens):
        title += f"; ensemble of the snapshots {100 * ens:.1f}%"
    fig.suptitle(f"{title}\n{log.name}", fontsize=11)
    return fig
