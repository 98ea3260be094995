"""The handle on a training run: its directory, status and summary, and a thread-safe stop()."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from torch import nn

from ..config import Config
from ..data.sets import Data


class Run:
    """A handle on one training run: its directory, status, summary, and a thread-safe stop()."""

    def __init__(self, config: Config, run_dir: Path):
        self.config = config
        self.dir = run_dir
        self.id = run_dir.name
        self.status = "running"
        self.message = ""
        self.summary: dict[str, Any] = {}
        self.model: nn.Module | None = None
        self.data: Data | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self.thread: threading.Thread | None = None

    def stop(self) -> None:
        """Ask the run to stop; honoured before the next batch."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> "Run":
        """Block until the run ends (or `timeout` seconds pass)."""
        self._done.wait(timeout)
        if self._done.is_set() and self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()  # let the thread finish exiting, so interpreter shutdown is clean
        return self

    @property
    def metrics(self) -> list[dict]:
        from ..runs import read_metrics

        return read_metrics(self.dir)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"
