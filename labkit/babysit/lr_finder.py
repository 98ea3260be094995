"""The LR range test: grow the learning rate exponentially for ~100 steps and watch the loss.

    from labkit.babysit.lr_finder import lr_range_test
    r = lr_range_test(config)            # 1e-7 -> 10 over 100 steps, the config's own data, model, optimizer
    r.suggestion(), r.edge_lr, r.minimum_lr, r.steepest_lr, r.why_none

Decisions a user should know:
- Each step uses the config's own pipeline (augmentation, batch size), loss
  (label smoothing, L1) and optimizer (momentum, weight decay, grad clipping);
  only the learning rate is overridden: lr_i = start * (end/start)^(i/(iters-1)).
- The loss is smoothed with a bias-corrected exponential moving average (as
  fastai and TensorBoard do); the test stops when the smoothed loss exceeds
  `diverge` times its best, or the loss is not finite.
- What the curve is read from: the raw losses smoothed by a centred Gaussian (sigma 3% of the steps),
  which, unlike the EMA, does not lag: an EMA of 0.98 remembers ~50 steps, 4 decades of LR in a
  100-step test, and moved the minimum that far to the right. The curve is cut where the loss, having
  fallen, climbs back above its start (divergence; a dead network's loss of ln C after a blow-up can
  be lower than the start, a second "minimum" that is no place to train).
- What the curve gives: the upper edge of its floor (the highest LR at which the smoothed loss is still
  within 20% of its fall above the minimum, `edge_lr`), `minimum_lr` (the floor's lowest point) and
  `steepest_lr` (steepest descent in log lr). The edge is the top of the usable range, but where to train
  below it differs by config: the best rate measured by training sat at ~1/6 of the edge on the default
  recipe (batch norm keeps a 100-step test's loss falling to lr ~3) and at about the edge on a 2-D MLP and
  an Adam MLP; no rule read from the curve alone fitted all three (benchmarks/RESULTS.md, "LR range test").
- So the suggestion is confirmed by training (`confirm`, 4 by default): short runs of the config itself
  (its model, data, optimizer and schedule, squeezed into 10% of the run's steps, at least 100 and at most
  all of them; no probes, test set, averaging or early stopping; into a temporary folder, not the run
  store) at the edge, edge / 2, / 4 and / 8, and the one with the lowest validation loss (training loss
  without a validation split) is the suggestion. Measured by training with it (benchmarks/lr_suggestion.py):
  1.07-2.64x from the tuned rate on all three configs and three seeds, within 1.5 points of its accuracy;
  the short runs cost 4 x 100 steps on the recipe. `confirm=0` reads the curve alone: the edge / 2 (1.7-2.6x
  below the best rate on the two MLPs, 1.9-3.3x above it on the recipe). Short runs are skipped when the
  test was given its own model (they would train the config's, not it).
- When the loss never falls clearly below its start (by less than 2% or one step's noise: a flat curve,
  e.g. a deep sigmoid net at N(0, 0.01)), there is no usable suggestion and no short run: `suggestion()`
  is None and `why_none` says why; likewise when every short run diverged.
- The model and optimizer given (or built) are restored exactly afterwards:
  parameters, batch-norm running statistics, optimizer state (momentum
  buffers, Adam moments, learning rates), gradients, train/eval mode and
  torch's global RNG, so training after the test is bit-identical to training
  without it. With a fixed seed the test gives the same answer every time.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.sets import Data
from ..errors import LabkitError
from ..fields import FIELDS
from ..optimizers import build_optimizer, needs_closure


FLOOR = 0.2  # the floor: where the smoothed loss is within this fraction of its fall above the minimum
BACKOFF = 2.0  # the suggestion is the floor's upper edge divided by this
CONFIRM_RUNS = 4  # short runs that confirm the suggestion: at the floor's end, / 2, / 4, / 8
CONFIRM_FRACTION, CONFIRM_MIN_STEPS = 0.1, 100  # each short run's steps: this fraction of the run's, at least this
MIN_FALL = 0.02  # a fall smaller than this fraction of the starting loss (or one step's noise) is no fall
SIGMA = 0.03  # the centred smoothing's width, as a fraction of the steps
SCORE_NAMES = {"val_loss": "validation loss", "train_loss": "training loss"}  # what a short run is scored by


@dataclass
class LRFinderResult:
    """What the LR range test saw: the LR and loss of each step, the curve read from them, and its suggestion."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]  # bias-corrected EMA, causal: what the stop rule watches
    steepest_lr: float | None  # steepest descent of the centred curve (slope in log lr), before its minimum
    minimum_lr: float | None  # LR at the centred curve's minimum (before any divergence)
    stopped_early: bool
    reason: str
    start: float = 1e-7
    end: float = 10.0
    iters: int = 100
    stop_lr: float | None = None  # LR of the step that stopped the test (None when it ran to the end)
    config_lr: float | None = None  # the config's own optim.lr, for comparison
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    edge_lr: float | None = None  # the highest LR still on the floor (within FLOOR of the fall above the minimum)
    centred: list[float] = field(default_factory=list)  # the lag-free smoothed loss the suggestion reads
    why_none: str = ""  # why there is no usable suggestion ("" when there is one)
    note: str = ""  # a caveat about the suggestion (e.g. the floor reaches the end of the range)
    trials: list[dict[str, Any]] = field(default_factory=list)  # the short runs that confirm it (see confirm_lr)

    @property
    def confirmed_lr(self) -> float | None:
        """The LR of the short run with the lowest score (None without a completed short run)."""
        done = [t for t in self.trials if t["status"] == "completed"]
        return min(done, key=lambda t: t["score"])["lr"] if done else None

    @property
    def min_lr(self) -> float | None:
        """The old rule of thumb, the minimum's LR / 10 (kept for comparison; `suggestion()` is the one to use)."""
        return self.minimum_lr / 10 if self.minimum_lr is not None else None

    def suggestion(self) -> float | None:
        """The LR to use: the best short run's when short runs confirmed it, else the floor's upper edge / 2;
        None when the curve gives none or every short run diverged (see `why_none`)."""
        if self.trials:
            return self.confirmed_lr
        return self.edge_lr / BACKOFF if self.edge_lr is not None and not self.why_none else None

    def how(self) -> str:
        """How the suggestion was reached, in a few words (for the text and the plot)."""
        if self.trials:
            return f"the best of {len(self.trials)} short runs"
        return f"the floor's end / {BACKOFF:g}"

    def score_name(self) -> str:
        """What the short runs were scored by, in words ("" without short runs)."""
        return SCORE_NAMES[self.trials[0]["metric"]] if self.trials else ""

    def fix(self) -> dict[str, float]:
        """The suggestion as a config change, {"optim.lr": lr} to 3 digits; {} when there is none."""
        s = self.suggestion()
        return {"optim.lr": float(f"{s:.3g}")} if s is not None else {}

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite losses become None)."""
        d = asdict(self)
        for k in ("losses", "smoothed", "centred"):
            d[k] = [v if math.isfinite(v) else None for v in d[k]]
        d["suggestion"] = self.suggestion()
        d["min_lr"] = self.min_lr
        d["fix"] = self.fix()
        return d

    def text(self) -> str:
        """Readable lines: what ran, where it stopped, what the curve showed and the suggestion (or why none)."""
        ran = (f"LR range test: lr {self.start:.3g} -> {self.end:.3g} over {self.iters} steps, "
               f"{len(self.lrs)} run; {self.reason}")
        fmt = lambda v: f"{v:.3g}" if v is not None else "none"  # noqa: E731
        s = self.suggestion()
        if s is None:
            return ran + f"\n  no usable suggestion: {self.why_none}"
        sugg = (f"  steepest descent: lr {fmt(self.steepest_lr)}   minimum: lr {fmt(self.minimum_lr)}   "
                f"floor ends: lr {fmt(self.edge_lr)}")
        if self.trials:
            t0 = self.trials[0]
            what = self.score_name() + ("" if t0["metric"] == "val_loss" else " (no validation split)")
            sugg += f"\n  short runs ({t0['steps']} steps each, the config's own schedule; {what}):"
            for t in self.trials:
                got = f"{t['score']:.4g}" if t["status"] == "completed" else t["status"]
                sugg += f"\n    lr {t['lr']:<8.3g} {got}" + ("   <- best" if t["lr"] == s else "")
        sugg += f"\n  -> suggested lr {fmt(s)} ({self.how()})"
        if self.config_lr:
            sugg += f"; the config has {self.config_lr:.3g}, {self.config_lr / s:.2g}x that"
        return ran + "\n" + sugg + (f"\n  note: {self.note}" if self.note else "")


def _check_args(start: float, end: float, iters: int, smooth: float, diverge: float, confirm: int = CONFIRM_RUNS
                ) -> None:
    for name, v in (("start", start), ("end", end)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise LabkitError(f"LR range test {name}={v!r}; it must be a positive finite learning rate, "
                              f"e.g. start=1e-7, end=10")
    if start >= end:
        raise LabkitError(f"LR range test start={start:g} >= end={end:g}; the LR grows from start to end, "
                          f"so start must be the smaller one (e.g. start=1e-7, end=10)")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 5:
        raise LabkitError(f"LR range test iters={iters!r}; give a whole number >= 5 (about 100 is usual)")
    if not isinstance(smooth, (int, float)) or not 0 <= smooth < 1:
        raise LabkitError(f"LR range test smooth={smooth!r}; the EMA factor must be in [0, 1) (0.98 is usual)")
    if not isinstance(diverge, (int, float)) or not math.isfinite(diverge) or diverge <= 1:
        raise LabkitError(f"LR range test diverge={diverge!r}; the stop factor must be > 1 (4 is usual: "
                          f"stop when the smoothed loss is 4x its best)")
    if isinstance(confirm, bool) or not isinstance(confirm, int) or not 0 <= confirm <= 8:
        raise LabkitError(f"LR range test confirm={confirm!r}; give the number of short runs that confirm the "
                          f"suggestion, 0 to 8 (4 is usual; 0 reads it from the curve alone: the floor's end / 2)")


def centred_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian-weighted moving average centred on each point (no lag), the ends padded with the end values."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    padded = np.concatenate([np.full(r, values[0]), values, np.full(r, values[-1])])
    return np.convolve(padded, k / k.sum(), mode="valid")


@dataclass
class CurveReading:
    """What a loss-vs-LR curve shows: its lag-free smoothing, the LRs worth naming, or why it shows nothing."""

    centred: list[float]
    steepest_lr: float | None = None
    minimum_lr: float | None = None
    edge_lr: float | None = None
    why_none: str = ""
    note: str = ""


def read_curve(lrs: list[float], losses: list[float]) -> CurveReading:
    """Read an LR range test's raw losses: the floor's minimum and upper edge, the steepest descent, or why none.

    The start level is the median of the first tenth; one step's noise is the spread of the differences of
    the first third (/sqrt 2). The curve is cut where it climbs back above its start after a fall; a fall
    smaller than 2% of the start or one step's noise gives no suggestion.
    """
    lr = np.asarray(lrs, dtype=float)
    raw = np.asarray(losses, dtype=float)
    ok = np.isfinite(raw) & np.isfinite(lr)
    lr, raw = lr[ok], raw[ok]
    n = len(raw)
    if n < 10:
        return CurveReading(raw.tolist(), why_none=f"only {n} finite losses were recorded (the test stopped almost "
                            f"at once): lower the start of the range or check the setup")
    c = centred_smooth(raw, max(1.0, SIGMA * n))
    head = max(5, n // 10)
    start = float(np.median(raw[:head]))
    noise = float(np.std(np.diff(raw[: max(head + 1, n // 3)])) / math.sqrt(2))
    need = max(MIN_FALL * abs(start), noise)
    # the first tenth is the start level (its tiny LRs train nothing), so a fall is looked for after it
    end, best = n, math.inf
    for i in range(head, n):  # cut at the climb back above the start (a blown-up network can settle lower: ln C)
        best = min(best, float(c[i]))
        if c[i] > start and best < start - need:
            end = i
            break
    i_min = head + int(np.argmin(c[head:end])) if end > head else 0
    fall = start - float(c[i_min])
    if fall < need or i_min == 0:
        return CurveReading(c.tolist(), why_none=(
            f"the loss never fell clearly below its start ({start:.3g} -> {float(c[i_min]):.3g} at best, "
            f"{fall / abs(start) if start else 0.0:.1%}; one step's noise is {noise:.2g}): no learning rate from "
            f"{lr[0]:.3g} to {lr[-1]:.3g} trained this network in {n} steps. A flat curve means the gradient does "
            f"not reach the weights (a saturating activation with a small init, a dead network): fix the "
            f"initialization or add batch norm, then test again"))
    top = float(c[i_min]) + FLOOR * fall
    r = i_min
    while r + 1 < end and c[r + 1] <= top:
        r += 1
    note = ""
    if r == n - 1:
        note = (f"the loss was still on its floor at the largest LR tried ({lr[-1]:.3g}): a larger end of the "
                f"range may find a higher edge")
    # steepest descent before the minimum, as a centred difference over +-5% of the steps (after the first fifth)
    steepest = None
    skip, w = n // 5, max(1, n // 20)
    if i_min > skip:
        idx = np.arange(skip, i_min + 1)
        a, b = np.maximum(idx - w, 0), np.minimum(idx + w, end - 1)
        slope = (c[b] - c[a]) / np.maximum(np.log(lr[b]) - np.log(lr[a]), 1e-12)
        j = int(np.argmin(slope))
        steepest = float(lr[idx[j]]) if slope[j] < 0 else None
    return CurveReading(c.tolist(), steepest, float(lr[i_min]), float(lr[r]), "", note)


class _Saved:
    """Exact copies of everything a few training steps change, to put back afterwards."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer):
        self.model_state = copy.deepcopy(model.state_dict())  # parameters and BN running stats
        self.opt_state = copy.deepcopy(opt.state_dict())
        self.grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self.modes = [m.training for m in model.modules()]
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    def restore(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        model.load_state_dict(self.model_state)
        opt.load_state_dict(self.opt_state)
        for p, g in zip(model.parameters(), self.grads):
            p.grad = g
        for m, mode in zip(model.modules(), self.modes):
            m.training = mode
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def lr_range_test(config: Config, *, start: float = 1e-7, end: float = 10.0, iters: int = 100,
                  smooth: float = 0.98, diverge: float = 4.0, confirm: int = CONFIRM_RUNS,
                  model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                  data: Data | None = None, progress: Callable[[str], None] | None = None) -> LRFinderResult:
    """Run the LR range test on `config` (or on the given model/optimizer/data) and restore them exactly; then
    `confirm` short runs of the config from the floor's end down pick the suggestion (0: the floor's end / 2).

    progress: called with a line as each short run starts (the lab and `labkit check` show it).
    """
    import time

    from ..training import own_threads

    _check_args(start, end, iters, smooth, diverge, confirm)
    cfg = config.copy().validate()
    if needs_closure(cfg.optim.name) or isinstance(optimizer, torch.optim.LBFGS):
        raise LabkitError(
            f"the LR range test cannot run with optimizer {cfg.optim.name!r}: L-BFGS chooses its own step length "
            f"by a line search (strong Wolfe), so its lr is not a learning rate the test could find; run the test "
            f"with a first-order optimizer (e.g. optimizer 'nesterov') or skip it (run_checks(lr_test=False); "
            f"`labkit check --no-lr-test`)")
    if model is None and optimizer is not None:
        raise LabkitError("lr_range_test got an optimizer without its model; pass model= too (or neither)")
    t0 = time.perf_counter()
    with own_threads(cfg):  # the short runs too: they set threads and reseed torch's RNG, given back after
        result = _run(cfg, start, end, iters, smooth, diverge, model, optimizer, data, t0)
        _confirm(result, cfg, confirm, model is not None, progress)
        result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _confirm(result: LRFinderResult, cfg: Config, confirm: int, own_model: bool,
             progress: Callable[[str], None] | None) -> None:
    """Pick `result`'s suggestion by `confirm` short runs from the floor's end down (see confirm_lr), in place."""
    if confirm and result.edge_lr is not None and not result.why_none:
        if own_model:
            result.note = "; ".join(filter(None, [result.note, (
                "no short runs: the test ran on a model given to it, and they would train the config's own; "
                "the suggestion is the floor's end / 2")]))
        else:
            lrs = [min(result.edge_lr / 2 ** k, FIELDS["optim.lr"].hi) for k in range(confirm)]
            result.trials = confirm_lr(cfg, lrs, progress)
            best = result.confirmed_lr
            if best is not None:
                if sum(t["status"] == "completed" for t in result.trials) > 1 and best in (lrs[0], lrs[-1]):
                    side = "highest" if best == lrs[0] else "lowest"
                    further = "higher" if best == lrs[0] else "lower"
                    result.note = "; ".join(filter(None, [result.note, (
                        f"the best short run was at the {side} rate tried ({best:.3g}): a {further} rate may train "
                        f"better still (`labkit search` around it, or a longer run to compare)")]))
            else:
                result.why_none = (f"every short run diverged (lr {lrs[-1]:.3g} to {lrs[0]:.3g}), though the "
                                   f"range test's loss fell up to lr {result.edge_lr:.3g}: the run's schedule "
                                   f"(its warmup, its length) cannot take these rates; add warmup or gradient "
                                   f"clipping, or test lower rates")


def confirm_lr(config: Config, lrs: list[float], progress: Callable[[str], None] | None = None
               ) -> list[dict[str, Any]]:
    """Train `config` briefly at each LR in `lrs`; return one dict per run: lr, steps, status, metric, score.

    Each short run is the config's own run (model, data, optimizer, augmentation and schedule) over 10% of its
    steps (at least 100, at most all), without probes, test set, weight averaging or early stopping, written
    into a temporary folder; its score is the last validation loss (the training loss without a validation
    split). A run that diverges has status "diverged" and no score.
    """
    from ..training import own_threads

    with own_threads(config):  # train() sets the thread count and reseeds torch's RNG: both given back after
        return _short_runs(config, lrs, progress or (lambda s: None))


def _short_runs(config: Config, lrs: list[float], say: Callable[[str], None]) -> list[dict[str, Any]]:
    import tempfile

    from ..data.sets import load_data
    from ..schedules import total_steps
    from ..training.loop import train

    total = total_steps(config, len(load_data(config.data, config.train.seed).train_y))
    steps = min(total, max(CONFIRM_MIN_STEPS, round(CONFIRM_FRACTION * total)))
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="labkit-lr-") as tmp:
        for i, lr in enumerate(lrs):
            say(f"short run {i + 1} of {len(lrs)}: lr {lr:.3g}, {steps} steps")
            cfg = config.replace(**{
                "optim.lr": float(lr), "train.steps": steps, "train.test": False, "probe.every": 0,
                "train.patience": 0, "train.ema": 0.0, "train.swa_start": 0.0, "train.snapshots": 1,
                "train.nproc": 1, "train.out": tmp, "train.name": "lr-confirm"})
            run = train(cfg)
            final = run.summary.get("final", {})
            metric = "val_loss" if final.get("val_loss") is not None else "train_loss"
            score = final.get(metric)
            ok = run.status == "completed" and score is not None and math.isfinite(score)
            out.append({"lr": float(lr), "steps": steps, "status": "completed" if ok else "diverged",
                        "metric": metric, "score": float(score) if ok else None,
                        "val_acc": final.get("val_acc")})
    return out


def _run(cfg: Config, start: float, end: float, iters: int, smooth: float, diverge: float, model: nn.Module | None,
         optimizer: torch.optim.Optimizer | None, data: Data | None, t0: float) -> LRFinderResult:
    import time

    from ..data.pipeline import TrainBatches
    from ..precision import resolve_precision
    from ..training import prepare
    from ..training.step import TrainStep, set_lr

    if model is None:
        built_data, model, optimizer, _ = prepare(cfg)
        data = data if data is not None else built_data
    elif data is None:
        from ..data.sets import load_data

        data = load_data(cfg.data, cfg.train.seed)
    if optimizer is None:
        optimizer = build_optimizer(model, cfg.optim)
    saved = _Saved(model, optimizer)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped, reason, stop_lr = False, f"ran all {iters} steps without diverging", None
    try:
        batches = TrainBatches(data, cfg.reg, cfg.train.batch_size, cfg.train.seed + 1)
        factor = (end / start) ** (1.0 / (iters - 1))
        step_fn = TrainStep(model, optimizer, cfg, resolve_precision(cfg))  # the run's own step and precision
        avg, best = 0.0, math.inf
        model.train()
        it = iter(())
        for i in range(iters):
            try:
                x, target, _ = next(it)
            except StopIteration:  # more steps than one epoch: keep drawing epochs from the same pipeline
                it = iter(batches.epoch())
                x, target, _ = next(it)
            lr = start * factor ** i
            set_lr(optimizer, lr)  # the base rate: groups keep their scales, as in training
            v = float(step_fn(x, target).loss)
            if not math.isfinite(v):
                stopped, stop_lr = True, lr
                reason = f"stopped at step {i + 1}: the loss became {v} at lr {lr:.3g}"
                break
            avg = smooth * avg + (1 - smooth) * v
            s = avg / (1 - smooth ** (i + 1))
            lrs.append(lr)
            losses.append(v)
            smoothed.append(s)
            if i > 0 and s > diverge * best:
                stopped, stop_lr = True, lr
                reason = (f"stopped at step {i + 1}, lr {lr:.3g}: the smoothed loss {s:.3g} exceeded "
                          f"{diverge:g}x its best ({best:.3g})")
                break
            best = min(best, s)
    finally:
        saved.restore(model, optimizer)
    # the stopping point is shown but not used: its loss is the divergence, not the landscape
    n = len(lrs) - 1 if stopped and stop_lr is not None and lrs and lrs[-1] == stop_lr else len(lrs)
    got = read_curve(lrs[:n], losses[:n])
    return LRFinderResult(lrs, losses, smoothed, got.steepest_lr, got.minimum_lr, stopped, reason, float(start),
                          float(end), iters, stop_lr, cfg.optim.lr, round(time.perf_counter() - t0, 3),
                          edge_lr=got.edge_lr, centred=got.centred, why_none=got.why_none, note=got.note)
