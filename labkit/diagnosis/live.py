"""Diagnosis of a run while it trains: an event subscriber that stores events cheaply and diagnoses on demand."""
from __future__ import annotations

import threading
from typing import Any

from ..config import Config
from ..events import Event, ProbeEvent
from ..probe_history import ProbeHistory
from .finding import Finding
from .runner import diagnose


class LiveDiagnosis:
    """An event callback for train(callbacks=[...]): stores events cheaply; findings() diagnoses on demand."""

    def __init__(self, config: Config | None = None):
        self.config = config
        self.events: list[Event] = []
        self.probe_events: list[ProbeEvent] = []
        self._lock = threading.Lock()
        self._cache: tuple[int, list[Finding]] | None = None
        self._rows: list[dict] = []  # events converted so far: each refresh converts only the new ones

    def __call__(self, event: Event) -> None:
        """Store one event (called on the training thread: nothing heavier than an append)."""
        if isinstance(event, ProbeEvent):
            self.probe_events.append(event)
        else:
            self.events.append(event)

    @property
    def count(self) -> int:
        """Events received so far (a cheap 'anything new?' test for views)."""
        return len(self.events) + len(self.probe_events)

    @property
    def ended(self) -> bool:
        """True once the run's end event has arrived."""
        return bool(self.events) and self.events[-1].kind == "end"

    def rows(self) -> list[dict]:
        """The metric rows received so far, as metrics.jsonl would hold them."""
        events = self.events[: len(self.events)]  # a stable prefix: the training thread only appends
        with self._lock:
            self._rows.extend(e.to_dict() for e in events[len(self._rows):])
            return list(self._rows)

    def history(self) -> ProbeHistory:
        """The probe snapshots received so far."""
        return ProbeHistory.from_events(list(self.probe_events))

    def findings(self, model: Any = None, data: Any = None) -> list[Finding]:
        """diagnose() on everything received so far (cached until a new event arrives)."""
        n = self.count
        cache = self._cache
        if cache is not None and cache[0] == n and model is None:
            return list(cache[1])
        out = diagnose(self.rows(), self.history(), self.config, model=model, data=data)
        if model is None:
            self._cache = (n, out)
        return list(out)
