"""The typed run log: one run's events as arrays and records, built live from events or loaded from its directory.

    log = RunLog.live(config); train(config, callbacks=[log])   # fed on the training thread
    log = RunLog.load(run_dir)                                   # metrics.jsonl, probes.jsonl, summary.json

Steps are numpy columns (step, epoch, loss, acc, lr, time, and each parameter
group's rate when the groups' rates differ), grown geometrically so an append
costs the same at step 10 and at step 100,000. Epochs, start and end are the
events' own dataclasses (`EpochEvent`, `StartEvent`, `EndEvent`), so a loaded
log and a live one hold the same types. This is the one place that splits
metric rows by their `kind`; plots, the lab and the CLI read the typed fields.

The training thread appends while a widget thread reads: appends and reads
take one lock, and a read returns views of the first n rows, which are never
written again (growth copies into new arrays), so a snapshot stays consistent
while training goes on.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .config import Config
from .events import EndEvent, EpochEvent, Event, ProbeEvent, StartEvent, StepEvent
from .probe_history import ProbeHistory, _num
from .runs import read_probe_rows
from .runs import RunRecord, load_run, read_metrics

STEP_COLUMNS: dict[str, type] = {"step": np.int64, "epoch": np.float64, "loss": np.float64, "acc": np.float64,
                                 "lr": np.float64, "time": np.float64}
INITIAL_CAPACITY = 256  # rows: a spirals run fits, a CIFAR run doubles a handful of times


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False  # readers share the buffer the training thread appends to
    return v


def _record(cls: type, row: Mapping[str, Any]) -> Any:
    """A dataclass from a metrics row: unknown keys dropped, missing ones at their default (else None).

    Rows from older runs or hand-written rows (tests) may lack fields; they load rather than fail.
    """
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in row:
            kw[f.name] = row[f.name]
        elif f.default is not dataclasses.MISSING:
            kw[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw[f.name] = f.default_factory()
        else:
            kw[f.name] = None
    return cls(**kw)


@dataclass(frozen=True, eq=False)
class Steps:
    """Step columns of equal length (read-only arrays); `lrs` holds each parameter group's rate when they differ."""

    step: np.ndarray
    epoch: np.ndarray  # fractional epoch at the end of the step
    loss: np.ndarray
    acc: np.ndarray
    lr: np.ndarray  # the base rate
    time: np.ndarray  # seconds since the start of training
    lrs: Mapping[str, np.ndarray] = field(default_factory=dict)  # group name -> rate, in first-seen order

    def __len__(self) -> int:
        return len(self.step)

    def __getitem__(self, i: int) -> StepEvent:
        """Row i as the StepEvent it came from (negative counts from the end)."""
        lrs = {g: float(a[i]) for g, a in self.lrs.items()} or None
        return StepEvent(int(self.step[i]), float(self.epoch[i]), float(self.loss[i]), float(self.acc[i]),
                         float(self.lr[i]), float(self.time[i]), lrs)

    def __iter__(self) -> Iterator[StepEvent]:
        return (self[i] for i in range(len(self)))

    @property
    def last(self) -> StepEvent | None:
        """The newest step, or None before the first."""
        return self[-1] if len(self) else None

    def index(self, step: int) -> int | None:
        """The row of step number `step`, or None when it was not recorded (steps are in order)."""
        i = int(np.searchsorted(self.step, step))
        return i if i < len(self.step) and self.step[i] == step else None


class _StepBuffer:
    """Growable step columns: capacity doubles when full, so n appends cost O(n) copies in all."""

    def __init__(self, capacity: int = INITIAL_CAPACITY):
        self.n = 0
        self.cols = {k: np.empty(capacity, dt) for k, dt in STEP_COLUMNS.items()}
        self.groups: dict[str, np.ndarray] = {}
        self.grows = 0  # reallocations so far (tests check growth is geometric)

    @property
    def capacity(self) -> int:
        return len(self.cols["step"])

    def _grow(self) -> None:
        cap = 2 * self.capacity
        n = self.n

        def bigger(a: np.ndarray) -> np.ndarray:
            b = np.empty(cap, a.dtype)
            b[:n] = a[:n]
            return b

        # new arrays, never resized in place: views handed to readers keep pointing at valid rows
        self.cols = {k: bigger(a) for k, a in self.cols.items()}
        self.groups = {g: bigger(a) for g, a in self.groups.items()}
        self.grows += 1

    def append(self, step: int, epoch: float, loss: float, acc: float, lr: float, time: float,
               lrs: Mapping[str, float] | None) -> None:
        if self.n == self.capacity:
            self._grow()
        i, c = self.n, self.cols
        c["step"][i], c["epoch"][i], c["loss"][i], c["acc"][i], c["lr"][i], c["time"][i] = (
            step, epoch, loss, acc, lr, time)
        if lrs:
            for g in lrs:
                if g not in self.groups:
                    # the loop records groups only while their rates differ: before, every group ran at the base rate
                    a = np.empty(self.capacity)
                    a[:i] = c["lr"][:i]
                    self.groups = {**self.groups, g: a}
        for g, a in self.groups.items():
            a[i] = _num(lrs.get(g)) if lrs and g in lrs else lr
        self.n = i + 1

    def view(self) -> Steps:
        n = self.n
        cols = {k: _readonly(a[:n]) for k, a in self.cols.items()}
        return Steps(**cols, lrs={g: _readonly(a[:n]) for g, a in self.groups.items()})


class RunLog:
    """One run's typed record: start, steps (arrays), epochs, probe history, end, config; live or loaded."""

    def __init__(self, config: Config | None = None, name: str | None = None, run_dir: str | os.PathLike | None = None):
        self.config = config
        self.dir = Path(run_dir) if run_dir is not None else None
        self._name = name
        self._lock = threading.Lock()
        self._steps = _StepBuffer()
        self._epochs: list[EpochEvent] = []
        self._probe_snaps: list[Mapping[str, Any]] = []
        self._probe_cache: tuple[int, ProbeHistory] | None = None
        self._probe_dir: Path | None = None  # a loaded log reads probes.jsonl on first use (it can be large)
        self._stored: dict[str, Any] = {}  # summary.json and the store's status, for a loaded log
        self._frozen = False
        self._count = 0
        self.start: StartEvent | None = None
        self.end: EndEvent | None = None

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def live(cls, config: Config | None = None, name: str | None = None) -> "RunLog":
        """An empty log to pass as a training callback: `train(config, callbacks=[log])`."""
        return cls(config, name)

    @classmethod
    def load(cls, run: str | os.PathLike | RunRecord) -> "RunLog":
        """The log of a stored run (torn last line skipped; a killed run without an end loads as far as it got)."""
        rec = run if isinstance(run, RunRecord) else load_run(run)
        log = cls(rec.config, rec.id, rec.dir)
        for row in read_metrics(rec.dir):
            if row.get("kind") != "probe":  # probes are read from probes.jsonl (older runs: from here) on first use
                log.append(row)
        log._probe_dir = rec.dir
        log._stored = {"summary": dict(rec.summary), "status": rec.status}
        return log

    @classmethod
    def from_rows(cls, rows: Any, config: Config | None = None, name: str | None = None) -> "RunLog":
        """A log from metric rows as metrics.jsonl holds them, or from events (tests, older callers)."""
        log = cls(config, name)
        for r in rows:
            log.append(r)
        return log

    def __call__(self, event: Event | Mapping[str, Any]) -> None:
        """Receive one event (a training callback); cheap enough for every step."""
        self.append(event)

    def append(self, item: Event | Mapping[str, Any]) -> None:
        """Add one event, or one metrics row (a dict with its `kind`); other kinds are ignored."""
        if self._frozen:
            raise TypeError("a RunLog snapshot is read-only; append to the live log it was taken from")
        kind = item.kind if isinstance(item, Event) else item.get("kind")
        with self._lock:
            self._count += 1
            if kind == "step":
                if isinstance(item, StepEvent):
                    self._steps.append(item.step, item.epoch, item.loss, item.acc, item.lr, item.time, item.lrs)
                else:
                    self._steps.append(int(item.get("step", 0)), _num(item.get("epoch")), _num(item.get("loss")),
                                       _num(item.get("acc")), _num(item.get("lr")), _num(item.get("time")),
                                       item.get("lrs"))
            elif kind == "epoch":
                self._epochs.append(item if isinstance(item, EpochEvent) else _record(EpochEvent, item))
            elif kind == "probe":
                if isinstance(item, ProbeEvent):
                    item = {"step": item.step, "epoch": item.epoch, "layers": item.layers, "params": item.params}
                if "step" in item:
                    self._probe_snaps.append(item)
            elif kind == "start":
                self.start = item if isinstance(item, StartEvent) else _record(StartEvent, item)
            elif kind == "end":
                self.end = item if isinstance(item, EndEvent) else _record(EndEvent, item)

    # -- reading -----------------------------------------------------------------------------------
    @property
    def steps(self) -> Steps:
        """The steps so far, as read-only arrays of one length (a consistent snapshot)."""
        with self._lock:
            return self._steps.view()

    @property
    def epochs(self) -> list[EpochEvent]:
        """The epoch records so far (EpochEvent: train and val metrics, lr, best, other weights' val metrics)."""
        with self._lock:
            return list(self._epochs)

    def best_epoch(self) -> int | None:
        """The epoch whose weights best.pt holds: the last epoch record marked best (None before the first)."""
        return next((e.epoch for e in reversed(self.epochs) if e.best), None)

    def epoch_values(self, name: str) -> np.ndarray:
        """One field of the epoch records as floats, NaN where it is None (e.g. 'val_acc' without a val split)."""
        return np.array([_num(getattr(e, name)) for e in self.epochs], dtype=float)

    @property
    def weight_names(self) -> list[str]:
        """The other evaluated weights in the epoch records (e.g. 'ema', 'swa'), in first-seen order."""
        names: dict[str, None] = {}
        for e in self.epochs:
            names.update(dict.fromkeys(e.weights or {}))
        return list(names)

    def weight_values(self, weights: str, name: str = "val_acc") -> np.ndarray:
        """One validation number of other evaluated weights per epoch record, NaN where they were not evaluated."""
        return np.array([_num((e.weights or {}).get(weights, {}).get(name)) for e in self.epochs], dtype=float)

    @property
    def snapshot_steps(self) -> list[int]:
        """The steps that end a snapshot ensemble's cycles ([] without one): from the summary, else the config."""
        stored = (self.summary.get("snapshots") or {}).get("steps")
        if stored:
            return [int(s) for s in stored]
        cfg, start = self.config, self.start
        if cfg is None or start is None or getattr(cfg.train, "snapshots", 1) < 2:
            return []
        from .schedules import make_schedule, snapshot_steps

        return snapshot_steps(make_schedule(cfg, start.train_size), cfg.train.snapshots)

    @property
    def probes(self) -> ProbeHistory:
        """The probe snapshots so far (rebuilt only when a new one arrived)."""
        self._load_probes()
        with self._lock:
            n = len(self._probe_snaps)
            cache = self._probe_cache
            if cache is not None and cache[0] == n:
                return cache[1]
            snaps = self._probe_snaps[:n]
        h = ProbeHistory(snaps)
        self._probe_cache = (n, h)
        return h

    @property
    def count(self) -> int:
        """Events and rows appended so far, of every kind (a cheap 'anything new?' test for views and caches)."""
        return self._count

    def probe_snapshots(self) -> list[Mapping[str, Any]]:
        """The probe snapshots so far as dicts (step, epoch, layers, params), in arrival order."""
        self._load_probes()
        with self._lock:
            return list(self._probe_snaps)

    @property
    def probe_count(self) -> int:
        """Probe snapshots received so far (a cheap 'anything new?' test)."""
        self._load_probes()
        return len(self._probe_snaps)

    def _load_probes(self) -> None:
        if self._probe_dir is None:
            return
        with self._lock:
            d, self._probe_dir = self._probe_dir, None
        if d is not None:
            rows = [r for r in read_probe_rows(d) if "step" in r]
            with self._lock:
                self._probe_snaps.extend(rows)

    def snapshot(self) -> "RunLog":
        """A read-only copy of the log as it is now: steps, epochs, probes, start and end read at one moment."""
        snap = RunLog(self.config, self._name, self.dir)
        with self._lock:
            snap._steps = _StepBuffer(0)
            snap._steps.n, snap._steps.cols, snap._steps.groups = self._steps.n, self._steps.cols, dict(self._steps.groups)
            snap._epochs = list(self._epochs)
            snap._probe_snaps = list(self._probe_snaps)
            snap._probe_cache, snap._probe_dir = self._probe_cache, self._probe_dir
            snap.start, snap.end, snap._stored = self.start, self.end, self._stored
            snap._count = self._count
        snap._frozen = True
        return snap

    # -- what the plots and the diagnosis ask ------------------------------------------------------
    @property
    def name(self) -> str:
        """The run's id (from its directory or start event), else 'run'."""
        return self._name or (self.start.run_id if self.start and self.start.run_id else "run")

    @property
    def status(self) -> str | None:
        """How the run ended; without an end: the run store's status ('running' or 'killed'), None for a live log."""
        return self.end.status if self.end is not None else self._stored.get("status")

    @property
    def summary(self) -> dict[str, Any]:
        """The end's summary, else summary.json's (a loaded run without an end)."""
        return dict(self.end.summary) if self.end is not None else dict(self._stored.get("summary") or {})

    @property
    def classes(self) -> int | None:
        """Number of classes (for chance levels), when the start was recorded."""
        c = self.start.classes if self.start is not None else None
        return int(c) if c else None

    @property
    def total_steps(self) -> int | None:
        return self.start.total_steps if self.start is not None else None

    @property
    def steps_per_epoch(self) -> int | None:
        return self.start.steps_per_epoch if self.start is not None else None

    def epoch_positions(self) -> np.ndarray:
        """Where each epoch record sits in epochs of training: its step / steps per epoch, so a partial epoch
        (a run stopped mid-epoch is validated where it stopped) is drawn where it ended, not at the next whole
        epoch; the record's epoch number where the steps per epoch are unknown."""
        spe = self.steps_per_epoch
        if not spe:
            return self.epoch_values("epoch")
        return np.array([e.step / spe for e in self.epochs], dtype=float)

    @property
    def last_step(self) -> int:
        """The number of the newest step (0 before the first)."""
        with self._lock:
            n = self._steps.n
            return int(self._steps.cols["step"][n - 1]) if n else 0

    @property
    def capacity(self) -> int:
        """Rows allocated for steps (grows by doubling)."""
        return self._steps.capacity

    @property
    def grows(self) -> int:
        """How many times the step arrays were reallocated."""
        return self._steps.grows

    def rows(self) -> list[dict[str, Any]]:
        """The log as metrics.jsonl rows, grouped by kind (start, steps, epochs, end; no probes), for code that takes rows."""
        snap = self.snapshot()
        out = [snap.start.to_dict()] if snap.start is not None else []
        out += [e.to_dict() for e in snap.steps]
        out += [e.to_dict() for e in snap._epochs]
        return out + ([snap.end.to_dict()] if snap.end is not None else [])

    def __repr__(self) -> str:
        return (f"RunLog({self.name!r}, {len(self.steps)} steps, {len(self._epochs)} epochs, "
                f"{len(self._probe_snaps)} probe snapshots, status={self.status!r})")


def as_log(data: "RunLog | Any", config: Config | None = None, name: str | None = None) -> RunLog:
    """`data` as a RunLog snapshot: a RunLog as it is now, or metric rows / events (what plots took before)."""
    if isinstance(data, RunLog):
        return data.snapshot()
    return RunLog.from_rows(data, config, name)
