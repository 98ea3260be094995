"""Figures of the lecture demonstrations computed by labkit.demos (pure: result in, Figure out)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .training import RUN_COLORS, _draw_hist, empty_panel, new_figure


def init_demo(result: Mapping[str, Any]) -> Figure:
    """Histograms of every layer for every initializer (rows), then mean and std against depth."""
    inits = result["inits"]
    depth = int(result["depth"])
    names = list(inits)
    fig = new_figure(1.25 * len(names) + 3.6)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25 * len(names) + 0.4, 3.2])
    axes = top.subplots(len(names), depth, squeeze=False, sharex=True)
    for r, name in enumerate(names):
        d = inits[name]
        lo, hi = d["range"]
        hist = np.asarray(d["hist"], dtype=float)
        color = RUN_COLORS[r % len(RUN_COLORS)]
        for c in range(depth):
            ax = axes[r, c]
            std = d["std"][c]
            if hist[c].sum() > 0:
                _draw_hist(ax, hist[c], lo, hi, color, annotate=False)
            ax.set_yticks([])
            ax.tick_params(labelsize=7, length=2)
            ax.text(0.03, 0.96, f"\u03c3 {std:.2g}", transform=ax.transAxes, fontsize=7, va="top",
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7))
            if r == 0:
                ax.set_title(f"layer {c + 1}", fontsize=8)
        axes[r, 0].set_ylabel(d.get("label", name), fontsize=9, rotation=0, ha="right", va="center")
    for c in range(depth):
        axes[-1, c].set_xticks([lo, hi] if lo < 0 < hi and depth > 6 else [lo, 0, hi] if lo < 0 < hi else [lo, hi])
    top.supxlabel(f"{result['activation']} output value (histogram per layer; values beyond the range in the edge bins)",
                  fontsize=9)
    ax_m, ax_s = bottom.subplots(1, 2)
    layers = np.arange(1, depth + 1)
    zero_std, same = [], []
    for r, name in enumerate(names):
        d = inits[name]
        color = RUN_COLORS[r % len(RUN_COLORS)]
        style = dict(color=color, ms=4 if r % 2 else 6, marker="os^vD"[r % 5], ls="-" if r % 2 == 0 else "--",
                     mfc="none" if r % 2 else color, zorder=3 if r % 2 else 2, label=d.get("label", name))
        ax_m.plot(layers, d["mean"], **style)
        std = np.asarray(d["std"], dtype=float)
        if np.all(std <= 0):
            zero_std.append(d.get("label", name))
        ax_s.plot(layers, np.where(std > 0, std, np.nan), **style)
        same += [f"{inits[o].get('label', o)} = {d.get('label', name)}" for o in names[:r]
                 if np.array_equal(np.asarray(inits[o]["std"]), std) and std.any()]
    means = np.concatenate([np.abs(np.asarray(inits[k]["mean"], dtype=float)) for k in names])
    if np.isfinite(means).any() and np.nanmax(means) > 10:  # exploding layers: a symmetric log axis keeps the rest visible
        ax_m.set_yscale("symlog", linthresh=1.0)
    ax_m.set(xlabel="layer", ylabel="mean of activations", title="Mean per layer")
    ax_s.set_yscale("log")
    ax_s.set(xlabel="layer", ylabel="std of activations (log)", title="Std per layer: flat = the scale is kept")
    notes = ([f"not drawn (std exactly 0 at every layer): {', '.join(zero_std)}"] if zero_std else []) + (
        [f"identical here (same std for square layers): {'; '.join(same)}"] if same else [])
    if notes:
        bottom.supxlabel("\n".join(notes), fontsize=8, color="0.3")
    for ax in (ax_m, ax_s):
        ax.set_xticks(layers)
        ax.grid(alpha=0.3)
    bottom.legend(handles=ax_m.get_lines(), loc="outside right center", fontsize=8, title="initializer",
                  title_fontsize=8)
    fig.suptitle(f"Weight initialization: a {depth}-layer, {result['width']}-unit {result['activation']} MLP on "
                 f"{result['n']} Gaussian inputs (forward only)", fontsize=11)
    return fig


def augment_preview(result: Mapping[str, Any]) -> Figure:
    """A grid of the same images under each augmentation (rows), each titled with its (soft) label."""
    rows = result["rows"]
    n = len(rows[0]["images"]) if rows else 0
    fig = new_figure(1.3 * len(rows) + 0.5, width=min(10.0, 1.1 * n + 1.8))
    if not rows or n == 0:
        empty_panel(fig.subplots(), "no images")
        return fig
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(row["images"][c], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(row["labels"][c], fontsize=8.5, pad=2)
        label = row["name"] + ("\n" + row["detail"].replace(", ", "\n") if row.get("detail") else "")
        axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle(f"Data augmentation on {result.get('dataset', 'CIFAR')} training images (labels: soft targets)",
                 fontsize=11)
    return fig


def optimizer_trajectories(result: Mapping[str, Any]) -> Figure:
    """Optimizer paths on the surface's contour plot, and the loss of each against the step."""
    fig = new_figure(4.8)
    ax, ax_l = fig.subplots(1, 2, width_ratios=[1.35, 1])
    X, Y = np.meshgrid(result["x"], result["y"])
    Z = np.asarray(result["z"], dtype=float)
    if result.get("log"):
        zmin = Z.min()
        shifted = Z - zmin + 1e-2
        levels = np.logspace(np.log10(shifted.min()), np.log10(shifted.max()), 25)
        ax.contourf(X, Y, shifted, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55)
        ax.contour(X, Y, shifted, levels=levels, norm=LogNorm(), colors="0.55", linewidths=0.4)
    else:
        levels = np.linspace(Z.min(), np.quantile(Z, 0.95), 25)
        ax.contourf(X, Y, Z, levels=levels, cmap="Greys_r", alpha=0.55, extend="max")
        ax.contour(X, Y, Z, levels=levels, colors="0.55", linewidths=0.4)
    x0, x1, y0, y1 = result["x"][0], result["x"][-1], result["y"][0], result["y"][-1]
    drawn: dict[str, np.ndarray] = {}
    for k, (name, path) in enumerate(result["paths"].items()):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        p = np.asarray(path)
        loss = np.asarray(result["losses"][name])
        # a path another optimizer already took (adam and adamw without weight decay) would hide under it:
        # it is drawn dashed on top, and the legend says whose path it repeats
        same = next((other for other, q in drawn.items() if q.shape == p.shape and np.allclose(q, p)), None)
        drawn[name] = p
        steps = max(1, len(p) - 1)
        per_step = result.get("evals", {}).get(name, steps) / steps
        label = (f"{name} (lr {result['lrs'][name]:g}" + (f", {per_step:.1f} evaluations/step" if per_step > 1.05 else "")
                 + ")" + (f", same path as {same}" if same else ""))
        ax.plot(p[:, 0], p[:, 1], "--" if same else "-", color=color, lw=2.2 if same else 1.6, marker="o",
                ms=2, label=label, zorder=3 if same else 2)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=color, ms=6, mec="black")
        ax_l.plot(np.arange(len(loss)), loss - (np.nanmin(result["z"]) if result.get("log") else 0), color=color, lw=1.5,
                  label=name)
    ax.plot(*result["start"], "k^", ms=8, label="start")
    for m in result["minima"]:
        ax.plot(*m, "*", color="gold", mec="black", ms=13)
    for m in result.get("saddles", []):
        ax.plot(*m, "X", color="white", mec="black", ms=9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set(xlabel="x", ylabel="y", title=result["formula"])
    ax.legend(fontsize=7, loc="lower right" if result["surface"] != "rosenbrock" else "lower left", framealpha=0.9)
    vals = np.concatenate([ln.get_ydata() for ln in ax_l.get_lines()])
    vals = vals[np.isfinite(vals)]
    if result.get("log") or (vals.size and vals.min() > 0 and vals.max() / max(vals.min(), 1e-300) > 100):
        ax_l.set_yscale("log")
        ylabel = "f (log)"
    else:
        ylabel = "f(x, y)"
    ax_l.set(xlabel="step", ylabel=ylabel, title="Loss against step")
    ax_l.grid(alpha=0.3)
    fig.suptitle(f"torch.optim optimizers on the {result['surface']} surface, {result['steps']} steps "
                 "(gold star: minimum" + (", white X: saddle point" if result.get("saddles") else "") + ")", fontsize=11)
    return fig


def schedule_comparison(curves: Mapping[str, Any], steps_per_epoch: int | None = None, title: str | None = None) -> Figure:
    """Every schedule of labkit.demos.schedule_curves on one axis (linear, and log when they span decades)."""
    from .training import lr_curve

    # a schedule whose curve another already drew (step without step_every decays at multistep's milestones)
    # would hide under it: it is relabelled, and drawn dashed and thicker on top
    labels: dict[str, Any] = {}
    repeats: set[str] = set()
    seen: list[str] = []
    for name, c in curves.items():
        same = next((o for o in seen if list(curves[o]) == list(c)), None)
        seen.append(name)
        label = f"{name} (same curve as {same})" if same else name
        labels[label] = c
        if same:
            repeats.add(label)
    fig = lr_curve(labels, steps_per_epoch)
    for ax in fig.get_axes():
        for line in ax.get_lines():
            if line.get_label() in repeats:
                line.set(ls=(0, (4, 3)), lw=2.6, zorder=5)
    fig.suptitle(title or "Learning-rate schedules (same code as training)", fontsize=11)
    return fig


def adam_bias_correction(result: Mapping[str, Any]) -> Figure:
    """Adam with and without bias correction: the paths, the size of each step against lr, and the loss."""
    fig = new_figure(4.2)
    ax_p, ax_s, ax_l = fig.subplots(1, 3, width_ratios=[1.3, 1, 1])
    X, Y = np.meshgrid(result["x"], result["y"])
    Z = np.asarray(result["z"], dtype=float)
    levels = np.linspace(Z.min(), np.quantile(Z, 0.95), 25)
    ax_p.contourf(X, Y, Z, levels=levels, cmap="Greys_r", alpha=0.55, extend="max")
    ax_p.contour(X, Y, Z, levels=levels, colors="0.55", linewidths=0.4)
    b1, b2 = result["betas"]
    styles = {"with": dict(color=RUN_COLORS[0], label="with bias correction (torch.optim.Adam)"),
              "without": dict(color=RUN_COLORS[3], label="without: raw m / sqrt(v)")}
    t = np.arange(1, result["steps"] + 1)
    for mode, st in styles.items():
        p = np.asarray(result["paths"][mode])
        ax_p.plot(p[:, 0], p[:, 1], "-o", ms=2.5, lw=1.4, **st)
        ax_s.plot(t, result["step_size"][mode], lw=1.6, **st)
        ax_l.plot(np.arange(len(result["losses"][mode])), result["losses"][mode], lw=1.6, **st)
    (ref,) = ax_s.plot(t, result["factor"], "--", color="0.4", lw=1.1,
                       label=f"constant gradient:\n(1 - {b1:g}^t) / sqrt(1 - {b2:g}^t)")
    ax_p.plot(*result["start"], "k^", ms=8)
    for m in result["minima"]:
        ax_p.plot(*m, "*", color="gold", mec="black", ms=13)
    pts = np.concatenate([np.asarray(p) for p in result["paths"].values()])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    # the surface's box, grown to show an overshooting path (the contours stop at the box)
    ax_p.set_xlim(min(result["x"][0], pts[:, 0].min()) - 0.1, max(result["x"][-1], pts[:, 0].max()) + 0.1)
    ax_p.set_ylim(min(result["y"][0], pts[:, 1].min()) - 0.1, max(result["y"][-1], pts[:, 1].max()) + 0.1)
    ax_p.set(xlabel="x", ylabel="y", title=result["formula"])
    ax_s.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax_s.set(xlabel="step t", ylabel="largest |step| / lr", title="Step size: 1x lr vs several x lr")
    ax_s.legend(handles=[ref], fontsize=7.5, loc="upper right")  # the two runs: the figure's legend
    vals = np.concatenate([np.asarray(v, dtype=float) for v in result["losses"].values()])
    if vals.min() > 0 and vals.max() / vals.min() > 100:
        ax_l.set_yscale("log")
    ax_l.set(xlabel="step", ylabel="f", title="Loss against step")
    for ax in (ax_s, ax_l):
        ax.grid(alpha=0.3)
    fig.legend(handles=ax_p.get_lines()[:2], loc="outside lower center", ncol=2, fontsize=8.5)
    early = np.asarray(result["step_size"]["without"][:10], dtype=float)
    fig.suptitle(f"Adam's bias correction (lr {result['lr']:g}): m and v start at 0; without it the first steps are "
                 f"up to {np.nanmax(early):.1f}x lr (constant gradient: {np.max(result['factor']):.1f}x)", fontsize=11)
    return fig
