"""Training at scale: the large-batch demo's curves and table, and the convnet cut across two devices.

Data in (labkit.demos.large_batch_demo's and model_split's results), Figure out.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.figure import Figure

from .training import RUN_COLORS, empty_panel, new_figure

ARM_STYLES = [("0.35", "-"), (RUN_COLORS[3], "--"), (RUN_COLORS[0], "-"), (RUN_COLORS[2], "-")]
DEVICE_COLORS = [RUN_COLORS[0], RUN_COLORS[1], RUN_COLORS[2], RUN_COLORS[4], RUN_COLORS[5], RUN_COLORS[6],
                 RUN_COLORS[8], RUN_COLORS[9]]


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "-"


def large_batch(result: Mapping[str, Any]) -> Figure:
    """Learning rate, training loss and validation accuracy per epoch of each arm, and the table of final accuracies.

    Equal epochs: the large batch takes large/small times fewer steps, so at the same rate it moves less; the linear
    rule restores the distance per epoch, warmup keeps its first steps from overshooting.
    """
    arms = list(result.get("arms") or [])
    fig = new_figure(6.4)
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.3, 1.0])
    ax_lr, ax_loss, ax_val = top.subplots(1, 3)
    if not arms:
        for ax in (ax_lr, ax_loss, ax_val):
            empty_panel(ax, "no runs")
        return fig
    for i, a in enumerate(arms):
        color, ls = ARM_STYLES[i % len(ARM_STYLES)]
        kw = {"color": color, "ls": ls, "lw": 1.8}
        ax_lr.plot(a.get("step_epoch", []), a.get("lr", []), **kw, label=a["label"])
        ax_loss.plot(a.get("epochs", []), a.get("train_loss", []), marker="o", ms=3, **kw)
        ax_val.plot(a.get("epochs", []), [100 * v if v is not None else None for v in a.get("val", [])],
                    marker="o", ms=3, **kw)
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="Learning rate (what each run used)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss (epoch mean)")
    ax_val.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    for ax in (ax_lr, ax_loss, ax_val):
        ax.grid(alpha=0.3)
    top.legend(*ax_lr.get_legend_handles_labels(), loc="outside lower center", ncols=min(4, len(arms)), fontsize=9,
               frameon=False)
    ax_t = bottom.subplots()
    ax_t.axis("off")
    rows = [[a["label"], f"{a['batch']}", f"{a['peak']:.3g}", f"{a.get('warmup', 0):g}", f"{a.get('steps') or 0}",
             _pct(a.get("val_acc")), _pct(a.get("test_acc"))] for a in arms]
    table = ax_t.table(cellText=rows, colLabels=["run", "batch", "peak LR", "warmup (ep.)", "steps", "val acc",
                                                 "test acc"], loc="center", cellLoc="center",
                       colWidths=[0.34, 0.08, 0.1, 0.12, 0.08, 0.1, 0.1])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.25)
    for i in range(len(arms)):
        table[i + 1, 0].get_text().set_color(ARM_STYLES[i % len(ARM_STYLES)][0])
    subset, epochs = result.get("subset"), result.get("epochs")
    what = f"{result.get('dataset', '')}, {subset} training examples, {epochs:g} epochs each" if subset else ""
    note = (f"; batch {result['large']} is the largest power of two that keeps 8 steps per epoch "
            f"({result['asked_large']} asked)") if result.get("asked_large", result.get("large")) != result.get("large") \
        else ""
    fig.suptitle(f"Large batches at equal epochs: the linear scaling rule and warmup ({what}{note})", fontsize=11)
    return fig


def model_parallel(split: Mapping[str, Any], micro_batches: int = 4) -> Figure:
    """The network's blocks in a row, coloured by the device that holds them, the activations crossing at each cut;
    below, one training step on a timeline: plain model parallelism (one device busy at a time) and a pipeline of
    `micro_batches` micro-batches (GPipe), whose idle "bubble" shrinks as micro-batches are added."""
    blocks: Sequence[Mapping[str, Any]] = split.get("blocks") or []
    device: Sequence[int] = split.get("device") or []
    n_dev = int(split.get("devices") or (max(device) + 1 if device else 1))
    fig = new_figure(6.2)
    ax, ax_naive, ax_pipe = fig.subplots(3, 1, height_ratios=[1.5, 1.0, 1.0])
    if not blocks:
        empty_panel(ax, "no blocks")
        return fig
    total_params = sum(b["params"] for b in blocks) or 1
    total_macs = sum(b["macs"] for b in blocks) or 1
    width, gap = 1.0, 0.35
    for i, b in enumerate(blocks):
        x = i * (width + gap)
        d = device[i] if i < len(device) else 0
        ax.add_patch(Rectangle((x, 0), width, 1, facecolor=DEVICE_COLORS[d % len(DEVICE_COLORS)], alpha=0.25,
                               edgecolor=DEVICE_COLORS[d % len(DEVICE_COLORS)], lw=1.5))
        shape = "x".join(str(s) for s in b.get("shape", []))
        ax.text(x + width / 2, 0.72, b["kind"].replace("PatchWhitening", "whiten"), ha="center", va="center",
                fontsize=8, fontweight="bold")
        ax.text(x + width / 2, 0.45, shape, ha="center", va="center", fontsize=7)
        ax.text(x + width / 2, 0.2, f"{100 * b['macs'] / total_macs:.0f}% MACs", ha="center", va="center",
                fontsize=7, color="0.3")
        if i + 1 < len(blocks):
            ax.add_patch(FancyArrowPatch((x + width, 0.5), (x + width + gap, 0.5), arrowstyle="-|>",
                                         mutation_scale=8, color="0.4"))
    for cut in split.get("cuts") or []:
        x = cut["after"] * (width + gap) + width + gap / 2
        ax.axvline(x, color="k", ls="--", lw=1.2)
        ax.text(x, 1.12, f"cut: {cut['floats']:,} activations per image go forward,\nas many gradients come back",
                ha="center", va="bottom", fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    for d in range(n_dev):
        idx = [i for i, v in enumerate(device) if v == d]
        if idx:
            x0, x1 = idx[0] * (width + gap), idx[-1] * (width + gap) + width
            share = sum(blocks[i]["params"] for i in idx) / total_params
            work = sum(blocks[i]["macs"] for i in idx) / total_macs
            ax.text((x0 + x1) / 2, -0.22, f"device {d}: {work:.0%} of the multiply-adds, {share:.0%} of the weights",
                    ha="center", va="top",
                    fontsize=9, color=DEVICE_COLORS[d % len(DEVICE_COLORS)], fontweight="bold")
    ax.set_xlim(-0.2, len(blocks) * (width + gap))
    ax.set_ylim(-0.55, 1.6)
    ax.axis("off")
    ax.set_title(f"Model parallelism: the {split.get('kind', 'model')} cut across {n_dev} devices "
                 "(each holds only its part of the weights)", fontsize=11)
    _timeline(ax_naive, n_dev, 1, "One batch, no pipeline: each device waits for the other")
    _timeline(ax_pipe, n_dev, max(1, int(micro_batches)),
              f"Pipeline of {micro_batches} micro-batches (GPipe): the idle bubble shrinks")
    return fig


def _timeline(ax, devices: int, m: int, title: str) -> None:
    """Forward (F) and backward (B, twice as long) of m micro-batches on each device, GPipe's schedule."""
    f = 1.0 / m  # one micro-batch's forward on one device, in units of a whole batch's
    busy_end = 0.0
    for d in range(devices):
        for k in range(m):
            start = (d + k) * f
            ax.add_patch(Rectangle((start, d + 0.1), f, 0.8, facecolor=DEVICE_COLORS[d % len(DEVICE_COLORS)],
                                   alpha=0.55, edgecolor="white"))
            if m <= 8:
                ax.text(start + f / 2, d + 0.5, f"F{k + 1}" if m > 1 else "F", ha="center", va="center", fontsize=7)
        back0 = (devices + m - 1) * f  # backward starts on the last device once every forward is done
        for k in range(m):
            start = back0 + (devices - 1 - d + k) * 2 * f
            ax.add_patch(Rectangle((start, d + 0.1), 2 * f, 0.8, facecolor=DEVICE_COLORS[d % len(DEVICE_COLORS)],
                                   alpha=0.9, edgecolor="white"))
            if m <= 8:
                ax.text(start + f, d + 0.5, f"B{m - k}" if m > 1 else "B", ha="center", va="center", fontsize=7,
                        color="white")
            busy_end = max(busy_end, start + 2 * f)
    busy = 3.0 * devices  # each device works 3 units (1 forward + 2 backward) per batch
    idle = 1 - busy / (devices * busy_end)
    ax.set_xlim(0, max(busy_end, 3 * devices) * 1.02)
    ax.set_ylim(devices, 0)
    ax.set_yticks([d + 0.5 for d in range(devices)], [f"device {d}" for d in range(devices)])
    ax.set_xlabel("time (one batch's forward on one device = 1)")
    ax.set_title(f"{title}: {idle:.0%} of device time idle", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
