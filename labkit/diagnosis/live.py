"""Diagnosis of a run while it trains: a RunLog fed by the run's events, diagnosed on demand."""
from __future__ import annotations

from typing import Any

from ..config import Config
from ..events import Event
from ..probe_history import ProbeHistory
from ..runlog import RunLog
from .finding import Finding
from .runner import diagnose


class LiveDiagnosis:
    """An event callback for train(callbacks=[...]): its RunLog stores events cheaply; findings() diagnoses on demand."""

    def __init__(self, config: Config | None = None, log: RunLog | None = None):
        self.config = config
        self.log = log if log is not None else RunLog.live(config)
        self._cache: tuple[int, list[Finding]] | None = None

    def __call__(self, event: Event) -> None:
        """Store one event (called on the training thread: an append to the log's arrays)."""
        self.log(event)

    @property
    def count(self) -> int:
        """Events received so far (a cheap 'anything new?' test for views)."""
        return self.log.count

    @property
    def ended(self) -> bool:
        """True once the run's end event has arrived."""
        return self.log.end is not None

    def rows(self) -> list[dict]:
        """The metric rows received so far, as metrics.jsonl would hold them."""
        return self.log.rows()

    def history(self) -> ProbeHistory:
        """The probe snapshots received so far."""
        return self.log.probes

    def findings(self, model: Any = None, data: Any = None) -> list[Finding]:
        """diagnose() on everything received so far (cached until a new event arrives)."""
        n = self.count
        cache = self._cache
        if cache is not None and cache[0] == n and model is None:
            return list(cache[1])
        out = diagnose(self.log.snapshot(), None, self.config, model=model, data=data)
        if model is None:
            self._cache = (n, out)
        return list(out)
