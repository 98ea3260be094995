"""Diagnose a stored run from its files: finished, stopped, diverged, killed or still running."""
from __future__ import annotations

import os
from typing import Any

from ..config import Config
from ..runlog import RunLog
from ..runs import open_run
from .finding import Finding, not_judged, sort_findings
from .runner import diagnose
from .thresholds import PLOT_CURVES, PLOT_STATS


def diagnose_run(run_dir: str | os.PathLike, model: Any = None, data: Any = None,
                 log: RunLog | None = None) -> list[Finding]:
    """Diagnose a stored run (finished, stopped, diverged, killed or running) from its files.

    The symmetry check runs the model rebuilt from config.json and best.pt (or `model`/`data` when given).
    `log`: the run's RunLog when the caller has loaded it already (its metrics and probes are not read again).
    """
    rec = open_run(run_dir, "pass the folder holding config.json and metrics.jsonl (`labkit runs --runs DIR` lists them)")
    d = rec.dir
    log = log if log is not None else RunLog.load(rec)
    if not log.count:
        return [not_judged("run_end", "Nothing to diagnose yet",
                           f"{d / 'metrics.jsonl'} has no rows: the run has not reached its first step "
                           f"(status: {rec.status})", "diagnose again once it has taken some steps")]
    cfg = rec.config
    notes: list[Finding] = []
    if model is None and cfg is not None and rec.checkpoint is not None:
        try:
            model, data = _rebuild(cfg, rec, data)
        except Exception as e:  # an old or foreign checkpoint: the rest of the diagnosis still stands
            notes.append(not_judged("symmetry", "Unit symmetry: the checkpoint could not be loaded",
                                    f"rebuilding the model from config.json and best.pt failed: {type(e).__name__}: {e}",
                                    "the probe-based symmetry check still ran", PLOT_STATS))
            model = None
    findings = diagnose(log, None, cfg, model=model, data=data)
    if rec.status == "killed":
        last = log.last_step
        findings = [f for f in findings if f.values.get("check") != "run_end"]
        total = log.total_steps
        notes.append(not_judged("run_end", "The run was killed",
                                f"its process is gone after step {last}" + (f" of {total}" if total else "") +
                                "; judged on what was recorded",
                                "findings about late training need a complete run", PLOT_CURVES))
    return sort_findings(findings + notes)


def _rebuild(cfg: Config, rec: Any, data: Any) -> tuple[Any, Any]:
    from ..data.sets import load_data
    from ..training import build_run_model

    if data is None:
        data = load_data(cfg.data, cfg.train.seed)
    model = build_run_model(cfg, data)
    model.load_state_dict(rec.load_state_dict())
    return model, data
