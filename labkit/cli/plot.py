"""`labkit plot RUN_DIR`: write every figure of a run as PNG files and print their paths."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import LabkitError
from .common import add_renamed


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="write a run's figures (learning curves, LR, probes) as PNGs",
                       description="Write every figure of a run directory as PNG files: learning curves, the LR, "
                                   "activation histograms and statistics, gradients and update ratios.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (holds config.json / metrics.jsonl)")
    p.add_argument("--figs", metavar="DIR", help="where to write the PNGs (default: RUN_DIR/plots)")
    add_renamed(p, "--out", "--figs", "figs", "the figure folder")
    p.add_argument("--dpi", type=int, default=100, help="resolution (default 100: notebook width is 1000 px)")
    p.set_defaults(func=run)


def save_figures(figs: dict, out: Path, dpi: int = 100) -> list[Path]:
    """Save each Figure as out/<name>.png; returns the paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabkitError(f"cannot create {out}: {e.strerror}; choose another --figs") from None
    paths = []
    for name, fig in figs.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    from ..plots import run_figures

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise LabkitError(f"run directory {run_dir} does not exist; list runs with `labkit runs`")
    figs = run_figures(run_dir)
    for path in save_figures(figs, Path(args.figs) if args.figs else run_dir / "plots", args.dpi):
        print(path)
    return 0
