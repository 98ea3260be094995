"""A tqdm progress bar as an event subscriber: steps, loss, accuracy, LR and ETA."""
from __future__ import annotations

from tqdm.auto import tqdm

from ..events import EndEvent, EpochEvent, Event, StartEvent, StepEvent


class ProgressBar:
    """Shows one bar over all steps of a run; updates its text at most a few times a second."""

    def __init__(self, **tqdm_kwargs):
        self.kwargs = tqdm_kwargs
        self.bar = None
        self.val = ""
        self.step = ""

    def __call__(self, e: Event) -> None:
        if isinstance(e, StartEvent):
            self.bar = tqdm(total=e.total_steps, unit="step", dynamic_ncols=True, **self.kwargs)
        elif isinstance(e, StepEvent) and self.bar is not None:
            self.bar.update(1)
            self.step = f"ep {e.epoch:.1f} loss {e.loss:.3f} acc {e.acc:.2f} lr {e.lr:.2e}"
            self.bar.set_postfix_str(self.step + self.val, refresh=False)
        elif isinstance(e, EpochEvent) and e.val_acc is not None:
            self.val = f" val {e.val_acc:.3f}"
            if self.bar is not None:  # shown now: the last epoch's validation has no step after it
                self.bar.set_postfix_str(self.step + self.val)
        elif isinstance(e, EndEvent) and self.bar is not None:
            self.bar.close()
