"""`labkit runs`: a table of past runs, their status and metrics."""
from __future__ import annotations

import argparse
import json

from ..runs import compare, list_runs, load_run


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list past runs; --compare RUN RUN ... shows how their configs differ")
    p.add_argument("--out", default="runs", help="run store directory (default: runs)")
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="show the config fields that differ between runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        runs = [load_run(d) for d in args.compare]
        diff = compare(runs)
        if args.json:
            print(json.dumps({"runs": [r.id for r in runs], "differences": diff}, indent=2))
            return 0
        print("field".ljust(28) + "".join(r.id[-28:].ljust(30) for r in runs))
        for k, vals in diff.items():
            print(k.ljust(28) + "".join(str(v).ljust(30) for v in vals))
        if not diff:
            print("(the configs are identical)")
        return 0
    runs = list_runs(args.out)
    if args.json:
        print(json.dumps([{"id": r.id, "dir": str(r.dir), "status": r.status, **r.summary} for r in runs], indent=2, default=str))
        return 0
    if not runs:
        print(f"no runs under {args.out}/ yet; start one with `labkit train`")
        return 0
    cols = ["run", "status", "epochs", "train_acc", "val_acc", "test_acc", "seconds"]
    width = max(len(r.id) for r in runs) + 2
    print(cols[0].ljust(width) + "".join(c.rjust(11) for c in cols[1:]))
    for r in runs:
        f = r.summary.get("final", {}) or {}
        vals = [r.status, r.summary.get("epochs"), f.get("train_acc"), f.get("val_acc"), f.get("test_acc"),
                r.summary.get("train_seconds")]
        print(r.id.ljust(width) + "".join(_fmt(v).rjust(11) for v in vals))
    return 0
