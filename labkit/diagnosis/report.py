"""Findings as readable text: one block per finding, fixes rendered by the caller (the CLI prints flags)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from .finding import SEVERITIES, Finding
from .fixes import changes_text


def report_text(findings: Sequence[Finding], header: str = "",
                fix_text: Callable[[dict[str, Any]], str] = changes_text) -> str:
    """A readable report: one block per finding (severity, title, evidence, suggestion, fixes, plot file).

    `fix_text` turns a fix's changes into what the reader can act on (the CLI passes its flags, e.g. `--lr 0.01`).
    """
    lines = [header] if header else []
    for f in findings:
        tag = {"alarm": "ALARM", "warn": "WARN", "info": "INFO"}.get(f.severity, f.severity.upper())
        lines += ["", f"[{tag}] {f.title}", f"  evidence:   {f.evidence}", f"  suggestion: {f.suggestion}"]
        for i, fix in enumerate(f.fixes):
            why = f"  ({fix.reason})" if fix.reason else ""
            lines.append(f"  {'try:' if i == 0 else '':<12}{fix_text(fix.changes)}{why}")
        lines.append(f"  plot:       {f.plot}.png")
    counts = {s: sum(1 for f in findings if f.severity == s and f.code != "not_judged") for s in SEVERITIES}
    open_ = sum(1 for f in findings if f.code == "not_judged")
    lines.append("")
    summary = "no alarms" if counts["alarm"] == 0 else f"{counts['alarm']} alarm{'s' * (counts['alarm'] != 1)}"
    summary += f", {counts['warn']} warning{'s' * (counts['warn'] != 1)}, {counts['info']} note{'s' * (counts['info'] != 1)}"
    if open_:
        summary += f"; {open_} check{'s' * (open_ != 1)} not judged"
    lines.append(summary + ".")
    return "\n".join(lines)
