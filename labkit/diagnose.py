"""Diagnosis of a training run (the public names; the checks live in the labkit.diagnosis package).

    from labkit.diagnose import diagnose, diagnose_run, LiveDiagnosis
    for f in diagnose_run("runs/<run>"):
        print(f.severity, f.title, f.evidence, f.suggestion, f.fix, f.plot)

See labkit/diagnosis/__init__.py for what is judged and how findings explain each other,
and labkit/diagnosis/thresholds.py for every threshold with the reason for its value.
"""
from __future__ import annotations

from .diagnosis import (ALL, FINDINGS, SEVERITIES, Context, Explains, Finding, FindingCheck, Fix, LiveDiagnosis,
                        Needs, diagnose, diagnose_run, finding, has_alarms, report_text, unit_symmetry)
from .diagnosis.thresholds import *  # noqa: F401,F403  (the thresholds, importable from here as before)

__all__ = ["ALL", "FINDINGS", "SEVERITIES", "Context", "Explains", "Finding", "FindingCheck", "Fix", "LiveDiagnosis",
           "Needs", "diagnose", "diagnose_run", "finding", "has_alarms", "report_text", "unit_symmetry"]
