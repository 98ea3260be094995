"""Ensembles of independently trained runs: their checkpoints' softmax averaged, scored on the test set.

    from labkit.ensemble import ensemble
    r = ensemble(["runs/a", "runs/b", "runs/c"])      # each run's best.pt; weights="ema" takes ema.pt
    print(r.table())                                  # each member, their mean, the best member, the ensemble
    r.acc, r.mean_acc, r.best.acc

Every member is rebuilt from its own config (model, normalization statistics, test-time augmentation,
precision) and scored as the run's own test pass scored it, so an ensemble of one run reproduces the run's
test accuracy. Members must have been trained on the same dataset and class set: an average of softmaxes
over different classes means nothing, so such runs are refused.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import Config
from .errors import LabkitError
from .runs import RunRecord, open_run

CHECKPOINTS = {"best": "best.pt", "ema": "ema.pt", "swa": "swa.pt"}  # --weights names; snapshot_<k> works too


@dataclass
class Member:
    """One run of an ensemble, scored alone on the common test set."""

    id: str
    dir: str
    checkpoint: str
    loss: float
    acc: float
    recorded: dict[str, Any] = field(default_factory=dict)  # the run's summary.json `final` (test_acc, ema_test_acc...)


@dataclass
class EnsembleResult:
    """The members' and the ensemble's test loss and accuracy (the ensemble: the mean of the members' softmax)."""

    dataset: str
    classes: list[str]
    images: int
    weights: str
    members: list[Member]
    loss: float
    acc: float

    @property
    def mean_acc(self) -> float:
        """The members' mean accuracy: what one model of this kind scores on average."""
        return sum(m.acc for m in self.members) / len(self.members)

    @property
    def best(self) -> Member:
        """The member with the highest test accuracy (picking it on the test set is optimistic)."""
        return max(self.members, key=lambda m: m.acc)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: what `labkit ensemble --json` prints."""
        return {"dataset": self.dataset, "classes": self.classes, "images": self.images, "weights": self.weights,
                "members": [dataclasses.asdict(m) for m in self.members],
                "mean_acc": self.mean_acc, "best_member": self.best.id, "best_acc": self.best.acc,
                "ensemble_loss": self.loss, "ensemble_acc": self.acc}

    def table(self) -> str:
        """Each member, their mean, the best member and the ensemble, one line each, accuracies in percent."""
        width = max(30, *(len(m.id) + 2 for m in self.members))
        lines = [f"ensemble of {len(self.members)} run{'s' * (len(self.members) != 1)}: {self.dataset} test set "
                 f"({self.images:,} examples), {self.weights} weights, softmax averaged",
                 f"{'':{width}}{'test acc':>10}{'test loss':>11}"]
        for m in self.members:
            lines.append(f"{m.id:{width}}{100 * m.acc:9.2f}%{m.loss:11.4f}")
        mean_loss = sum(m.loss for m in self.members) / len(self.members)
        lines.append(f"{'mean of the members':{width}}{100 * self.mean_acc:9.2f}%{mean_loss:11.4f}")
        lines.append(f"{'best member':{width}}{100 * self.best.acc:9.2f}%{self.best.loss:11.4f}  ({self.best.id})")
        gain = 100 * (self.acc - self.mean_acc)
        lines.append(f"{'ensemble':{width}}{100 * self.acc:9.2f}%{self.loss:11.4f}  "
                     f"({gain:+.2f} points over the mean, {100 * (self.acc - self.best.acc):+.2f} over the best)")
        return "\n".join(lines)


def _record(run: str | os.PathLike | RunRecord) -> RunRecord:
    rec = run if isinstance(run, RunRecord) else open_run(run, "pass run directories (`labkit runs` lists them)")
    if rec.config is None:
        raise LabkitError(f"run {rec.id} has no readable config.json; it cannot be rebuilt for an ensemble")
    return rec


def checkpoint_of(rec: RunRecord, weights: str) -> Path:
    """The checkpoint file of `weights` (best, ema, swa, snapshot_<k>) in a run, or the error naming those it has."""
    path = rec.dir / CHECKPOINTS.get(weights, f"{weights}.pt")
    if not path.is_file():
        have = sorted(p.stem for p in rec.dir.glob("*.pt"))
        why = {"best": "it ended before its first validation", "ema": "it was trained without --ema",
               "swa": "it was trained without --swa-start"}.get(weights, "no such checkpoint")
        raise LabkitError(f"run {rec.id} has no {path.name} ({why}); choose --weights from what it has: "
                          f"{', '.join(have) or 'none'}")
    return path


def _data_key(cfg: Config) -> tuple:
    """What must agree between members before loading: the dataset, its folder, a 2-D set's noise (the classes
    are compared as loaded: "" and every class by name are the same set)."""
    d = cfg.data
    return (d.dataset, d.folder if d.dataset == "folder" else None,
            d.noise if d.dataset not in ("cifar10", "cifar100", "folder") else None)


def _describe(cfg: Config) -> str:
    d = cfg.data
    parts = [d.dataset] + ([f"folder {d.folder}"] if d.dataset == "folder" else [])
    classes = getattr(d, "classes", None)
    if classes:
        parts.append(f"classes {classes}")
    if d.dataset not in ("cifar10", "cifar100", "folder"):
        parts.append(f"noise {d.noise:g}")
    return ", ".join(parts)


def check_compatible(records: Sequence[RunRecord]) -> None:
    """Refuse runs trained on different data or class sets (one line naming the runs and what differs)."""
    first = records[0]
    for rec in records[1:]:
        if _data_key(rec.config) != _data_key(first.config):
            raise LabkitError(f"runs trained on different data cannot form an ensemble: {first.id} used "
                              f"{_describe(first.config)}, {rec.id} used {_describe(rec.config)}; ensemble runs of "
                              "one dataset and class set")


def ensemble(runs: Sequence[str | os.PathLike | RunRecord], weights: str = "best") -> EnsembleResult:
    """Score the runs' checkpoints (`weights`: best, ema, swa or snapshot_<k>) alone and averaged, on the test set."""
    import torch

    from .data.sets import load_data
    from .precision import resolve_precision
    from .training.loop import build_run_model, own_threads
    from .training.snapshots import log_probs, score_members

    if not runs:
        raise LabkitError("an ensemble needs at least one run directory; `labkit runs` lists them")
    records = [_record(r) for r in runs]
    ids = [r.id for r in records]
    if len(set(map(str, (r.dir.resolve() for r in records)))) < len(records):
        raise LabkitError(f"a run is given twice ({', '.join(ids)}); an ensemble's members are distinct runs")
    check_compatible(records)
    paths = [checkpoint_of(r, weights) for r in records]
    reference = None
    logps, members = [], []
    for rec, path in zip(records, paths):
        cfg = rec.config
        with own_threads(cfg):
            data = load_data(cfg.data, cfg.train.seed)
            if reference is None:
                reference = data
            elif list(data.classes) != list(reference.classes):
                raise LabkitError(f"runs trained on different class sets cannot form an ensemble: {records[0].id} "
                                  f"has {', '.join(reference.classes)}; {rec.id} has {', '.join(data.classes)} "
                                  "(in label order); ensemble runs trained with the same --classes")
            elif data.kind == "image" and not (torch.equal(data.test_y, reference.test_y)
                                               and torch.equal(data.test_x, reference.test_x)):
                raise LabkitError(f"runs {records[0].id} and {rec.id} hold out different test images (a folder is "
                                  "split by seed); ensemble runs of one folder trained with the same --seed")
            # every member scores the first member's test examples (the 2-D sets draw theirs from the seed),
            # normalized by its own training statistics
            data = dataclasses.replace(data, test_x=reference.test_x, test_y=reference.test_y)
            model = build_run_model(cfg, data)
            try:
                model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
            except RuntimeError as e:
                raise LabkitError(f"{path} does not fit the model of run {rec.id}'s config.json "
                                  f"({str(e).splitlines()[0]}); was the file replaced?") from None
            t = cfg.train
            logps.append(log_probs(model, data, "test", t.eval_batch_size, t.tta, resolve_precision(cfg)))
    scores = score_members(logps, reference.test_y)
    for rec, path, s in zip(records, paths, scores["members"]):
        members.append(Member(rec.id, str(rec.dir), path.name, s["loss"], s["acc"],
                              dict(rec.summary.get("final") or {})))
    e = scores["ensemble"]
    return EnsembleResult(records[0].config.data.dataset, list(reference.classes), len(reference.test_y), weights,
                          members, e["loss"], e["acc"])
