"""A run still going, killed, stopped or failed is judged on what it recorded: the note that says so."""
from __future__ import annotations

from .finding import Finding, not_judged
from .registry import finding
from .runner import Context
from .thresholds import PLOT_CURVES


@finding("run_end", codes={"not_judged"})
def run_end(ctx: Context) -> Finding | None:
    """A run still going (or killed) is judged on what it recorded so far: say so."""
    run = ctx.run
    if run.status is None and run.n:
        total = (run.start or {}).get("total_steps")
        return not_judged("run_end", "The run has no end record yet",
                          f"judged on {run.n} steps" + (f" of {total}" if total else "") +
                          " recorded so far (still running, or killed)",
                          "diagnose again later, or after the run ends", PLOT_CURVES)
    if run.status in ("stopped", "failed"):
        return not_judged("run_end", f"The run {run.status} early",
                          f"judged on the {run.n} steps recorded; {(run.end or {}).get('message', '')}",
                          "findings about late training need a complete run", PLOT_CURVES)
    return None
