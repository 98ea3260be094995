"""Figures of the concept demos computed by labkit.concepts (pure: result in, Figure out).

`concept_figure(name, result)` picks the function a demo's registry entry names.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure

from ..concepts import CONCEPTS
from .training import RUN_COLORS, ema, learning_curves, log_scale, new_figure


def _lines_below(fig: Figure, result: Mapping[str, Any], n: int | None = None) -> None:
    lines = list(result.get("lines", []))[:n]
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=8, color="0.25")


def zigzag(result: Mapping[str, Any]) -> Figure:
    """Each step's update of two weights (quadrants), the per-step loss, and each activation's path of the pair."""
    acts = result["acts"]
    fig = new_figure(7.6)
    top, bottom = fig.subfigures(2, 1)
    ax_u, ax_l = top.subplots(1, 2)
    path_axes = bottom.subplots(1, len(acts), squeeze=False)[0]
    for k, (act, r) in enumerate(acts.items()):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        upd = np.asarray(r["updates"], dtype=float)
        scale = np.abs(upd).max() or 1.0
        ax_u.scatter(upd[:, 0] / scale, upd[:, 1] / scale, s=7, color=color, alpha=0.5,
                     label=f"{act}: one sign in {r['same_sign']:.0%} of steps")
        loss = np.asarray(r["losses"], dtype=float)
        ax_l.plot(np.arange(1, len(loss) + 1), ema(loss, 0.98), color=color,
                  label=f"{act} (val acc {r['val_acc']:.2f})")
        ax = path_axes[k]
        path = np.asarray(r["path"], dtype=float) - np.asarray(r["path"], dtype=float)[0]
        u, a, b = r["pair"]
        ax.plot(path[:, 0], path[:, 1], color=color, lw=0.9, marker=".", ms=2)
        ax.plot([0, path[-1, 0]], [0, path[-1, 1]], color="0.3", ls=":", lw=1, label="the straight way")
        ax.plot(0, 0, "s", color="0.3", ms=5, label="start")
        ax.plot(path[-1, 0], path[-1, 1], "o", color=color, ms=6, label="end")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set(xlabel=f"weight {a} - its start", ylabel=f"weight {b} - its start",
               title=f"{act}: unit {u}'s weights {a} and {b}")
        ax.legend(fontsize=7.5)
    for ax in (ax_u, *path_axes):
        ax.axhline(0, color="0.5", lw=0.6)
        ax.axvline(0, color="0.5", lw=0.6)
    ax_u.set(xlabel="update of weight a (scaled)", ylabel="update of weight b (scaled)",
             title="Each step's update of two incoming weights")
    ax_u.text(0.97, 0.03, "sigmoid inputs: only\nquadrants I and III", transform=ax_u.transAxes, ha="right",
              va="bottom", fontsize=8, color="0.3")
    ax_l.set(xlabel="step (one example each)", ylabel="training loss (EMA 0.98)", title="Loss per step")
    for ax in (ax_u, ax_l, *path_axes):
        ax.grid(alpha=0.3)
    ax_u.legend(fontsize=7.5, loc="upper left")
    ax_l.legend(fontsize=7.5)
    bottom.suptitle("Paths of the pair of a unit's weights that moved furthest apart: with sigmoid inputs every step "
                    "is diagonal (both up or both down), so it zig-zags", fontsize=9)
    fig.suptitle(f"Not zero-centred: a 2-layer MLP on {result['dataset']}, per-example SGD at lr {result['lr']:g}, "
                 f"{result['steps']} steps; the second layer's incoming weights", fontsize=11)
    _lines_below(fig, result)
    return fig


def dead_units(result: Mapping[str, Any]) -> Figure:
    """Dead-unit fraction and validation accuracy against the learning rate, one line per activation."""
    fig = new_figure(4.4)
    ax_d, ax_a = fig.subplots(1, 2)
    lrs = np.asarray(result["lrs"], dtype=float)
    for k, act in enumerate(result["activations"]):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        ax_d.plot(lrs, 100 * np.asarray(result["dead"][k]), "o-", color=color, label=act, lw=2 if k == 0 else 1.2)
        ax_a.plot(lrs, result["val_acc"][k], "o-", color=color, label=act, lw=2 if k == 0 else 1.2)
        for j, s in enumerate(result["status"][k]):
            if s != "completed":
                ax_a.annotate(s, (lrs[j], 0.5), fontsize=7, color=color, ha="center", va="bottom")
    for ax in (ax_d, ax_a):
        log_scale(ax, "x")
        ax.set_xlabel("learning rate (Adam)")
        ax.grid(alpha=0.3)
    ax_d.set(ylabel="dead units (%): zero gradient on every training example", title="Dead units after training",
             ylim=(-3, 103))
    ax_a.set(ylabel="validation accuracy", title="Validation accuracy", ylim=(0.4, 1.02))
    ax_d.legend(fontsize=8, title="activation", title_fontsize=8)
    fig.suptitle(f"Dead ReLUs: a 3-layer MLP without normalization on {result['dataset']}, "
                 f"{result['epochs']:g} epochs per learning rate", fontsize=11)
    return fig


def preprocess(result: Mapping[str, Any]) -> Figure:
    """The inputs' values under each preprocessing, the training loss per step and the validation accuracy."""
    fig = new_figure(4.4)
    ax_h, ax_l, ax_a = fig.subplots(1, 3)
    for k, m in enumerate(result["methods"]):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        inp = result["inputs"][m]
        ax_h.hist(inp["values"], bins=60, histtype="step", color=color, lw=1.5,
                  label=f"{m}: mean {np.mean(inp['mean']):+.2f}, std {np.mean(inp['std']):.2f}")
        log = result["logs"][m]
        steps = log.steps
        if len(steps):
            ax_l.plot(steps.epoch, ema(steps.loss, 0.9), color=color, label=m)
        x = np.arange(1, len(log.epochs) + 1)
        ax_a.plot(x, log.epoch_values("val_acc"), "o-", color=color, label=m)
    ax_h.axvline(0, color="0.5", lw=0.6)
    ax_h.set(xlabel="input value (pixels after preprocessing)", ylabel="count", title="What the network sees")
    ax_l.set(xlabel="epoch", ylabel="training loss (EMA 0.9)", title="Training loss")
    ax_a.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    ax_h.set_ylim(0, ax_h.get_ylim()[1] * 1.45)  # headroom: the legend sits above the histograms, not on them
    for ax in (ax_h, ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, **({"loc": "upper center"} if ax is ax_h else {}))
    fig.suptitle(f"Input preprocessing: the same MLP (no normalization layers, SGD at lr {result['lr']:g}) on "
                 f"{result['subset']} CIFAR-10 images", fontsize=11)
    return fig


def batchnorm(result: Mapping[str, Any]) -> Figure:
    """Validation curves without and with batch norm per case; train- vs eval-mode accuracy; running vs batch means."""
    fig = new_figure(7.6)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
    axes = top.subplots(1, 2, sharey=True)
    for ax, norm, title in zip(axes, ("none", "batch"), ("Without batch norm", "With batch norm")):
        for k, case in enumerate(result["cases"]):
            y = np.asarray(result["curves"][norm][case], dtype=float)
            status = result["status"][norm][case]
            ax.plot(np.arange(1, len(y) + 1), y, "o-", ms=4, color=RUN_COLORS[k],
                    label=case + ("" if status == "completed" else f" ({status})"))
        ax.set(title=title, xlabel="epoch", ylim=(0.3, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right")
    axes[0].set_ylabel("validation accuracy")
    ax_b, ax_m = bottom.subplots(1, 2)
    sizes = result["batch_sizes"]
    ax_b.plot(sizes, result["train_mode_acc"], "o-", color=RUN_COLORS[0], label="train mode: each batch's statistics")
    ax_b.axhline(result["eval_acc"], color=RUN_COLORS[1], ls="--", label="eval mode: running averages (any batch)")
    log_scale(ax_b, "x")
    ax_b.set_xticks(sizes)
    ax_b.set_xticklabels([str(s) for s in sizes])
    ax_b.set(xlabel="examples per batch at evaluation", ylabel="validation accuracy", ylim=(0.3, 1.02),
             title="The same trained weights, train vs eval mode")
    ax_b.legend(fontsize=7.5, loc="lower right")
    run, data = np.asarray(result["running_mean"]), np.asarray(result["data_mean"])
    bm = np.asarray(result["batch_means"])
    units = np.arange(len(run))
    ax_m.scatter(np.repeat(units[None], len(bm), 0).ravel(), bm.ravel(), s=4, color="0.7",
                 label="means of batches of 16")
    ax_m.plot(units, data, "o", mfc="none", color=RUN_COLORS[2], ms=6, label="mean over the training set")
    ax_m.plot(units, run, "x", color=RUN_COLORS[3], ms=5, label="running mean (used in eval)")
    ax_m.set(xlabel="unit of the last batch-norm layer (first 32)", ylabel="mean of its input",
             title="Running means track the data;\nbatch means scatter")
    ax_m.legend(fontsize=7.5)
    for ax in (ax_b, ax_m):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Batch normalization on {result['dataset']}: robustness to init and learning rate, "
                 "and its two modes", fontsize=11)
    return fig


def crossval(result: Mapping[str, Any]) -> Figure:
    """Each repeat's held-out and k-fold estimates (with the k fold scores), and the truth."""
    fig = new_figure(4.4)
    ax, ax_f = fig.subplots(1, 2, width_ratios=[1, 1.3])
    held, kfold = np.asarray(result["held_out"]), np.asarray(result["kfold"])
    rng = np.random.default_rng(0)
    for i, (vals, label) in enumerate(((held, f"one held-out split\n({result['holdout']:.0%})"),
                                       (kfold, f"{result['k']}-fold mean"))):
        x = i + rng.uniform(-0.12, 0.12, len(vals))
        ax.scatter(x, vals, color=RUN_COLORS[i], s=28, zorder=3)
        ax.errorbar(i + 0.3, vals.mean(), yerr=vals.std(ddof=1), fmt="D", color=RUN_COLORS[i], capsize=5,
                    label=f"{label.replace(chr(10), ' ')}: std {vals.std(ddof=1):.3f}")
    ax.axhline(result["truth"], color="0.3", ls="--", lw=1, label=f"on 2,000 fresh points: {result['truth']:.3f}")
    ax.set_xticks([0, 1])
    ax.set_xticklabels([f"one held-out split\n({result['holdout']:.0%})", f"{result['k']}-fold\nmean"])
    ax.set(xlim=(-0.5, 1.6), ylabel="estimated accuracy", title=f"{result['repeats']} shuffles of the same "
           f"{result['points']} points")
    ax.legend(fontsize=7.5, loc="best")
    folds = np.asarray(result["folds"])
    for r in range(len(folds)):
        ax_f.scatter(np.full(folds.shape[1], r + 1), folds[r], s=14, color="0.6")
        ax_f.plot(r + 1, kfold[r], "D", color=RUN_COLORS[1])
        ax_f.plot(r + 1, held[r], "o", color=RUN_COLORS[0], mfc="none")
    ax_f.axhline(result["truth"], color="0.3", ls="--", lw=1)
    ax_f.set(xlabel="shuffle", ylabel="accuracy", title="Fold scores (grey), their mean (diamond),\nheld-out (circle)")
    ax_f.set_xticks(range(1, len(folds) + 1))  # whole shuffles, not 1.5 / 2.5
    for a in (ax, ax_f):
        a.grid(alpha=0.3)
    fig.suptitle(f"Cross-validation on {result['dataset']}: k-fold averages k held-out scores, one split is one draw",
                 fontsize=11)
    return fig


def early_stopping(result: Mapping[str, Any]) -> Figure:
    """The full and the early-stopped run's learning curves (best epochs marked) and where patience stopped."""
    logs = result["logs"]
    fig = learning_curves(logs, smooth=0.9, run_notes=False)
    stop = result["stop_epoch"]
    for ax in fig.axes[:2]:
        ax.axvline(stop, color=RUN_COLORS[1], ls="-.", lw=1)
        ax.annotate(f"stopped (patience {result['patience']})", (stop, 0.02), xycoords=("data", "axes fraction"),
                    rotation=90, fontsize=8, color=RUN_COLORS[1], ha="right", va="bottom")
    best = next(iter(result["best_epoch"].values()))
    fig.suptitle(f"Early stopping on {result['dataset']}: the best epoch ({best}, star) is what best.pt keeps; "
                 f"patience {result['patience']} stops {result['patience']} epochs later, at {stop}\n"
                 "(the two runs are one seeded run until the stop, so their curves coincide there)", fontsize=10.5)
    return fig


def l1_l2(result: Mapping[str, Any]) -> Figure:
    """Histograms of the weights under no penalty, L2 and L1, and the fraction near zero."""
    fig = new_figure(4.4)
    ax_h, ax_z = fig.subplots(1, 2, width_ratios=[1.6, 1])
    ws = result["weights"]
    top = max(float(np.abs(w).max()) for w in ws.values())
    bins = np.linspace(-top, top, 81)
    for k, (label, w) in enumerate(ws.items()):
        ax_h.hist(w, bins=bins, histtype="step", lw=1.6, color=RUN_COLORS[k], label=label)
    ax_h.set_yscale("log")
    ax_h.set(xlabel="weight value (all weight matrices)", ylabel="count (log)", title="Weights after training")
    ax_h.legend(fontsize=8)
    names = list(ws)
    fr = [100 * result["zero_fraction"][n] for n in names]
    bars = ax_z.bar(names, fr, color=[RUN_COLORS[k] for k in range(len(names))])
    for b, n in zip(bars, names):
        ax_z.annotate(f"{b.get_height():.0f}%\nval {result['val_acc'][n]:.2f}", (b.get_x() + b.get_width() / 2,
                      b.get_height()), ha="center", va="bottom", fontsize=8)
    ax_z.set(ylabel=f"weights with |w| < {result['near_zero']:g} (%)", title="Near-zero weights", ylim=(0, 110))
    for ax in (ax_h, ax_z):
        ax.grid(alpha=0.3)
    fig.suptitle(f"L2 vs L1 on {result['dataset']}: L2 shrinks every weight, L1 zeroes most of them", fontsize=11)
    return fig


def dropout(result: Mapping[str, Any]) -> Figure:
    """Per-unit means in train vs eval mode (dropout, DropConnect), the ratio against p, one unit's values."""
    fig = new_figure(4.4)
    ax_s, ax_r, ax_u = fig.subplots(1, 3)
    p = result["p"]
    hi = 0.0
    for k, (name, label) in enumerate((("dropout", "dropout"), ("dropconnect", "DropConnect"))):
        r = result[name]
        ax_s.scatter(r["eval"], r["train"], s=12, color=RUN_COLORS[k], label=f"{label}: ratio {r['ratio']:.3f}")
        hi = max(hi, float(np.max(np.abs(r["eval"]))), float(np.max(np.abs(r["train"]))))
    ax_s.plot([-hi, hi], [-hi, hi], color="0.4", lw=1, label="train = eval (inverted scaling)")
    ax_s.plot([-hi, hi], [-hi * (1 - p), hi * (1 - p)], color="0.4", ls=":", lw=1,
              label=f"without 1/(1-p): x {1 - p:g}")
    ax_s.set(xlabel="unit's mean in eval mode", ylabel=f"unit's mean in train mode (p = {p:g})",
             title="Every unit: train vs eval mean")
    ax_s.legend(fontsize=7)
    ps = np.asarray(result["ps"])
    ax_r.plot(ps, result["ratio_inverted"], "o-", color=RUN_COLORS[0], label="inverted dropout (torch)")
    ax_r.plot(ps, 1 - ps, ":", color="0.4", label="without the 1/(1-p) scaling: 1 - p")
    ax_r.set(xlabel="drop probability p", ylabel="mean in train mode / mean in eval mode", ylim=(0, 1.15),
             title="Hidden units' mean, train / eval")
    ax_r.legend(fontsize=7.5, loc="lower left")
    u = result["unit"]
    hi_u = max(float(np.max(u["train"])), 1e-6)
    bins = np.linspace(0, hi_u, 40)
    for key, color in (("eval", RUN_COLORS[2]), ("train", RUN_COLORS[3])):
        v = np.asarray(u[key], dtype=float)
        ax_u.hist(v[v != 0], bins=bins, histtype="step", lw=1.6, color=color,
                  weights=np.full(int((v != 0).sum()), 1 / max(1, len(v))),
                  label=f"{key}: mean {v.mean():.2f}, {np.mean(v == 0):.0%} zeros")
    ax_u.set(xlabel="the unit's non-zero values", ylabel="fraction of examples",
             title="One unit: 0, or kept x 1/(1-p)")
    ax_u.legend(fontsize=7.5)
    for ax in (ax_s, ax_r, ax_u):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Dropout's train vs eval scaling on {result['dataset']} (MLPs trained with dropout / DropConnect "
                 f"p = {p:g})", fontsize=11)
    return fig


def concept_figure(name: str, result: Mapping[str, Any]) -> Figure:
    """The figure of the concept demo `name` (its CONCEPTS entry names the function)."""
    return globals()[CONCEPTS.entry(name).traits["plot"]](result)
