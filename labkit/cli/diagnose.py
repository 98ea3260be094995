"""`labkit diagnose RUN_DIR`: what is wrong with a run, the numbers that show it, and what to try."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import LabkitError
from ..fields import flags_for  # a fix as the CLI prints it: its flag (`--lr 0.01`), else `--set path=value`

__all__ = ["add", "flags_for", "resolve", "run", "with_flags"]


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="diagnose a finished or running run: findings, evidence, what to try",
                       description="Read a run's metrics and probes and report what is wrong (LR too low or high, "
                                   "divergence, bad init, over/underfitting, update ratios, dead or saturated units, "
                                   "collapse, symmetry), each with its numbers, a suggestion and the plot "
                                   "(`labkit plot RUN_DIR` writes it). Exit status 1 when there are alarms.")
    p.add_argument("run", metavar="RUN_DIR", help="a run directory, or a run id under --runs")
    p.add_argument("--runs", default="runs", metavar="DIR", help="run store to look the run id up in (default: runs)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)


def resolve(run: str, runs: str = "runs") -> Path:
    """The run directory `run` names: a path, or a run id under the run store `runs`."""
    d = Path(run)
    if d.is_dir():
        return d
    under = Path(runs) / run
    if under.is_dir():
        return under
    raise LabkitError(f"no run directory {run!r} (nor {under}); pass a run directory or a run id listed by "
                      f"`labkit runs --runs {runs}`")


def with_flags(d: dict[str, Any]) -> dict[str, Any]:
    """A finding's or check's JSON dict with each fix's flags beside its changes (for scripts that run them)."""
    for fix in d.get("fixes") or []:
        fix["flags"] = flags_for(fix["changes"])
    return d


def run(args: argparse.Namespace) -> int:
    from ..diagnosis import diagnose_run, has_alarms, report_text
    from ..runlog import RunLog
    from ..runs import open_run

    d = resolve(args.run, args.runs)
    rec = open_run(d, f"pass a run directory or a run id listed by `labkit runs --runs {args.runs}`")
    log = RunLog.load(rec)
    findings = diagnose_run(d, log=log)
    steps = log.last_step
    if args.json:
        print(json.dumps({"run": rec.id, "dir": str(d), "status": rec.status, "steps": steps,
                          "alarms": has_alarms(findings), "findings": [with_flags(f.to_dict()) for f in findings]},
                         indent=2))
    else:
        header = f"Diagnosis of {rec.id} ({rec.status}, {steps} steps)\nplots: labkit plot {d}"
        print(report_text(findings, header, fix_text=flags_for))
    return 1 if has_alarms(findings) else 0
