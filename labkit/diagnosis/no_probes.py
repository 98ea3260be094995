"""Without probe snapshots the checks inside the network cannot run: the note that says so, and how to get them."""
from __future__ import annotations

from .finding import Finding, not_judged
from .fixes import Fix
from .registry import finding
from .runner import Context
from .thresholds import PLOT_CURVES, PROBE_EVERY


@finding("probes", codes={"not_judged"})
def probes_note(ctx: Context) -> Finding | None:
    """Without probe snapshots, the checks inside the network are not judged: say so."""
    if ctx.probes is not None:
        return None
    cfg = ctx.config
    why = ("probes were off (probe.every=0)" if cfg is not None and cfg.probe.every == 0
           else "no probe snapshots were recorded")
    return not_judged("probes", "Inside the network: not judged",
                      f"{why}: update/weight ratios, dead and saturated units, collapse across depth"
                      + (" and symmetry" if ctx.model is None else "") + " need them",
                      f"record a probe snapshot every {PROBE_EVERY} steps", PLOT_CURVES,
                      [Fix({"probe.every": PROBE_EVERY}, "snapshots of every layer's activations and updates")])
