"""Sanity checks before training (the lectures' babysitting recipe), each with its numbers and likely causes.

    from labkit.babysit.checks import run_checks
    report = run_checks(config)          # initial loss, regularization, overfit 20 images, LR range test
    print(report.text()); report.passed

1. Initial loss, regularization off (label smoothing, weight decay, L1,
   dropout, mixup/cutmix off), against ln C for C classes: the lecture's first
   check is that it is about ln C. A network whose logits have std s across
   classes starts near ln C + s^2/2, so the band is in nats around ln C,
   whatever C: INITIAL_LOSS_BAND = ln C - 0.2 to ln C + 0.7 (s up to ~1.2:
   near-uniform first predictions). Measured here (512 examples, 2 seeds,
   2026-11-27): the default convnet (width 32, its logits scaled by 1/9) starts 0.00-0.09
   nats above ln 10 with every well-scaled init; MLPs and the ResNet with batch
   norm 0.02-0.48; MLPs without it up to 0.67 (He init, CIFAR-10) and 0.54
   (spirals). N(0, 1) init fails even with batch norm (convnet +0.9 to +1.5,
   MLP +4.2, ResNet +7.8 and more; spirals MLP +0.8 and +1.5) and by orders of
   magnitude without; so did the old default recipe (3.55 = ln 10 + 1.25).
   More than 0.2 below ln C (the loss of 512 examples varies by ~0.05 nats) an
   untrained network would already predict the labels, which only leaked
   labels or a wrong loss can do.
2. Adding regularization raises the loss: the config's own weight decay as
   the L2 term it is equivalent to (sum over the optimizer's decayed groups
   of wd/2 ||w||^2) and its L1 term, with label smoothing on the same logits
   (shown, not required: near-uniform first predictions make its change tiny
   and of either sign); a standard weight decay of 5e-4 when the config has
   neither weight decay nor L1. It fails when the penalty cannot act:
   all-zero weights, or an optimizer that applies no weight decay (L-BFGS).
3. Overfit a tiny balanced sample (20 images, regularization and
   augmentation off, the config's model, init, optimizer and constant peak
   LR, full batch) to 100% training accuracy within `overfit_steps`; it
   reports the steps needed and stops as soon as every image is right.

A failed check lists likely causes in words and, where a setting would fix
one, the same advice as data (`fixes`: config path -> value), which the CLI
prints as flags and the lab can apply.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data.sets import Data
from ..diagnosis.fixes import Fix, Option, changes_text, init_options
from ..diagnosis.fmt import round3
from ..errors import LabkitError
from .lr_finder import CONFIRM_RUNS, LRFinderResult, lr_range_test
from ..optimizers import build_optimizer, needs_closure
from ..precision import resolve_precision
from ..training import build_run_model
from ..training.step import TrainStep, set_lr

INITIAL_LOSS_BAND = (-0.2, 0.7)  # pass when ln C + low <= initial loss <= ln C + high, in nats (see the module doc)
STANDARD_WEIGHT_DECAY = 5e-4  # the regularization check's penalty when the config has none
STANDARD_L1 = 1e-5  # an L1 penalty to suggest where weight decay cannot act (a few hundredths of the loss here)
INIT_EXAMPLES = 512  # training examples in the initial-loss batch (its standard error is ~0.05 nats)


@dataclass
class CheckResult:
    """One check: pass or fail, a one-line summary with the numbers, the numbers, and likely causes on failure."""

    name: str
    passed: bool
    summary: str
    values: dict[str, float]
    causes: list[str]  # in words; the settings that would fix them are `fixes`
    curves: dict[str, list[float]] = field(default_factory=dict)  # per-step series for the figure (overfit)
    fixes: list[Fix] = field(default_factory=list)  # config changes to try, best first (empty when it passed)

    @property
    def fix(self) -> dict[str, Any]:
        """The first fix's changes (config path -> value); {} when there is none."""
        return dict(self.fixes[0].changes) if self.fixes else {}

    def to_dict(self) -> dict:
        """A JSON-ready dict (with `fix`, the first of `fixes`)."""
        return {**asdict(self), "fix": self.fix}


@dataclass
class CheckReport:
    """Every check of one config, the LR range test (None when skipped), and the seconds it all took."""

    checks: list[CheckResult]
    lr: LRFinderResult | None
    seconds: float
    notes: list[str] = field(default_factory=list)  # what ran how (and what was skipped, with why)
    title: str = ""

    @property
    def passed(self) -> bool:
        """True when every check passed (the LR range test informs; it does not pass or fail)."""
        return all(c.passed for c in self.checks)

    def text(self, fix_text: Callable[[dict[str, Any]], str] = changes_text) -> str:
        """The readable report; `fix_text` renders a fix's changes (the CLI passes its flags)."""
        lines = [self.title] if self.title else []
        for c in self.checks:
            lines.append(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<18} {c.summary}")
            if not c.passed:
                lines.append("        likely causes:")
                lines += [f"        - {cause}" for cause in c.causes]
                lines += [f"        {'try:' if i == 0 else '':<5}{fix_text(f.changes)}{f'  ({f.reason})' if f.reason else ''}"
                          for i, f in enumerate(c.fixes)]
        if self.lr is not None:
            lines += ["", *self.lr.text().splitlines()]
            if self.lr.fix():
                lines.append(f"  try: {fix_text(self.lr.fix())}")
        for n in self.notes:
            lines.append(f"note: {n}")
        failed = [c.name for c in self.checks if not c.passed]
        verdict = "all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}"
        lines += ["", f"{verdict} ({self.seconds:.1f} s)"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict (what `labkit check --json` prints)."""
        return {"passed": self.passed, "seconds": self.seconds, "title": self.title, "notes": list(self.notes),
                "checks": [c.to_dict() for c in self.checks], "lr": self.lr.to_dict() if self.lr else None}


# -- helpers ---------------------------------------------------------------------------------------------------

def without_regularization(config: Config) -> Config:
    """A copy of `config` with every regularizer and augmentation off (the checks' baseline)."""
    return config.replace(**{
        "reg.label_smoothing": 0.0, "reg.mixup": 0.0, "reg.cutmix": 0.0, "reg.cutout": 0, "reg.crop": 0,
        "reg.flip": False, "optim.weight_decay": 0.0, "optim.l1": 0.0, "model.dropout": 0.0,
        "model.dropconnect": 0.0,
    })


@dataclass
class InitBatch:
    """The untrained model (regularization off) and its logits on the first training examples."""

    model: nn.Module
    y: torch.Tensor
    logits: torch.Tensor

    @classmethod
    def make(cls, config: Config, data: Data, examples: int = INIT_EXAMPLES) -> "InitBatch":
        """Build the config's model (seeded, regularization off) and run one forward pass in training mode."""
        model = build_run_model(without_regularization(config), data)
        # the training set is stored in seeded random order, so its head is a fair sample
        n = min(examples, len(data.train_y))
        x, y = data.to_input(data.train_x[:n]), data.train_y[:n]
        model.train()  # what the first training step sees (batch statistics for batch norm)
        with torch.no_grad():
            logits = model(x)
        return cls(model, y, logits)


def _or_words(options: Sequence[Option]) -> str:
    """The options' words as one alternative ("use He init or Xavier init")."""
    return " or ".join(w for w, _ in options)


def _new(config: Config, fixes: Sequence[Fix]) -> list[Fix]:
    """Copies of the fixes that would change `config` (one it already has is no advice)."""
    return [Fix(dict(f.changes), f.reason) for f in fixes if f.changes_anything(config)]


def balanced_sample(data: Data, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of `n` training examples, as many per class as possible (round robin over the classes)."""
    g = torch.Generator().manual_seed(seed)
    per_class = [torch.nonzero(data.train_y == c).flatten() for c in range(data.num_classes)]
    per_class = [ix[torch.randperm(len(ix), generator=g)] for ix in per_class if len(ix)]
    out: list[int] = []
    k = 0
    while len(out) < n and any(k < len(ix) for ix in per_class):
        out += [int(ix[k]) for ix in per_class if k < len(ix)][: n - len(out)]
        k += 1
    return torch.tensor(out, dtype=torch.long)


# -- the checks ------------------------------------------------------------------------------------------------

def check_initial_loss(config: Config, data: Data, *, examples: int = INIT_EXAMPLES,
                       band: tuple[float, float] = INITIAL_LOSS_BAND, init: InitBatch | None = None) -> CheckResult:
    """The initial loss with regularization off against ln C (pass within ln C + band[0] .. ln C + band[1] nats)."""
    cfg = without_regularization(config)
    init = init or InitBatch.make(config, data, examples)
    y, logits = init.y, init.logits
    with torch.no_grad():
        loss = float(F.cross_entropy(logits, y))
        acc = float((logits.argmax(1) == y).float().mean())
        logit_std = float(logits.float().std(dim=1).mean())
    c = data.num_classes
    ln_c = math.log(c)
    ratio = loss / ln_c if math.isfinite(loss) else math.inf
    lo, hi = band
    excess = loss - ln_c if math.isfinite(loss) else math.inf
    passed = math.isfinite(loss) and lo <= excess <= hi
    values = {"loss": loss, "ln_c": ln_c, "classes": float(c), "ratio": ratio, "excess": excess,
              "logit_std": logit_std, "accuracy": acc, "chance": 1.0 / c, "band_low": ln_c + lo,
              "band_high": ln_c + hi, "examples": float(len(y))}
    summary = (f"{loss:.3g} vs ln {c} = {ln_c:.3f} ({excess:+.2f} nats, {ratio:.2f}x; pass within "
               f"{ln_c + lo:.3g}-{ln_c + hi:.3g}), logit std {logit_std:.2g}, {len(y)} examples")
    causes: list[str] = []
    fixes: list[Fix] = []
    if passed and excess > 0.35:
        summary += "; somewhat confident at the start (the first steps shrink the logits)"
    if not passed:
        init, act = cfg.model.init, cfg.model.activation
        if not math.isfinite(loss) or excess > hi:
            inits = init_options(cfg)
            fixes = [f for _, f in inits]
            causes = [
                f"init scale too large: init {init!r} gives logits with std {logit_std:.3g} at the start "
                f"(a well-scaled init gives about 1); {_or_words(inits)}"
                + (f" (activation here: {act})" if len(inits) > 1 else ""),
                "the classifier (last layer) starts too large: its outputs feed the softmax directly, so it wants "
                "gain 1 (or smaller)",
                "wrong loss: the targets or logits are on the wrong scale (e.g. logits multiplied by a temperature, "
                "one-hot targets that do not sum to 1)",
            ]
            if cfg.data.preprocess == "none":
                causes.append("inputs are not normalized (preprocessing: none): large inputs give large logits; "
                              "standardize them per channel")
                fixes.append(Fix({"data.preprocess": "standardize"}, "inputs of mean 0 and std 1 per channel"))
        else:
            causes = [
                f"the untrained network already predicts the labels (accuracy {acc:.0%} vs chance {1 / c:.0%}): "
                f"the labels leak into the inputs (a data/label mismatch in the pipeline)",
                f"wrong loss: not a cross-entropy over the {c} classes the data has (e.g. fewer output units "
                f"than classes, or a loss already reduced by the regularizers)",
            ]
    return CheckResult("initial loss", passed, summary, values, causes, fixes=_new(config, fixes))


def check_regularization(config: Config, data: Data, *, examples: int = INIT_EXAMPLES,
                         init: InitBatch | None = None) -> CheckResult:
    """Adding the config's regularization (or a standard weight decay) to the loss at init raises it."""
    wd, l1, ls = config.optim.weight_decay, config.optim.l1, config.reg.label_smoothing
    standard = wd == 0 and l1 == 0
    if standard:
        wd = STANDARD_WEIGHT_DECAY
    init = init or InitBatch.make(config, data, examples)
    model, y, logits = init.model, init.y, init.logits
    # the groups the optimizer would decay (weights only; biases and norm gains are not decayed)
    groups = build_optimizer(model, dataclasses.replace(config.optim, weight_decay=wd)).param_groups
    with torch.no_grad():
        plain = float(F.cross_entropy(logits, y))
        smoothed = float(F.cross_entropy(logits, y, label_smoothing=ls))
        l2 = sum(0.5 * g.get("weight_decay", 0.0) * sum(float(p.pow(2).sum()) for p in g["params"]) for g in groups)
        l1_term = l1 * sum(float(p.abs().sum()) for p in model.parameters() if p.ndim > 1)
        weight_sq = sum(float(p.pow(2).sum()) for p in model.parameters() if p.ndim > 1)
    reg = smoothed + l2 + l1_term
    raised = reg - plain
    # label smoothing barely moves the loss of near-uniform first predictions (either sign), so the verdict
    # rests on the weight penalty; smoothing's change is shown beside it
    penalty = l2 + l1_term
    passed = math.isfinite(reg) and penalty > 1e-6 * max(1.0, abs(plain))
    parts = [f"L2 {l2:.3g} (wd {wd:g}{', standard: the config has none' if standard else ''})"]
    if l1:
        parts.append(f"L1 {l1_term:.3g}")
    if ls:
        parts.append(f"label smoothing {ls:g}: {smoothed - plain:+.3g}")
    summary = f"{plain:.4g} -> {reg:.4g} ({raised:+.3g}: {', '.join(parts)})"
    if config.optim.name == "adamw" and not standard:
        summary += "; adamw decays decoupled, so the L2 term is its equivalent only for plain SGD"
    values = {"loss": plain, "loss_regularized": reg, "raised_by": raised, "penalty": penalty, "l2_term": l2, "l1_term": l1_term,
              "smoothing_delta": smoothed - plain, "weight_decay": wd, "l1": l1, "label_smoothing": ls,
              "weight_sq": weight_sq}
    causes: list[str] = []
    fixes: list[Fix] = []
    if not passed:
        if weight_sq == 0:
            inits = init_options(config)
            causes.append(f"every weight is zero (init {config.model.init!r}): a penalty on the weights adds "
                          f"nothing, and the units stay identical (symmetry); {_or_words(inits)}")
            fixes += [f for _, f in inits]
        if all(g.get("weight_decay", 0.0) == 0 for g in groups):
            causes.append(f"the optimizer applies no weight decay to any parameter ({config.optim.name}"
                          f"{': labkit builds L-BFGS without weight decay' if config.optim.name == 'lbfgs' else ''}); "
                          f"add an L1 penalty to the loss (e.g. {STANDARD_L1:g}), or use another optimizer")
            fixes.append(Fix({"optim.l1": STANDARD_L1}, "a penalty in the loss acts whatever the optimizer"))
        if not causes:
            causes.append("the regularization terms do not reach the loss: check that the penalty is added to the "
                          "loss (or the decay to the optimizer) the training loop actually uses")
    return CheckResult("regularization", passed, summary, values, causes, fixes=_new(config, fixes))


def _check_overfit_args(images: int, steps: int) -> None:
    if isinstance(images, bool) or not isinstance(images, int) or images < 2:
        raise LabkitError(f"overfit_images={images!r}; give a whole number >= 2 (20 is the usual tiny sample)")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise LabkitError(f"overfit_steps={steps!r}; give a whole number >= 1 (a few hundred is usual)")


def check_overfit(config: Config, data: Data, *, images: int = 20, steps: int = 300) -> CheckResult:
    """Train on `images` examples (regularization and augmentation off, full batch) until all are right."""
    _check_overfit_args(images, steps)
    cfg = without_regularization(config)
    idx = balanced_sample(data, images, cfg.train.seed)
    x, y = data.to_input(data.train_x[idx]), data.train_y[idx]
    target = F.one_hot(y, data.num_classes).float()
    model = build_run_model(cfg, data)
    opt = build_optimizer(model, cfg.optim)
    lr = cfg.optim.lr
    set_lr(opt, lr)
    step_fn = TrainStep(model, opt, cfg, resolve_precision(cfg))  # the step training takes, in its precision
    model.train()
    losses: list[float] = []
    accs: list[float] = []
    solved_at: int | None = None
    for step in range(steps + 1):
        # each step's forward pass (before its update) doubles as the accuracy check; the last one only looks
        if step < steps:
            out = step_fn(x, target)
            logits, loss = out.logits, out.loss
        else:
            with torch.no_grad():
                logits, loss = step_fn.forward(x, target)
        v = float(loss)
        acc = float((logits.argmax(1) == y).float().mean())
        losses.append(v)
        accs.append(acc)
        if not math.isfinite(v) or acc >= 1.0:
            if acc >= 1.0 and math.isfinite(v):
                solved_at = step
            break
    n = len(y)
    first, last = losses[0], losses[-1]
    values = {"images": float(n), "steps_allowed": float(steps), "steps": float(len(losses) - 1),
              "accuracy": accs[-1], "best_accuracy": max(accs), "loss_start": first, "loss_end": last, "lr": lr}
    if solved_at is not None:
        values["steps_to_100"] = float(solved_at)
    passed = solved_at is not None
    if passed:
        summary = f"100% of {n} images after {solved_at} steps (loss {first:.3g} -> {last:.3g}, lr {lr:g})"
    else:
        summary = (f"{max(accs):.0%} of {n} images at best in {len(losses) - 1} steps (loss {first:.3g} -> "
                   f"{last:.3g}, lr {lr:g})")
    causes: list[str] = []
    fixes: list[Fix] = []
    if not passed:
        if cfg.model.init == "zeros":
            inits = init_options(cfg)
            causes.append("init zeros: every unit of a layer computes the same thing and gets the same gradient, "
                          f"so the symmetry never breaks; {_or_words(inits)}")
            fixes += [f for _, f in inits]
        if not math.isfinite(last):
            causes.append(f"LR too high: the loss became {last} at step {len(losses) - 1} with lr {lr:g}; "
                          f"try a learning rate of {round3(lr / 10):g}")
            fixes.append(Fix({"optim.lr": round3(lr / 10)}, f"a tenth of {lr:g}"))
        elif last > 0.9 * first and cfg.model.init != "zeros":
            causes.append(f"LR too low: the loss barely moved ({first:.3g} -> {last:.3g}) with lr {lr:g}; "
                          f"try a learning rate of {round3(lr * 10):g} (or read the LR range test's suggestion)")
            causes.append(f"gradients do not reach the weights: init {cfg.model.init} (zeros keeps every unit "
                          f"identical; N(0, 1) saturates {cfg.model.activation}), or a dead network")
            fixes.append(Fix({"optim.lr": round3(lr * 10)}, f"10x {lr:g}"))
        else:
            causes.append(f"not enough steps: the loss fell {first:.3g} -> {last:.3g}; allow more "
                          f"({steps * 3} overfit steps instead of {steps}) or raise the LR (lr {lr:g})")
            if cfg.optim.lr > 0.3 and last > 0.3 * first:
                causes.append(f"LR too high to settle: lr {lr:g} makes the loss bounce; try a learning rate of "
                              f"{round3(lr / 3):g}")
                fixes.append(Fix({"optim.lr": round3(lr / 3)}, f"a third of {lr:g}"))
        causes.append(f"the model cannot memorize {n} examples (width {cfg.model.width}, "
                      f"depth {cfg.model.depth}): make it larger")
        fixes.append(Fix({"model.width": cfg.model.width * 2}, "twice as wide"))
        causes.append("a bug in the loss or the update (e.g. gradients not zeroed, the wrong labels' "
                      "logits used), which memorizing a few examples is the quickest test of")
    return CheckResult(f"overfit {n} images", passed, summary, values, causes,
                       curves={"loss": losses, "accuracy": accs}, fixes=_new(config, fixes))


def run_checks(config: Config, *, lr_test: bool = True, overfit_images: int = 20, overfit_steps: int = 300,
               progress: Callable[[str], None] | None = None,
               lr_options: dict[str, Any] | None = None) -> CheckReport:
    """Run the pre-training checks and (unless lr_test=False) the LR range test on `config`.

    lr_options: keyword arguments of lr_range_test (start, end, iters, smooth, diverge, confirm: the short runs
    that pick the suggestion, 0 to read it from the curve alone).
    """
    from ..data.sets import load_data
    from ..precision import resolve_device
    from .lr_finder import _check_args
    from ..training import own_threads

    t0 = time.perf_counter()
    cfg = config.copy().validate()
    # bad options fail at once, not after the checks that come before them
    if lr_test:
        opts = {"start": 1e-7, "end": 10.0, "iters": 100, "smooth": 0.98, "diverge": 4.0, "confirm": CONFIRM_RUNS,
                **(lr_options or {})}
        unknown = set(opts) - {"start", "end", "iters", "smooth", "diverge", "confirm"}
        if unknown:
            raise LabkitError(f"unknown LR range test option(s) {sorted(unknown)}; "
                              f"choose from start, end, iters, smooth, diverge, confirm")
        _check_args(**opts)
    _check_overfit_args(overfit_images, overfit_steps)
    say = progress or (lambda s: None)
    notes: list[str] = []
    with own_threads(cfg):
        data = load_data(cfg.data, cfg.train.seed).to(resolve_device(cfg.train.device))  # where training runs
        checks = []
        say("initial loss")
        init = InitBatch.make(cfg, data)  # one forward pass serves both loss-at-init checks
        checks.append(check_initial_loss(cfg, data, init=init))
        say("regularization raises the loss")
        checks.append(check_regularization(cfg, data, init=init))
        say(f"overfit {overfit_images} images")
        checks.append(check_overfit(cfg, data, images=overfit_images, steps=overfit_steps))
        result = None
        if lr_test and needs_closure(cfg.optim.name):
            notes.append(f"LR range test skipped: {cfg.optim.name} picks its step length by a line search, so its "
                         f"lr is not a learning rate to find")
        elif lr_test:
            say("LR range test")
            result = lr_range_test(cfg, data=data, progress=say, **(lr_options or {}))
    m = cfg.model
    title = (f"labkit check: {cfg.data.dataset} ({len(data.train_y)} training examples, {data.num_classes} classes), "
             f"{m.kind} depth {m.depth} width {m.width} {m.activation}, init {m.init}, norm {m.norm}; "
             f"{cfg.optim.name} lr {cfg.optim.lr:g}, seed {cfg.train.seed}")
    return CheckReport(checks, result, round(time.perf_counter() - t0, 3), notes, title)
