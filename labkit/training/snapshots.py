"""Snapshot ensembles (Huang et al. 2017) as a hook, and the scoring of any ensemble by its averaged softmax.

With train.snapshots = M > 1 the learning rate runs M equal cosine cycles (labkit.schedules.make_schedule); at
each cycle's end, where the rate is near its floor, the weights are saved as snapshot_<k>.pt. At the end of
the run each snapshot alone and the ensemble of all M (their softmax averaged) are scored on the validation
and test sets, into summary.json's `snapshots`. `labkit.ensemble` scores independently trained runs with the
same `score_members`.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.pipeline import eval_batches
from ..data.sets import Data
from ..errors import LabkitError
from ..precision import autocast, resolve_precision
from ..schedules import snapshot_steps
from .hooks import TrainContext, TrainHook, state_of


@torch.no_grad()
def log_probs(model: nn.Module, data: Data, split: str, batch_size: int = 1000, tta: bool = False,
              precision: str = "fp32") -> torch.Tensor:
    """The model's log-softmax on `split`, [N, C] float32, computed as `evaluate` computes its loss and accuracy."""
    was = model.training
    model.eval()
    out = []
    for x, _ in eval_batches(data, split, batch_size):
        with autocast(precision, x.device):
            logits = model(x)
            if tta and data.kind == "image":
                logits = 0.5 * (logits + model(x.flip(3)))
        out.append(F.log_softmax(logits.float(), dim=1))
    model.train(was)
    n = len(getattr(data, f"{split}_y"))
    return torch.cat(out) if out else torch.zeros(n, data.num_classes)


def score(logp: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and accuracy of log-probabilities [N, C] against labels."""
    if len(labels) == 0:
        return {"loss": math.nan, "acc": math.nan}
    nll = -logp.gather(1, labels[:, None]).double()
    return {"loss": float(nll.sum()) / len(labels), "acc": int((logp.argmax(1) == labels).sum()) / len(labels)}


def score_members(members: Sequence[torch.Tensor], labels: torch.Tensor) -> dict[str, Any]:
    """Each member's loss and accuracy, and the ensemble's: the mean of the members' softmax (not of their logits).

    The ensemble's log-probability is logsumexp over members minus log M, so one member scores exactly as
    itself, and confident members do not underflow.
    """
    if not members:
        raise LabkitError("an ensemble needs at least one member")
    stacked = torch.stack(list(members))  # [M, N, C]
    mean = torch.logsumexp(stacked, 0) - math.log(len(members))
    each = [score(m, labels) for m in members]
    accs = [m["acc"] for m in each]
    return {"members": each, "ensemble": score(mean, labels), "mean_acc": sum(accs) / len(accs),
            "best_acc": max(accs)}


class Snapshots(TrainHook):
    """Saves the weights at the end of each of `cycles` cosine cycles and scores them alone and as an ensemble."""

    def __init__(self, cycles: int):
        if cycles < 2:
            raise LabkitError(f"train.snapshots={cycles} is out of range; a snapshot ensemble needs 2 or more cycles")
        self.cycles = cycles
        self.ends: list[int] = []
        self.saved: list[dict[str, Any]] = []
        self.states: list[dict[str, torch.Tensor]] = []

    def on_start(self, ctx: TrainContext) -> None:
        s = ctx.schedule
        self.ends = snapshot_steps(s, self.cycles)
        if len(set(self.ends)) < self.cycles:
            raise LabkitError(f"train.snapshots={self.cycles} needs at least one step per cycle, but this run has "
                              f"{s.total_steps - s.warmup} steps after warmup; use fewer --snapshots or more --epochs")
        self.saved, self.states = [], []

    def after_step(self, ctx: TrainContext) -> None:
        if ctx.step not in self.ends:
            return
        k = self.ends.index(ctx.step) + 1
        state = {n: t.detach().clone() for n, t in state_of(ctx.model).items()}
        self.states.append(state)
        entry = {"cycle": k, "step": ctx.step, "epoch": round(ctx.step / ctx.schedule.steps_per_epoch, 4)}
        if ctx.run_dir is not None:
            entry["file"] = f"snapshot_{k}.pt"
            torch.save(state, ctx.run_dir / entry["file"])
        self.saved.append(entry)

    def on_end(self, ctx: TrainContext) -> None:
        spe = ctx.schedule.steps_per_epoch
        out: dict[str, Any] = {"cycles": self.cycles, "steps": self.ends,
                               "epochs": [round(e / spe, 4) for e in self.ends], "members": self.saved}
        finished = ctx.step >= ctx.schedule.total_steps or ctx.stop_message is not None  # not stopped, diverged
        if finished and self.states:
            out.update(self._scores(ctx))
        ctx.summary["snapshots"] = out

    def _scores(self, ctx: TrainContext) -> dict[str, Any]:
        """Each snapshot's and the ensemble's loss and accuracy on val (and test, when the run tests)."""
        t, data = ctx.config.train, ctx.data
        precision = resolve_precision(ctx.config)
        model = copy.deepcopy(ctx.model)
        splits = [s for s in ("val", "test") if len(getattr(data, f"{s}_y")) and (s == "val" or t.test)]
        logps: dict[str, list[torch.Tensor]] = {s: [] for s in splits}
        for state in self.states:
            model.load_state_dict(state)
            for s in splits:
                logps[s].append(log_probs(model, data, s, t.eval_batch_size, t.tta, precision))
        result: dict[str, Any] = {}
        for s in splits:
            r = score_members(logps[s], getattr(data, f"{s}_y"))
            for entry, m in zip(self.saved, r["members"]):
                entry[f"{s}_loss"], entry[f"{s}_acc"] = m["loss"], m["acc"]
            result[f"ensemble_{s}_loss"], result[f"ensemble_{s}_acc"] = r["ensemble"]["loss"], r["ensemble"]["acc"]
            result[f"mean_{s}_acc"], result[f"best_{s}_acc"] = r["mean_acc"], r["best_acc"]
        return result
