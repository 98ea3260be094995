"""Diagnosis of a training run: what is wrong, the numbers that show it, and what to try.

`diagnose(metrics, probes, config)` reads a run's metric rows (the dicts of
metrics.jsonl: start / step / epoch / end) and its probe history and returns
`Finding`s, each with its evidence as numbers, a suggestion in words, the
same suggestion as data (`fixes`: config path -> value, e.g.
`{"optim.lr": 0.01}`, which the CLI prints as flags and the lab applies with
a button) and the name of the `run_figures` plot that shows it. It runs the
lectures' babysitting recipe: read the loss curve (flat, rising, NaN,
plateau then drop), the train/validation gap (overfitting, underfitting), the
update/weight ratio (~1e-3), and the insides (dead ReLUs, saturated
sigmoid/tanh, activations collapsing with depth, gradients vanishing on their way
back to the input, zero-init symmetry).

Each check is an entry of `registry.FINDINGS`: what it needs (probes, steps,
epochs with validation), the codes it gives and the codes it explains; the
runner hides a finding whose cause another names (a zero-init run is
symmetry, not a low LR or dead ReLUs). It never guesses: a check without
enough data says so as an "info" finding with code "not_judged".
`diagnose_run(run_dir)` diagnoses a stored run; `LiveDiagnosis` is an event
subscriber that keeps the rows of a live run and diagnoses on demand.

Modules: thresholds (every number, with why), finding, fixes, rows, registry,
runner; one module per topic of checks; stored, live, report; outcome (a
finished run at chance level, for status lines).
"""
from __future__ import annotations

# the checks register on import, and run (and are reported within a severity) in this order
from . import divergence, symmetry, units, gradients, loss_curve, updates, no_probes, generalization, run_end  # noqa: F401,I001
from .finding import SEVERITIES, Finding, has_alarms, not_judged, sort_findings
from .fixes import Fix, changes_text
from .live import LiveDiagnosis
from .outcome import at_chance
from .registry import ALL, FINDINGS, Explains, FindingCheck, Needs, finding
from .report import report_text
from .runner import Context, diagnose, run_findings
from .stored import diagnose_run
from .symmetry import unit_symmetry

__all__ = ["ALL", "at_chance", "FINDINGS", "SEVERITIES", "Context", "Explains", "Finding", "FindingCheck", "Fix", "LiveDiagnosis",
           "Needs", "changes_text", "diagnose", "diagnose_run", "finding", "has_alarms", "not_judged", "report_text",
           "run_findings", "sort_findings", "unit_symmetry"]
