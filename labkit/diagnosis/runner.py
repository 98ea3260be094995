"""Run the registered finding checks on a run and hide what another finding explains.

Two rules, both generic:
- an entry whose every code is already explained by an earlier finding is
  not run (after a blow-up nothing else is computed on exploded values);
- a finding is hidden when a finding of another entry explains its code
  ("not judged" notes are no findings: they explain nothing).
  Hidden findings still explain others: a flat loss blamed on the init is
  still a flat loss, so it still rules out a plateau or underfitting.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ..config import Config
from ..errors import LabkitError
from ..probe_history import ProbeHistory
from ..runlog import RunLog
from .finding import Finding, sort_findings
from .registry import FINDINGS, CheckResultT, FindingCheck
from .rows import RunRows


@dataclass
class Context:
    """What the checks read: the run's rows, probes, config, model and batch, and what was found so far."""

    run: RunRows
    probes: ProbeHistory | None  # None when no snapshot was recorded
    config: Config | None = None
    model: Any = None
    data: Any = None
    found: list[Finding] = field(default_factory=list)  # every finding so far, hidden ones included
    cache: dict[str, Any] = field(default_factory=dict)  # numbers several checks share (computed once)

    def has(self, *codes: str) -> bool:
        """True when a finding of one of `codes` was found so far (hidden or not)."""
        return any(f.code in codes for f in self.found)


def _as_list(out: CheckResultT) -> list[Finding]:
    if out is None:
        return []
    if isinstance(out, Finding):
        return [out]
    return [f for f in out if f is not None]


def _explainers(code: str, made: list[tuple[FindingCheck, Finding]], other_than: FindingCheck):
    """(finding, rule) pairs of other entries that explain `code` ("not judged" notes explain nothing)."""
    for check, f in made:
        if check is other_than or f.code == "not_judged":
            continue  # a note says what could not be judged: it is no cause (too few steps hid underfitting)
        for rule in check.explains:
            if rule.covers(code) and rule.when(f):
                yield f, rule


def run_findings(ctx: Context, checks: Iterable[FindingCheck] | None = None) -> list[Finding]:
    """The visible findings of `checks` (default: the registry) on `ctx`, in the order found (not sorted)."""
    made: list[tuple[FindingCheck, Finding]] = []
    for check in (FINDINGS.checks() if checks is None else checks):
        if check.codes and all(next(_explainers(code, made, check), None) for code in check.codes):
            continue  # whatever it could say is explained already (after a blow-up: everything)
        if check.needs.met(ctx):
            out = _as_list(check.run(ctx))
        else:
            out = _as_list(check.unjudged(ctx)) if check.unjudged is not None else []
        for f in out:
            if f.code not in check.codes:
                raise ValueError(f"finding check {check.name!r} gave code {f.code!r}, which it does not declare "
                                 f"(codes={sorted(check.codes)}); add it to its codes")
            made.append((check, f))
            ctx.found.append(f)
    visible = []
    for check, f in made:
        hidden = False
        for g, rule in _explainers(f.code, made, check):
            hidden = True
            if rule.note is not None:
                g.evidence += f"; {rule.note(ctx)}"
        if not hidden:
            visible.append(f)
    return visible


def diagnose(run: RunLog | list[dict], probes: ProbeHistory | None = None, config: Config | None = None,
             model: Any = None, data: Any = None) -> list[Finding]:
    """Findings about a run from its log (or metric rows) and probe history (alarms first), with evidence and fixes.

    `run` is a RunLog (live or loaded; its probes and config are used unless given) or the rows of metrics.jsonl.
    `model` (with `data`: a labkit Data or an input batch) adds the unit-symmetry check on real outputs.
    Checks without enough data yet come back as "not_judged" info findings.
    """
    if isinstance(run, RunLog):
        log = run
        probes = probes if probes is not None else log.probes
        config = config if config is not None else log.config
    elif isinstance(run, (list, tuple)):
        log = RunLog.from_rows([r for r in run if isinstance(r, dict)], config)
    else:
        raise LabkitError(f"run must be a RunLog or a list of metric rows (dicts), got {type(run).__name__}; "
                          "use labkit.RunLog.load(run_dir)")
    if probes is not None and not isinstance(probes, ProbeHistory):
        raise LabkitError(f"probes must be a ProbeHistory, got {type(probes).__name__}; use labkit.probe_history.read_probes(run_dir)")
    h = probes if probes is not None and len(probes) else None
    return sort_findings(run_findings(Context(RunRows(log, config), h, config, model, data)))
