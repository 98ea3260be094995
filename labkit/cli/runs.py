"""`labkit runs`: a table of past runs, their status and metrics."""
from __future__ import annotations

import argparse
import json

from ..runs import compare, list_runs, load_run
from .common import add_renamed


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list past runs; --compare RUN RUN ... shows how their configs differ")
    p.add_argument("--runs", dest="runs", default="runs", metavar="DIR", help="run store directory (default: runs)")
    add_renamed(p, "--out", "--runs", "runs", "the run store")
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="show the config fields that differ between runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def compare_table(ids: list[str], diff: dict[str, list]) -> str:
    """The fields that differ, one row each, one column per run headed by its full id (ids differ at the end)."""
    rows = [["field", *ids]] + [[k, *(str(v) for v in vals)] for k, vals in diff.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        runs = [load_run(d) for d in args.compare]
        diff = compare(runs)
        if args.json:
            print(json.dumps({"runs": [r.id for r in runs], "differences": diff}, indent=2))
            return 0
        print(compare_table([r.id for r in runs], diff))
        if not diff:
            print("(the configs are identical)")
        return 0
    runs = list_runs(args.runs)
    if args.json:
        print(json.dumps([{"id": r.id, "dir": str(r.dir), "status": r.status, **r.summary} for r in runs], indent=2, default=str))
        return 0
    if not runs:
        print(f"no runs under {args.runs}/ yet; start one with `labkit train`")
        return 0
    # best_epoch: the epoch best.pt holds (early stopping stops --patience epochs after it)
    cols = ["run", "status", "epochs", "best_epoch", "train_acc", "val_acc", "test_acc", "seconds"]
    width = max(len(r.id) for r in runs) + 2
    print(cols[0].ljust(width) + "".join(c.rjust(11) for c in cols[1:]))
    for r in runs:
        f = r.summary.get("final", {}) or {}
        epochs, best = r.summary.get("epochs"), r.summary.get("best_epoch")
        if epochs is None:  # killed or still running: no end summary; read how far it got from its metrics
            from ..runlog import RunLog

            log = RunLog.load(r)
            steps, done = log.steps, log.epochs
            epochs = round(float(steps.epoch[-1]), 2) if len(steps) else None
            if done:
                f = {"train_acc": done[-1].train_acc, "val_acc": done[-1].val_acc}
            best = log.best_epoch()
        vals = [r.status, epochs, best if best is None or best >= 1 else None, f.get("train_acc"), f.get("val_acc"),
                f.get("test_acc"), r.summary.get("train_seconds")]
        cells = [_fmt(v) for v in vals]
        cells[1] = "-" if epochs is None else f"{float(epochs):g}"  # 16, 1.44 (a stopped run's partial epoch)
        secs = r.summary.get("train_seconds")
        cells[-1] = "-" if secs is None else f"{float(secs):.1f}"
        print(r.id.ljust(width) + "".join(c.rjust(11) for c in cells))
    return 0
