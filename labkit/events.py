"""Events the training loop emits to its subscribers (run store, progress bar, widgets, tests).

Each event is a small dataclass; `to_dict()` is the JSON line the run store
writes to metrics.jsonl, tagged with its `kind`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict with its kind."""
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass
class StartEvent(Event):
    """The run has its data and model and is about to take its first step."""

    kind: ClassVar[str] = "start"
    run_id: str
    run_dir: str
    total_steps: int
    steps_per_epoch: int
    train_size: int
    classes: int
    parameters: int


@dataclass
class StepEvent(Event):
    """One optimizer step: the batch's loss and accuracy, and the LR the optimizer used."""

    kind: ClassVar[str] = "step"
    step: int
    epoch: float  # fractional epoch at the end of this step
    loss: float
    acc: float
    lr: float  # the base rate, read back from the optimizer after the update
    time: float  # seconds since the start of training
    lrs: dict[str, float] | None = None  # each parameter group's rate, when groups carry different scales


@dataclass
class EpochEvent(Event):
    """End of an epoch: running train metrics and a validation pass."""

    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    time: float
    best: bool  # this epoch is the best so far (its weights are in best.pt)
    weights: dict[str, dict[str, float | None]] = field(default_factory=dict)  # other evaluated weights' val metrics


@dataclass
class ProbeEvent(Event):
    """A probe snapshot of the network's insides (see labkit.training.probes)."""

    kind: ClassVar[str] = "probe"
    step: int
    epoch: float
    layers: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EndEvent(Event):
    """The run is over: its status (completed / stopped / diverged / failed), a message, the summary."""

    kind: ClassVar[str] = "end"
    status: str
    message: str
    summary: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[Event], None]
