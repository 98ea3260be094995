"""The coarse-to-fine recipe: the LR range test, a short coarse search around its suggestion, then a refine stage.

    from labkit.babysit.recipe import coarse_to_fine
    r = coarse_to_fine(config, coarse_trials=12, fine_trials=8)   # 3-epoch coarse, 15-epoch fine
    print(r.text()); r.best_config

Decisions a user should know:
- The LR range test runs on `config` (unless `lr=` gives the centre) without
  its short confirming runs (the coarse search is a wider confirmation); its
  suggestion (the end of the loss curve's floor / 2) measured 1.7-2.6x below
  the best rate on two configs and 3-5x above it on the default recipe
  (benchmarks/RESULTS.md). The coarse range is log-uniform from suggestion x
  0.1 to suggestion x 30 (`lr_span`), with weight decay chosen from 0, 1e-5, 1e-4;
  a best trial at either end is widened past it by the fine stage (`refine`).
- Coarse trials are short (`coarse_epochs`, 1-5 is the lectures' advice),
  without probes or test-set evaluation; the fine stage searches
  `labkit.search.refine`'s narrower space around the top `top` coarse trials
  with `fine_epochs` (10-20) and the config's own test setting.
- Both stages are ordinary `run_search` studies named STUDY-coarse and
  STUDY-fine in `storage` (a journal under `out` when workers > 1, as
  run_search does), so `labkit search --report` plots them and rerunning
  resumes them. The best config is the best trial of either stage by
  validation accuracy, with the epochs it was trained for (a tie goes to the
  fine stage, which trained longer), and the config's own probe setting: the
  trials run without probes, the recommended run keeps them for diagnosis.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..config import Config
from ..errors import LabkitError
from ..fields import FIELDS, command_line
from .lr_finder import LRFinderResult, lr_range_test
from ..search.space import Space

WEIGHT_DECAYS = (0.0, 1e-5, 1e-4)
LR_SPAN = (0.1, 30.0)  # the coarse LR range, as factors of the LR test's suggestion
MAX_LR = FIELDS["optim.lr"].hi  # the coarse range stays where the validator accepts an LR


@dataclass
class RecipeResult:
    """What the recipe did: the LR test, both spaces and studies, and the best config it found."""

    lr: LRFinderResult | None
    center_lr: float
    coarse_space: Space
    fine_space: Space | None
    coarse: Any  # optuna Study
    fine: Any | None
    best_config: Config | None
    best_value: float | None
    best_stage: str | None
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """A readable summary: centre LR, each stage's space and best trial, the best config as a command."""
        lines = []
        if self.lr is not None:
            lines += self.lr.text().splitlines()
        lines.append(f"coarse space (centre lr {self.center_lr:.3g}): {self.coarse_space}")
        lines.append(_best_line("coarse", self.coarse))
        if self.fine_space is not None:
            lines.append(f"fine space (refined around the top coarse trials): {self.fine_space}")
            lines.append(_best_line("fine", self.fine))
        lines += [f"warning: {w}" for w in self.warnings]
        if self.best_config is not None:
            lines.append(f"best: val_acc {self.best_value:.4f} ({self.best_stage} stage); train it with:")
            lines.append(f"  {command_line(self.best_config)}")
        else:
            lines.append("no trial completed; nothing to recommend")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"lr": self.lr.to_dict() if self.lr else None, "center_lr": self.center_lr,
                "coarse_space": self.coarse_space.specs(), "fine_space": self.fine_space.specs() if self.fine_space else None,
                "coarse_study": self.coarse.study_name, "fine_study": self.fine.study_name if self.fine else None,
                "best_config": self.best_config.to_dict() if self.best_config else None,
                "best_value": self.best_value, "best_stage": self.best_stage, "warnings": list(self.warnings)}


def _best_trial(study: Any) -> Any | None:
    from ..search.analysis import completed_trials

    done = completed_trials(study)
    return done[0] if done else None


def _best_line(stage: str, study: Any) -> str:
    t = _best_trial(study) if study is not None else None
    n = len(study.get_trials(deepcopy=False)) if study is not None else 0
    if t is None:
        return f"  {stage}: {n} trial(s), none completed"
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    return f"  {stage}: {n} trial(s), best #{t.number} val_acc {t.value:.4f} with {params}"


def coarse_space(center_lr: float, *, lr_span: Sequence[float] = LR_SPAN,
                 weight_decays: Sequence[float] = WEIGHT_DECAYS) -> Space:
    """The coarse space: optim.lr log-uniform over center_lr x lr_span, optim.weight_decay from the given choices."""
    if not (isinstance(center_lr, (int, float)) and math.isfinite(center_lr) and center_lr > 0):
        raise LabkitError(f"centre lr {center_lr!r}; it must be a positive number (e.g. the LR test's suggestion)")
    lo_f, hi_f = (float(f) for f in lr_span)
    if not 0 < lo_f < hi_f:
        raise LabkitError(f"lr_span={tuple(lr_span)!r}; give (low, high) factors with 0 < low < high, e.g. (0.1, 30)")
    lo, hi = center_lr * lo_f, min(MAX_LR, center_lr * hi_f)
    if not lo < hi:
        raise LabkitError(f"the coarse lr range {lo:.3g}..{hi:.3g} is empty (optim.lr is at most {MAX_LR:g}); "
                          f"give a smaller centre lr")
    wds = list(dict.fromkeys(float(w) for w in weight_decays))
    wd = FIELDS["optim.weight_decay"]
    if not wds or any(not wd.in_range(w) for w in wds):
        raise LabkitError(f"weight_decays={tuple(weight_decays)!r}; give one or more values in {wd.range_text()}, "
                          f"e.g. 0, 1e-5, 1e-4")
    specs = [f"optim.lr=log:{lo:.4g}:{hi:.4g}", "optim.weight_decay=" + ",".join(f"{w:g}" for w in wds)]
    return Space.parse(specs)


def coarse_to_fine(
    config: Config,
    *,
    lr: float | None = None,
    lr_options: dict[str, Any] | None = None,
    coarse_trials: int = 12,
    fine_trials: int = 8,
    coarse_epochs: float = 3.0,
    fine_epochs: float = 15.0,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    lr_span: Sequence[float] = LR_SPAN,
    top: int = 3,
    sampler: str = "random",
    workers: int = 1,
    storage: Any = None,
    out: str | None = None,
    study: str = "recipe",
    pruner: str | None = None,
    stop_event: threading.Event | None = None,
    progress: bool = False,
) -> RecipeResult:
    """LR range test, coarse search around its suggestion, refine around the top trials; returns the studies and best config."""
    from ..search.analysis import border_warnings, refine_with_notes
    from ..search.run import run_search

    for name, v in (("coarse_epochs", coarse_epochs), ("fine_epochs", fine_epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise LabkitError(f"{name}={v!r}; give a positive number of epochs (coarse 1-5, fine 10-20 is the recipe)")
    for name, v in (("coarse_trials", coarse_trials), ("fine_trials", fine_trials), ("top", top)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "fine_trials" else 1):
            raise LabkitError(f"{name}={v!r}; give a whole number >= {0 if name == 'fine_trials' else 1}")
    base = config.copy().validate()
    out = out if out is not None else base.train.out
    stop_event = stop_event or threading.Event()
    say = print if progress else (lambda *a, **k: None)
    warnings: list[str] = []

    result = None
    if lr is None:
        say("LR range test ...", flush=True)
        # the curve's own reading (no short runs): the coarse search that follows is the confirmation, wider
        result = lr_range_test(base, **{"confirm": 0, **(lr_options or {})})
        say(result.text(), flush=True)
        lr = result.suggestion()
        if lr is None:
            lr = base.optim.lr
            warnings.append(f"the LR range test found no LR where the loss fell ({result.reason}); the coarse range "
                            f"is centred on the config's lr {lr:g} instead")
    space = coarse_space(lr, lr_span=lr_span, weight_decays=weight_decays)

    coarse_base = base.replace(**{"train.epochs": float(coarse_epochs), "train.steps": 0, "probe.every": 0,
                                  "train.test": False})
    common = dict(sampler=sampler, workers=workers, storage=storage, out=out, pruner=pruner, stop_event=stop_event,
                  progress=progress)
    say(f"coarse: {coarse_trials} trials of {coarse_epochs:g} epochs over {space}", flush=True)
    coarse = run_search(coarse_base, space, trials=coarse_trials, study=f"{study}-coarse", **common)
    warnings += border_warnings(coarse)

    fine, fine_space = None, None
    if fine_trials > 0 and _best_trial(coarse) is not None and not stop_event.is_set():
        fine_space, widened = refine_with_notes(coarse, top=top)
        warnings += [f"fine stage widened {w}" for w in widened]
        fine_base = base.replace(**{"train.epochs": float(fine_epochs), "train.steps": 0, "probe.every": 0})
        say(f"fine: {fine_trials} trials of {fine_epochs:g} epochs over {fine_space}", flush=True)
        fine = run_search(fine_base, fine_space, trials=fine_trials, study=f"{study}-fine", **common)

    best_config, best_value, stage = None, None, None
    # listed fine first: max() keeps the first of equal scores, and the fine stage trained longer
    candidates = [(st, t, epochs) for st, s, epochs in (("fine", fine, fine_epochs), ("coarse", coarse, coarse_epochs))
                  if s is not None and (t := _best_trial(s)) is not None]
    if candidates:
        stage, t, epochs = max(candidates, key=lambda c: c[1].value)
        best_config = base.replace(**{**t.params, "train.epochs": float(epochs), "train.steps": 0}).validate()
        best_value = float(t.value)
    return RecipeResult(result, float(lr), space, fine_space, coarse, fine, best_config, best_value, stage, warnings)
