"""Plots of hyperparameter searches: pure functions, data in, matplotlib Figure out.

Trial rows are plain dicts {"number", "value", "params", "status"} (labkit.search.trial_rows);
parameters are labkit.search.space.Param (for ranges and log axes).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

from ..search.space import Param, Space
from .training import ema

CMAP = "viridis"
SAMPLER_COLOURS = {"grid": "#d62728", "random": "#1f77b4", "tpe": "#2ca02c"}


def _scored(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r.get("value") is not None]


def _failed(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r.get("value") is None and r.get("status") in ("diverged", "failed")]


def _set_scale(ax: Any, p: Param, axis: str = "x") -> None:
    if p.is_range:
        lo, hi = float(p.low), float(p.high)
        if p.log:
            (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
            pad = (hi / lo) ** 0.03
            (ax.set_xlim if axis == "x" else ax.set_ylim)(lo / pad, hi * pad)
        else:
            pad = 0.03 * (hi - lo)
            (ax.set_xlim if axis == "x" else ax.set_ylim)(lo - pad, hi + pad)


def _choice_pos(p: Param, v: Any) -> float:
    return float(list(p.choices).index(v)) if v in p.choices else float("nan")


def _coord(p: Param, v: Any) -> float:
    return _choice_pos(p, v) if p.kind == "choice" else float(v)


def sampler_planes(panels: dict[str, Sequence[dict]], x: Param, y: Param, *,
                   curves: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                   score: str = "val_acc", ranked: bool = True,
                   bands: dict[str, tuple[str, Sequence[tuple[float, float]]]] | None = None,
                   note: str | None = None) -> Figure:
    """Trials in the plane of an important (x) and an unimportant (y) parameter, one panel per search,
    with the score marginal along each axis (Bergstra & Bengio 2012, figure 1).

    curves: optional true marginals {"x": (xs, g(xs)), "y": (ys, h(ys))} drawn in grey.
    ranked=False: the scores cannot tell the parameters apart (a search too small to mean anything), so the
    axes are not labelled important / unimportant.
    bands: optional {panel: (label, [(lo, hi), ...])} x-intervals shaded in that panel's top marginal (the demo
    marks where the grid would have won); note: a caption under the panels.
    """
    n = len(panels)
    fig = Figure(figsize=(5.4 * n, 5.6), layout="constrained")
    gs = fig.add_gridspec(2, 2 * n, width_ratios=[4, 1.3] * n, height_ratios=[1.4, 4])
    allv = [r["value"] for rows in panels.values() for r in _scored(rows)]
    norm = mcolors.Normalize(min(allv), max(allv)) if allv else None
    vmin = min(allv) if allv else 0.0
    vmax = max(allv) if allv else 1.0
    if curves:  # the true marginals' peaks stay in view, found or not
        vmax = max([vmax] + [float(np.max(c[1])) for c in curves.values() if len(c[1])])
    margin = 0.08 * (vmax - vmin or 1.0)
    for i, (label, rows) in enumerate(panels.items()):
        main = fig.add_subplot(gs[1, 2 * i])
        top = fig.add_subplot(gs[0, 2 * i], sharex=main)
        right = fig.add_subplot(gs[1, 2 * i + 1], sharey=main)
        pts = [r for r in _scored(rows) if x.path in r["params"] and y.path in r["params"]]
        xs = np.array([_coord(x, r["params"][x.path]) for r in pts])
        ys = np.array([_coord(y, r["params"][y.path]) for r in pts])
        vs = np.array([r["value"] for r in pts])
        sc = main.scatter(xs, ys, c=vs, cmap=CMAP, norm=norm, s=46, edgecolors="k", linewidths=0.5, zorder=3)
        bad = [r for r in _failed(rows) if x.path in r["params"] and y.path in r["params"]]
        if bad:
            main.scatter([_coord(x, r["params"][x.path]) for r in bad], [_coord(y, r["params"][y.path]) for r in bad],
                         marker="x", c="#d62728", s=40, zorder=3, label="diverged / failed")
            main.legend(loc="lower right", fontsize=8)
        _set_scale(main, x, "x")
        _set_scale(main, y, "y")
        main.set_xlabel(f"{x.path} (important)" if ranked else x.path)
        main.set_ylabel(f"{y.path} (unimportant)" if ranked else y.path)
        main.grid(alpha=0.25)
        # marginals: the score each trial got, projected onto each axis
        if curves and "x" in curves:
            top.plot(*curves["x"], color="0.6", lw=1.2, zorder=1)
        if curves and "y" in curves:
            right.plot(curves["y"][1], curves["y"][0], color="0.6", lw=1.2, zorder=1)
        top.scatter(xs, vs, c=vs, cmap=CMAP, norm=norm, s=26, edgecolors="k", linewidths=0.4, zorder=3)
        right.scatter(vs, ys, c=vs, cmap=CMAP, norm=norm, s=26, edgecolors="k", linewidths=0.4, zorder=3)
        for xv in np.unique(xs):
            top.axvline(xv, color="0.85", lw=0.6, zorder=0)
        if bands and label in bands:
            text, spans = bands[label]
            for k, (a, b) in enumerate(spans):
                top.axvspan(a, b, color="#f4a261", alpha=0.35, lw=0, zorder=0, label=text if k == 0 else None)
            if spans:
                top.legend(loc="upper right", fontsize=7.5, framealpha=0.9)
        top.set_ylim(vmin - margin, vmax + margin)
        right.set_xlim(vmin - margin, vmax + margin)
        top.set_ylabel(score)
        right.set_xlabel(score)
        top.tick_params(labelbottom=False)
        right.tick_params(labelleft=False)
        right.tick_params(axis="x", labelrotation=45)
        top.grid(alpha=0.25)
        right.grid(alpha=0.25)
        distinct = len(np.unique(xs))
        top.set_title(f"{label}: {len(pts)} trials, {distinct} distinct values of {x.path}", fontsize=10)
        if x.kind == "choice":
            main.set_xticks(range(len(x.choices)), [str(c) for c in x.choices])
        if y.kind == "choice":
            main.set_yticks(range(len(y.choices)), [str(c) for c in y.choices])
    if norm is not None:
        fig.colorbar(sc, ax=fig.axes, label=score, shrink=0.6, pad=0.01)
    if note:
        fig.supxlabel(note, fontsize=9, color="0.25", wrap=True)
    return fig


def score_vs_params(rows: Sequence[dict], space: Space, color_by: str | None = None,
                    score: str = "val_acc", title: str | None = None) -> Figure:
    """Score against each parameter (log axis for log ranges), points coloured by a second parameter."""
    params = list(space)
    n = len(params)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols + 0.8, 3.8 * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, cols, i + 1) for i in range(n)]
    scored, bad = _scored(rows), _failed(rows)
    vals = [r["value"] for r in scored]
    lo = min(vals) if vals else 0.0
    hi = max(vals) if vals else 1.0
    floor = lo - 0.08 * (hi - lo or 1.0)
    for ax, p in zip(axes, params):
        cby = color_by if color_by and color_by != p.path else next(
            (q.path for q in params if q.path != p.path and q.is_range), next((q.path for q in params if q.path != p.path), None))
        cparam = space[cby] if cby else None
        pts = [r for r in scored if p.path in r["params"]]
        xs = [_coord(p, r["params"][p.path]) for r in pts]
        if p.kind == "choice":
            jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(xs))
            xs = list(np.asarray(xs) + jitter)
        ys = [r["value"] for r in pts]
        pruned = [r.get("status") == "pruned" for r in pts]
        if cparam is not None and cparam.is_range and pts:
            cv = [r["params"].get(cby, np.nan) for r in pts]
            norm = (mcolors.LogNorm(cparam.low, cparam.high) if cparam.log else mcolors.Normalize(cparam.low, cparam.high))
            kw: dict[str, Any] = {"c": cv, "cmap": "plasma", "norm": norm}
        elif cparam is not None and pts:
            cmap = mcolors.ListedColormap([f"C{i}" for i in range(max(1, len(cparam.choices)))])
            kw = {"c": [_choice_pos(cparam, r["params"].get(cby)) for r in pts], "cmap": cmap,
                  "norm": mcolors.BoundaryNorm(np.arange(-0.5, len(cparam.choices) + 0.5), cmap.N)}
        else:
            kw = {"color": "C0"}
        full = [i for i, pr in enumerate(pruned) if not pr]
        part = [i for i, pr in enumerate(pruned) if pr]
        if full:
            m = ax.scatter([xs[i] for i in full], [ys[i] for i in full], s=40, edgecolors="k", linewidths=0.5,
                           zorder=3, **_sub(kw, full))
            if cparam is not None and "c" in kw:  # each panel its own colour key: panels colour by different params
                cb = fig.colorbar(m, ax=ax, pad=0.01, fraction=0.06)
                cb.set_label(cby, fontsize=8)
                cb.ax.tick_params(labelsize=7)
                if cparam.kind == "choice":
                    cb.set_ticks(range(len(cparam.choices)), labels=[str(c) for c in cparam.choices])
        if part:
            ax.scatter([xs[i] for i in part], [ys[i] for i in part], s=40, marker="s", facecolors="none",
                       edgecolors="0.4", zorder=2, label="pruned")
        bx = [_coord(p, r["params"][p.path]) for r in bad if p.path in r["params"]]
        if bx:
            ax.scatter(bx, [floor] * len(bx), marker="x", color="#d62728", s=40, zorder=3, label="diverged / failed")
        if bx or part:
            ax.legend(fontsize=8, loc="best")
        _set_scale(ax, p, "x")
        if p.kind == "choice":
            ax.set_xticks(range(len(p.choices)), [str(c) for c in p.choices])
            ax.set_xlim(-0.5, len(p.choices) - 0.5)
        ax.set_xlabel(p.path + (" (log scale)" if p.log else ""))
        ax.set_ylabel(score)
        ax.grid(alpha=0.25)
        if cby:
            ax.set_title(f"colour: {cby}", fontsize=9)
        if vals:
            ax.set_ylim(floor - 0.04 * (hi - lo or 1.0), hi + 0.08 * (hi - lo or 1.0))
    fig.suptitle(title or f"{score} against each parameter ({len(scored)} scored trials)", fontsize=11)
    return fig


def _sub(kw: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    out = dict(kw)
    if "c" in out:
        out["c"] = [out["c"][i] for i in idx]
    return out


def best_so_far(histories: dict[str, Sequence[float | None]], score: str = "val_acc",
                title: str = "best score so far against trial number") -> Figure:
    """Best score so far vs trial number, one line per search (grid, random, TPE on one axis)."""
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, values) in enumerate(histories.items()):
        colour = next((c for k, c in SAMPLER_COLOURS.items() if k in label.lower()), f"C{i + 3}")
        best, xs, ys = None, [], []
        for n, v in enumerate(values, start=1):
            if v is not None and (best is None or v > best):
                best = v
            if best is not None:
                xs.append(n)
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", color=colour, lw=2, label=f"{label}: best {ys[-1]:.4f}")
        pts = [(n, v) for n, v in enumerate(values, start=1) if v is not None]
        if pts:
            ax.scatter(*zip(*pts), color=colour, s=12, alpha=0.35)
    ax.set_xlabel("trials run (in trial-number order)")
    ax.set_ylabel(f"best {score} so far")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize=9, loc="lower right")
    return fig


def parallel_coordinates(study: Any) -> Figure:
    """Optuna's parallel-coordinate plot of a study, as a standalone Figure."""
    import optuna
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_parallel_coordinate(study, target_name="val_acc")
    return _detach(ax)


def _detach(ax: Any) -> Figure:
    # Optuna draws through pyplot; take the figure out of pyplot's registry so it is an ordinary Figure
    import matplotlib.pyplot as plt

    fig = ax.figure
    plt.close(fig)
    fig.set_size_inches(9, 4.8)
    fig.subplots_adjust(left=0.08, right=0.86, bottom=0.22, top=0.9)
    return fig


def param_importances(importances: dict[str, float], title: str = "parameter importances (fANOVA)") -> Figure:
    """Horizontal bars of parameter importances (fractions of explained variance, summing to 1)."""
    fig = Figure(figsize=(6.5, 0.6 * max(2, len(importances)) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    items = sorted(importances.items(), key=lambda kv: kv[1])
    names, vals = [k for k, _ in items], [v for _, v in items]
    bars = ax.barh(names, vals, color="#4c72b0")
    for b, v in zip(bars, vals):
        ax.text(b.get_width() + 0.01, b.get_y() + b.get_height() / 2, f"{v:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, max(1.0, max(vals, default=0) + 0.12))
    ax.set_xlabel("importance (share of the score's variance)")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return fig


def trial_curves(curves: dict[int, dict[str, Any]], metric: str = "loss", title: str | None = None,
                 label_params: Sequence[str] = (), smooth: float = 0.95) -> Figure:
    """Learning curves of trials: running ones in colour (drawn live), finished ones in grey."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    running = 0
    for n, c in sorted(curves.items()):
        if not c["x"]:
            continue
        if metric == "loss":  # per-step losses of small batches are noisy; show their moving average
            c = dict(c, y=ema(c["y"], smooth))
        if c.get("running"):
            desc = ", ".join(f"{p}={c['params'][p]:.3g}" if isinstance(c["params"].get(p), float) else
                             f"{p}={c['params'].get(p)}" for p in label_params if p in c["params"])
            ax.plot(c["x"], c["y"], lw=2, color=f"C{running % 10}", label=f"trial {n} (running) {desc}".strip(),
                    zorder=3)
            ax.plot(c["x"][-1:], c["y"][-1:], "o", color=f"C{running % 10}", zorder=4)
            running += 1
        else:
            bad = c.get("status") in ("diverged", "failed", "pruned", "stopped", "killed")
            ax.plot(c["x"], c["y"], lw=0.9, color="#d62728" if bad else "0.65", alpha=0.7,
                    ls="--" if bad else "-", zorder=2)
    if metric == "loss":
        ax.set_ylabel(f"training loss (moving average, beta {smooth:g})")
        # the limits of what is drawn (the moving averages), not of the raw batch losses: a spike of 16 in
        # the raw values stretched the axis to 16 for lines between 4 and 6; a blow-up is clipped at 4x the median
        ys = np.array([v for ln in ax.get_lines() for v in np.asarray(ln.get_ydata(), dtype=float)])
        ys = ys[np.isfinite(ys)]
        if ys.size:
            hi = min(float(ys.max()), 4 * float(np.median(ys)) + 1e-9)
            lo = float(ys.min())
            pad = 0.08 * (hi - lo or abs(hi) or 1.0)
            ax.set_ylim(max(0.0, lo - pad), hi + pad)
    else:
        ax.set_ylabel(metric)
    ax.set_xlabel("epoch")
    ax.set_title(title or f"learning curves: {running} running (colour), {len(curves) - running} finished (grey; red dashed: "
                 f"diverged, failed or pruned)", fontsize=10)
    ax.grid(alpha=0.3)
    if running:
        ax.legend(fontsize=8, loc="best")
    return fig


def bergstra_summary(budgets: Sequence[int], random_wins: Sequence[float], ties: Sequence[float],
                     grid_best: Sequence[float], random_best: Sequence[float], repeats: int,
                     weight: float) -> Figure:
    """How often random search beats a grid of the same budget, and the mean best score of each."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    xs = np.arange(len(budgets))
    a.bar(xs, [100 * w for w in random_wins], color=SAMPLER_COLOURS["random"], label="random better")
    a.bar(xs, [100 * t for t in ties], bottom=[100 * w for w in random_wins], color="0.75", label="tie")
    a.axhline(50, color="k", lw=0.8, ls=":")
    a.set_xticks(xs, [f"{n}\n({int(round(math.sqrt(n)))}x{int(round(math.sqrt(n)))})" for n in budgets])
    a.set_ylim(0, 100)
    a.set_xlabel("budget (grid)")
    a.set_ylabel(f"% of {repeats} repeats")
    a.set_title("random search finds a better point than the grid", fontsize=10)
    a.legend(fontsize=8, loc="upper left")
    b.plot(budgets, grid_best, "o-", color=SAMPLER_COLOURS["grid"], label="grid")
    b.plot(budgets, random_best, "o-", color=SAMPLER_COLOURS["random"], label="random")
    b.set_xlabel("budget (trials)")
    b.set_ylabel("mean best score")
    b.set_title(f"mean best of g(x) + {weight:g} h(y) (max {1 + weight:g})", fontsize=10)
    b.grid(alpha=0.3)
    b.legend(fontsize=8)
    fig.suptitle("Bergstra & Bengio (2012): one important and one unimportant parameter", fontsize=11)
    return fig


def sample_preview(points: dict[str, Sequence[dict[str, Any]]], x: Param, y: Param) -> Figure:
    """Where each sampler would put its trials (no training): one panel per sampler."""
    n = len(points)
    fig = Figure(figsize=(4.2 * n, 3.9), layout="constrained")
    for i, (label, pts) in enumerate(points.items()):
        ax = fig.add_subplot(1, n, i + 1)
        xs = [_coord(x, p[x.path]) for p in pts if x.path in p and y.path in p]
        ys = [_coord(y, p[y.path]) for p in pts if x.path in p and y.path in p]
        colour = next((c for k, c in SAMPLER_COLOURS.items() if k in label.lower()), "C0")
        ax.scatter(xs, ys, color=colour, s=36, edgecolors="k", linewidths=0.4)
        _set_scale(ax, x, "x")
        _set_scale(ax, y, "y")
        ax.set_xlabel(x.path)
        ax.set_ylabel(y.path)
        ax.grid(alpha=0.3)
        ax.set_title(f"{label}: {len(xs)} points, {len(set(np.round(xs, 12)))} distinct {x.path}", fontsize=9)
    return fig


def search_figures(studies: str | Iterable[str], storage: Any) -> tuple[dict[str, Figure], str]:
    """The search report: figures by file name (scores, curves, planes, importances, random vs grid) and its text
    (trial tables and border warnings) for the named studies (a comma list or a list; prefixes expand)."""
    import optuna

    from ..search.analysis import (border_warnings, completed_trials, expand_studies, importances, plane_axes,
                                   trial_curves as study_curves, trial_rows, trials_table)
    from ..search.storage import open_storage, study_setup

    names = expand_studies([studies] if isinstance(studies, str) else list(studies), storage)
    st = open_storage(storage)
    loaded = {n: optuna.load_study(study_name=n, storage=st) for n in names}
    figs: dict[str, Figure] = {}
    text: list[str] = []

    def save(fig: Figure, name: str) -> None:
        figs[name] = fig

    histories, by_sampler = {}, {}
    for n, s in loaded.items():
        setup = study_setup(s)
        rows = trial_rows(s)
        text.append(trials_table(s))
        warns = border_warnings(s)
        text += ["border warnings:"] + [f"  {w}" for w in warns] if warns else ["border warnings: none"]
        text.append("")
        histories[f"{n} ({setup.sampler})"] = [r["value"] for r in rows]
        by_sampler.setdefault(setup.sampler, (n, rows))
        imp = importances(s)
        save(score_vs_params(rows, setup.space), f"{n}-scores.png")
        curves = study_curves(s, metric="val_acc")
        if curves:
            save(trial_curves(curves, metric="val_acc", title=f"{n}: validation accuracy per epoch"),
                 f"{n}-curves.png")
        if len(completed_trials(s)) >= 2 and len(setup.space) >= 2:
            save(parallel_coordinates(s), f"{n}-parallel.png")
        if imp:
            save(param_importances(imp, title=f"{n}: parameter importances (fANOVA)"), f"{n}-importances.png")
        x, y = plane_axes(setup.space, imp)
        if x is not None:
            save(sampler_planes({f"{n} ({setup.sampler})": rows}, x, y), f"{n}-plane.png")
    save(best_so_far(histories), "best-so-far.png")
    if "grid" in by_sampler and "random" in by_sampler:
        g, r = by_sampler["grid"], by_sampler["random"]
        imp = importances(loaded[r[0]])
        x, y = plane_axes(study_setup(loaded[r[0]]).space, imp)
        if x is not None:
            save(sampler_planes({f"grid ({g[0]})": g[1], f"random ({r[0]})": r[1]}, x, y), "random-vs-grid.png")
    return figs, "\n".join(text).rstrip()
