"""The lectures' transfer-learning table with measured accuracies (labkit.transfer.transfer_demo's result in)."""
from __future__ import annotations

import textwrap
from typing import Any, Mapping

from matplotlib.figure import Figure

from .training import RUN_COLORS, empty_panel, new_figure

METHOD_COLORS = {"scratch": "0.6", "linear probe": RUN_COLORS[0], "fine-tune": RUN_COLORS[1]}
ROW_TITLES = {"small": "very little data", "large": "quite a lot of data"}
COL_TITLES = {"similar": "very similar dataset", "different": "very different dataset"}


def transfer_quadrants(result: Mapping[str, Any]) -> Figure:
    """A 2x2 table: data size (rows) x similarity to the source (columns); in each cell the test accuracy of
    each method at equal steps (chance dashed, the best in bold) under the lectures' advice for that cell."""
    cells = result.get("cells") or {}
    sizes = [s for s in result.get("sizes", ("small", "large"))]
    targets = list(result.get("targets") or {"similar": "", "different": ""})
    wrapped = {k: textwrap.fill(f"lectures: {cell['advice']}", 58) for k, cell in cells.items()}
    lines = max((w.count("\n") + 1 for w in wrapped.values()), default=1)
    fig = new_figure(7.6)
    columns = fig.subfigures(1, len(targets), squeeze=False)[0]
    axes = [[None] * len(targets) for _ in sizes]
    for c, target in enumerate(targets):
        label = (result.get("targets") or {}).get(target, "")
        columns[c].suptitle(f"{COL_TITLES.get(target, target)}\n{label}", fontsize=11, fontweight="bold")
        for r, ax in enumerate(columns[c].subplots(len(sizes), 1, squeeze=False, sharex=True)[:, 0]):
            axes[r][c] = ax
    for r, size in enumerate(sizes):
        for c, target in enumerate(targets):
            ax = axes[r][c]
            cell = cells.get((size, target))
            if cell is None:
                empty_panel(ax, "not measured")
                continue
            methods = list(cell["accuracy"])
            accs = [cell["accuracy"][m] for m in methods]
            known = [a for a in accs if a is not None]
            best = max(known) if known else None
            ys = list(range(len(methods)))[::-1]
            for y, m, a in zip(ys, methods, accs):
                if a is None:
                    ax.text(0.01, y, "not run", va="center", fontsize=8, color="0.4")
                    continue
                top = best is not None and a >= best - 1e-9
                ax.barh(y, a, height=0.62, color=METHOD_COLORS.get(m, "0.5"), edgecolor="black" if top else "none",
                        linewidth=1.2)
                ax.text(a + 0.01, y, f"{a:.1%}", va="center", fontsize=9, fontweight="bold" if top else "normal")
            ax.axvline(cell["chance"], color="0.3", ls="--", lw=1)
            ax.text(cell["chance"], ys[0] + 0.52, f" chance {cell['chance']:.0%}", fontsize=7, color="0.3",
                    va="bottom")
            ax.set_yticks(ys, methods, fontsize=9)
            ax.set_xlim(0, 1.16)  # room for the label of a bar near 100%
            ax.set_ylim(-0.6, len(methods) - 0.1)
            ax.grid(axis="x", alpha=0.3)
            advice = wrapped[(size, target)]
            advice += "\n" * (lines - advice.count("\n") - 1)  # as tall as the tallest: the axes line up
            ax.set_title(f"{cell['per_class']} images/class, {cell['steps']} steps\n{advice}", fontsize=9, loc="left",
                         style="italic")
            if r == len(sizes) - 1:
                ax.set_xlabel("test accuracy")
        axes[r][0].annotate(ROW_TITLES.get(size, size), xy=(0, 0.5), xycoords="axes fraction", xytext=(-86, 0),
                            textcoords="offset points", rotation=90, ha="center", va="center", fontsize=11,
                            fontweight="bold")
    src = result.get("source") or {}
    acc = src.get("test_acc")
    classes = (src.get("classes") or "").replace(",", ", ")
    data = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(src.get("dataset"), src.get("dataset") or "images")
    fig.suptitle(f"Transfer learning: from a network trained on {data}"
                 + (f" {classes}" if classes else "")
                 + (f" (test accuracy {acc:.1%})" if isinstance(acc, float) else "")
                 + "\nthree ways to learn each target, at equal steps", fontsize=11)
    return fig
