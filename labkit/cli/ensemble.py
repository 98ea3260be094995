"""`labkit ensemble RUN_DIR RUN_DIR ...`: score independently trained runs together (their softmax averaged)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .plot import save_figures


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="score several runs' checkpoints as one ensemble on the test set",
                       description="Score the averaged softmax of several runs' checkpoints on the test set, and "
                                   "print each member, their mean, the best member and the ensemble. The runs must "
                                   "share the dataset and class set.")
    p.add_argument("members", nargs="+", metavar="RUN_DIR",
                   help="run directories, or run ids in the run store (`labkit runs` lists them)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="the run store run ids are looked up in (default: runs)")
    p.add_argument("--weights", default="best", metavar="NAME",
                   help="which checkpoint of each run: best (best.pt, the default), ema, swa, or snapshot_K")
    p.add_argument("--figs", metavar="DIR", help="also write the members-vs-ensemble figure as DIR/ensemble.png")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ensemble import ensemble

    store = Path(args.runs)
    # a run id (what `labkit runs` prints) is looked up in the store; anything else is a path, checked by ensemble()
    members = [store / m if not Path(m).is_dir() and (store / m).is_dir() else Path(m) for m in args.members]
    result = ensemble(members, weights=args.weights)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    if args.figs:
        from ..plots import ensemble_figure

        for path in save_figures({"ensemble": ensemble_figure(result)}, Path(args.figs)):
            print(path)
    return 0
