"""Diagnosis of a training run: what is wrong, the numbers that show it, and what to try.

`diagnose(metrics, probes, config)` reads a run's metric rows (the dicts of
metrics.jsonl: start / step / epoch / end) and its probe history and returns
`Finding`s, each with its evidence as numbers, a concrete suggestion (the
flag to change) and the name of the `run_figures` plot that shows it. It runs
the lectures' babysitting recipe: read the loss curve (flat, rising, NaN,
plateau then drop), the train/validation gap (overfitting, underfitting), the
update/weight ratio (~1e-3), and the insides (dead ReLUs, saturated
sigmoid/tanh, activations collapsing with depth, zero-init symmetry).

It never guesses: a check without enough data says so as an "info" finding
with code "not_judged". `diagnose_run(run_dir)` diagnoses a stored run
(finished, stopped, diverged, killed or still running); `LiveDiagnosis` is an
event subscriber that keeps the rows of a live run and diagnoses on demand.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .config import Config
from .errors import LabkitError
from .events import Event, ProbeEvent
from .probes import ProbeHistory

SEVERITIES = ("alarm", "warn", "info")

# -- thresholds (each one says why it is where it is) ------------------------------------------------
MIN_TREND_STEPS = 50  # the batch loss is noisy: fewer steps than this cannot show a trend
FLAT_DROP = 0.10  # "flat": the loss fell by less than 10% from the first steps to the latest (healthy runs fall 40-90%)
FLAT_ALARM = 0.02  # under 2% it is not slow, it is not learning at all
LOW_LOSS = 0.5  # a loss below half of ln C has already learned something: flat there is converged, not stuck
RATIO_MOVING = 3e-4  # with updates above this (the low edge of the plots' 1e-3 band) a flat loss is not the LR's fault
RISE_FACTOR = 1.5  # the latest loss 1.5x the initial one: training is making the model worse, the LR is too high
EXPLODE_FACTOR = 10.0  # any stretch of the loss 10x the initial one: it blew up, even if it came back
PLATEAU_BAND = 0.05  # a plateau: the loss stays within 5% of its initial value
PLATEAU_MIN_STEPS = 30  # ... for at least this many steps and 3 chunks (shorter is the normal start)
PLATEAU_DROP = 0.25  # then falls 25% below it within half the plateau's length: the classic bad-init curve
WARMUP_LR = 0.5  # a plateau while the LR is below half its peak is warmup doing its job, not bad init
MIN_EPOCHS_GAP = 2  # one epoch is one point: a gap needs at least two to be "growing"
OVERFIT_GAP = 0.15  # train accuracy 15 points above validation is more than augmentation noise explains
GAP_GROWTH = 0.05  # ... and 5 points wider than early on
VAL_RISE = 0.10  # or the validation loss 10% above its minimum while the train loss still falls
OVERFIT_ALARM_RISE = 0.20  # validation loss 20% above its best: the model is getting worse on new data
UNDERFIT_GAP = 0.05  # train and validation within 5 points: the model is not memorizing
UNDERFIT_LEVEL = 0.5  # "low" accuracy: below halfway from chance (1/C) to 100% on the TRAINING set, which
# every model of this lab's sizes can fit (spirals ~99%, 5k-image CIFAR-10 convnet ~70-90% train)
STILL_IMPROVING = 0.02  # the train loss fell >2% over the last two epochs: training longer still pays
UPDATE_TARGET = 1e-3  # the lectures' rule of thumb for ||dW|| / ||W|| per step
UPDATE_HIGH = 3e-2  # 30x above 1e-3: each step rewrites 3% of the weights (healthy Adam/SGD runs here: 1e-3 to 1e-2)
UPDATE_LOW = 3e-5  # 30x below: a thousand steps move the weights by 3%, far too slow for these short runs
UPDATE_ALARM = 30.0  # a further 30x beyond either bound is an alarm
RECENT = 5  # snapshots in the "recent window" (at probe.every=25: the last 125 steps)
DEAD_WARN = 0.5  # half of a layer's ReLUs silent on the whole probe batch: its capacity is halved
DEAD_ALARM = 0.9  # 90%: the layer passes almost nothing; gradients through it are mostly zero
SAT_INIT = 0.2  # at step 0, a fifth of sigmoid/tanh values at their limits (Xavier init: under 6%)
SAT_LATE = 0.6  # later in training confident nets saturate (a trained tanh spirals MLP: 40-60%)
CONFIDENT = 0.8  # ... so late saturation is judged only while train accuracy is below 80% of the way to 100%
COLLAPSE_RATIO = 0.1  # a deeper layer's activation std under a tenth of the first's, shrinking layer by layer to it
COLLAPSE_ALARM = 1e-3  # under a thousandth the deep layers carry no signal at all
MIN_COLLAPSE_LAYERS = 3  # "across depth" needs at least three activation layers
SYMMETRY_TOL = 1e-6  # units whose outputs agree to 1e-6 (relative) are the same unit

PLOT_CURVES, PLOT_STATS, PLOT_GRADS = "learning_curves", "activation_stats", "gradients"
PLOT_FIRST = "activations_first"  # the step-0 histograms: the lectures' picture of a bad init


@dataclass
class Finding:
    """One diagnosis: what is wrong, the numbers that show it, what to try, and the plot that shows it."""

    code: str  # lr_too_low, lr_too_high, diverged, bad_init_plateau, overfitting, underfitting, update_ratio_high,
    # update_ratio_low, dead_units, saturated_units, activation_collapse, symmetry; not_judged (too little data yet)
    severity: str  # "alarm" | "warn" | "info"
    title: str
    evidence: str
    suggestion: str
    plot: str  # the run_figures name that shows the evidence
    step: int | None = None
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


# -- small helpers ---------------------------------------------------------------------------------------
def _f(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def _g(v: float, digits: int = 3) -> str:
    """A number for a sentence: 3 significant digits, scientific when tiny or huge."""
    return f"{v:.{digits}g}" if math.isfinite(v) else str(v)


def _pct(v: float) -> str:
    return f"{v:.0%}" if abs(v) >= 0.1 else f"{v:.1%}"


def _nice(v: float) -> float:
    """`v` rounded to 1, 2, 3 or 5 times a power of ten (a value a person would type)."""
    if not (math.isfinite(v) and v > 0):
        return v
    e = math.floor(math.log10(v))
    m = v / 10**e
    m = 1 if m < 1.5 else 2 if m < 2.5 else 3 if m < 4 else 5 if m < 7.5 else 10
    return float(f"{m * 10**e:.3g}")


def _sort(findings: list[Finding]) -> list[Finding]:
    order = {"alarm": 0, "warn": 1, "info": 2}
    return sorted(findings, key=lambda f: (order.get(f.severity, 3), f.code == "not_judged"))


def _not_judged(check: str, title: str, evidence: str, suggestion: str, plot: str = PLOT_CURVES) -> Finding:
    return Finding("not_judged", "info", title, evidence, suggestion, plot, values={"check": check})


class _Run:
    """The rows of one run, split by kind, with the numbers the checks share."""

    def __init__(self, metrics: Sequence[dict], config: Config | None):
        self.config = config
        self.start = next((r for r in metrics if r.get("kind") == "start"), None)
        self.end = next((r for r in reversed(metrics) if r.get("kind") == "end"), None)
        steps = sorted((r for r in metrics if r.get("kind") == "step"), key=lambda r: int(r.get("step", 0)))
        self.step_no = np.array([int(r.get("step", 0)) for r in steps], dtype=int)
        self.loss = np.array([_f(r.get("loss")) for r in steps])
        self.lr = np.array([_f(r.get("lr")) for r in steps])
        self.epochs = [r for r in metrics if r.get("kind") == "epoch"]
        self.classes = int(self.start["classes"]) if self.start and self.start.get("classes") else None
        self.chance = 1.0 / self.classes if self.classes and self.classes > 1 else None
        self.ln_c = math.log(self.classes) if self.classes and self.classes > 1 else None
        finite = self.lr[np.isfinite(self.lr)]
        self.peak_lr = float(finite.max()) if finite.size else (config.optim.lr if config else math.nan)
        self.status = (self.end or {}).get("status")

    @property
    def n(self) -> int:
        return len(self.loss)

    def window(self) -> int:
        return max(5, min(50, self.n // 10))

    def lr_at(self, step: int) -> float:
        """The LR the optimizer used for step `step` -> step + 1 (the step row numbered step + 1)."""
        i = int(np.searchsorted(self.step_no, step + 1))
        if i < len(self.step_no) and self.step_no[i] == step + 1:
            return float(self.lr[i])
        return math.nan


# -- the checks ----------------------------------------------------------------------------------------
def _divergence(run: _Run) -> list[Finding]:
    out: list[Finding] = []
    loss, n = run.loss, run.n
    lr_txt = _g(run.peak_lr)
    lower = run.peak_lr / 10 if math.isfinite(run.peak_lr) and run.peak_lr > 0 else None
    fix = (f"lower the LR: try --lr {_g(lower)} (a tenth)" if lower else "lower the LR (try a tenth)") + \
        ", add warmup (--warmup 1) or gradient clipping (--grad-clip 1), or batch norm (--norm batch); " \
        "`labkit check` runs the LR range test"
    bad = ~np.isfinite(loss)
    if run.status == "diverged" or bad.any():
        ok = loss[np.isfinite(loss)]
        where = int(run.step_no[int(np.argmax(bad))]) if bad.any() else (int(run.step_no[-1]) + 1 if n else 0)
        msg = str((run.end or {}).get("message") or f"loss became nan at step {where}")
        ev = msg.split(";")[0]
        if ok.size:
            ev += f"; the loss was {_g(float(ok[0]))} at step {int(run.step_no[0])} and {_g(float(ok[-1]))} " \
                  f"at step {int(run.step_no[np.isfinite(loss)][-1])} (max {_g(float(ok.max()))}); peak LR {lr_txt}"
        out.append(Finding("diverged", "alarm", "Training diverged: the loss blew up (NaN, infinite, or 10,000x where it started)", ev, fix,
                           PLOT_CURVES, where, {"peak_lr": run.peak_lr, "last_finite_loss": float(ok[-1]) if ok.size else None}))
    # a run the loop stopped for divergence is judged on its few steps too: lr 10 blows up within 5 steps
    if n >= 10 or (run.status == "diverged" and n >= 3):
        w = run.window()
        init = float(loss[0]) if math.isfinite(loss[0]) else math.nan
        chunks = [np.nanmedian(loss[i:i + w]) for i in range(0, n - w + 1, w)] if n >= w else []
        last = float(np.nanmedian(loss[-w:])) if np.isfinite(loss[-w:]).any() else math.nan
        peak = float(np.nanmax(chunks)) if chunks and np.isfinite(chunks).any() else math.nan
        if math.isfinite(init) and init > 0 and (last > RISE_FACTOR * init or peak > EXPLODE_FACTOR * init):
            k = int(np.nanargmax(chunks)) if chunks else 0
            ev = (f"loss {_g(init)} at step {int(run.step_no[0])}, median {_g(last)} over the last {w} steps "
                  f"(x{_g(last / init, 2)}), peak median {_g(peak)} around step {int(run.step_no[min(n - 1, k * w)])}; "
                  f"peak LR {lr_txt}")
            out.append(Finding("lr_too_high", "alarm", "Learning rate too high: the loss rises instead of falling", ev,
                               fix, PLOT_CURVES, int(run.step_no[-1]),
                               {"initial_loss": init, "last_loss": last, "peak_loss": peak, "peak_lr": run.peak_lr}))
    return out


def _flat(run: _Run, update_ratio: float | None) -> tuple[Finding | None, Finding | None]:
    """(lr_too_low finding or None, not_judged note or None)."""
    n = run.n
    if n < MIN_TREND_STEPS:
        return None, _not_judged("loss_trend", "Loss trend: too few steps to judge yet",
                                 f"{n} step(s) recorded; a flat or plateaued loss needs at least {MIN_TREND_STEPS}",
                                 "let the run go on", PLOT_CURVES)
    w = run.window()
    first, last = float(np.nanmedian(run.loss[:w])), float(np.nanmedian(run.loss[-w:]))
    if not (math.isfinite(first) and math.isfinite(last)) or first <= 0:
        return None, None
    change = (last - first) / first
    low = LOW_LOSS * run.ln_c if run.ln_c else 0.0
    if not (-FLAT_DROP < change < RISE_FACTOR - 1) or last < low:
        return None, None
    if update_ratio is not None and update_ratio >= RATIO_MOVING:
        return None, None  # the weights move at a healthy rate: the LR is not what holds the loss back
    s0, s1 = int(run.step_no[0]), int(run.step_no[-1])
    ev = (f"loss {_g(first)} over steps {s0}-{int(run.step_no[min(w, n) - 1])} and {_g(last)} over steps "
          f"{int(run.step_no[-w])}-{s1} ({change:+.1%})")
    if run.ln_c:
        ev += f"; chance is ln {run.classes} = {run.ln_c:.3f}"
    ev += f"; LR {_g(run.peak_lr)}"
    factor = 100.0
    if update_ratio is not None and math.isfinite(update_ratio):
        ev += f"; median update/weight ratio {update_ratio:.1e} (rule of thumb ~1e-3)"
        if update_ratio > 0:
            factor = float(np.clip(UPDATE_TARGET / update_ratio, 10, 1e5))
    new = _nice(run.peak_lr * factor) if math.isfinite(run.peak_lr) else None
    sev = "alarm" if abs(change) < FLAT_ALARM or (update_ratio is not None and update_ratio < UPDATE_LOW) else "warn"
    sug = (f"raise the LR: try --lr {_g(new)}" if new else "raise the LR") + \
        ", or run `labkit check` for the LR range test"
    return Finding("lr_too_low", sev, "Learning rate too low: the loss is flat from the start", ev, sug, PLOT_CURVES,
                   s1, {"first_loss": first, "last_loss": last, "change": change, "lr": run.peak_lr,
                        "update_ratio": update_ratio}), None


def _plateau(run: _Run) -> Finding | None:
    n = run.n
    if n < 2 * MIN_TREND_STEPS:
        return None
    w = max(5, n // 40)
    chunks = np.array([np.nanmedian(run.loss[i:i + w]) for i in range(0, n - w + 1, w)])
    l0 = float(chunks[0])
    if not math.isfinite(l0) or l0 <= 0:
        return None
    p = 0
    while p < len(chunks) and abs(chunks[p] - l0) <= PLATEAU_BAND * l0:
        p += 1
    if p < 3 or p * w < PLATEAU_MIN_STEPS or p >= len(chunks):
        return None
    reach = max(2, p // 2)
    after = chunks[p:p + reach + 1]
    hit = np.nonzero(after <= l0 * (1 - PLATEAU_DROP))[0]
    if not hit.size:
        return None
    plateau_lr = np.nanmean(run.lr[: p * w])
    if math.isfinite(plateau_lr) and plateau_lr < WARMUP_LR * run.peak_lr:
        return None  # the LR was still warming up: the plateau is the schedule, not the init
    j = p + int(hit[0])
    s_end, s_drop = int(run.step_no[p * w - 1]), int(run.step_no[min(n - 1, (j + 1) * w - 1)])
    ev = (f"loss stayed within {PLATEAU_BAND:.0%} of {_g(l0)} for {p * w} steps (to step {s_end}), then fell to "
          f"{_g(float(chunks[j]))} by step {s_drop} ({(chunks[j] - l0) / l0:+.0%})")
    sug = ("the init is too small or unlucky, so learning waits to break out: use --init kaiming (ReLU family) or "
           "--init xavier (tanh, sigmoid), or add batch norm (--norm batch)")
    return Finding("bad_init_plateau", "warn", "Plateau, then a sudden drop: a bad initialization", ev, sug,
                   PLOT_CURVES, s_end, {"plateau_loss": l0, "plateau_steps": p * w, "drop_step": s_drop})


def _epoch_gap(run: _Run) -> tuple[list[Finding], list[Finding]]:
    """(findings, notes) about overfitting and underfitting from the epoch rows."""
    ep = [r for r in run.epochs if math.isfinite(_f(r.get("val_acc"))) and math.isfinite(_f(r.get("train_acc")))]
    if len(ep) < MIN_EPOCHS_GAP:
        why = (f"{len(run.epochs)} epoch(s) recorded without a validation split (val_size 0)"
               if run.epochs and not ep else f"{len(ep)} epoch(s) with validation so far")
        return [], [_not_judged("generalization", "Overfitting / underfitting: not judged yet",
                                f"{why}; the train/validation gap needs at least {MIN_EPOCHS_GAP}",
                                "keep a validation split (--val-size 1000)" if run.epochs and not ep
                                else "let the run go on (or train for at least 2 epochs)", PLOT_CURVES)]
    tr = np.array([_f(r["train_acc"]) for r in ep])
    va = np.array([_f(r["val_acc"]) for r in ep])
    vl = np.array([_f(r.get("val_loss")) for r in ep])
    tl = np.array([_f(r.get("train_loss")) for r in ep])
    e = [int(r.get("epoch", i + 1)) for i, r in enumerate(ep)]
    gap = tr - va
    g_last = float(np.mean(gap[-2:]))
    half = max(1, len(gap) // 2)
    k0 = int(np.argmin(gap[:half]))
    g0 = float(gap[k0])
    kmin = int(np.nanargmin(vl)) if np.isfinite(vl).any() else None
    vrise = float(vl[-1] / vl[kmin] - 1) if kmin is not None and vl[kmin] > 0 else 0.0
    train_falls = math.isfinite(tl[-1]) and kmin is not None and tl[-1] < tl[kmin]
    cfg = run.config
    out: list[Finding] = []
    growing = g_last - g0 >= GAP_GROWTH or (vrise >= VAL_RISE and train_falls)
    if g_last >= OVERFIT_GAP and growing:
        ev = (f"train accuracy {tr[-1]:.1%} vs validation {va[-1]:.1%} at epoch {e[-1]} (gap {_pct(g_last)}, "
              f"{_pct(g0)} at epoch {e[k0]})")
        if kmin is not None:
            ev += (f"; validation loss {_g(float(vl[-1]))}, {vrise:+.0%} from its minimum {_g(float(vl[kmin]))} "
                   f"at epoch {e[kmin]}")
        sev = "alarm" if vrise >= OVERFIT_ALARM_RISE else "warn"
        out.append(Finding("overfitting", sev, "Overfitting: a large and growing train/validation gap", ev,
                           _regularize(cfg), PLOT_CURVES, int(ep[-1].get("step", 0)) or None,
                           {"gap": g_last, "early_gap": g0, "val_loss_rise": vrise, "train_acc": float(tr[-1]),
                            "val_acc": float(va[-1])}))
    elif abs(g_last) < UNDERFIT_GAP and run.chance is not None:
        low = run.chance + UNDERFIT_LEVEL * (1 - run.chance)
        if tr[-1] < low:
            # with fewer than 3 epochs it is too early to call the model too small: count it as still improving
            improving = len(tl) < 3 or not math.isfinite(tl[-3]) or tl[-1] < tl[-3] * (1 - STILL_IMPROVING)
            ev = (f"train accuracy {tr[-1]:.1%}, validation {va[-1]:.1%} at epoch {e[-1]} (gap {_pct(g_last)}); "
                  f"chance is 1/{run.classes} = {run.chance:.1%}, and a model that can fit this data reaches well "
                  f"above {low:.0%} on the training set")
            if len(tl) >= 3:
                ev += f"; train loss {_g(float(tl[-3]))} -> {_g(float(tl[-1]))} over the last two epochs"
            out.append(Finding("underfitting", "info" if improving else "warn",
                               "Underfitting: no gap, and low accuracy" + (" (still improving)" if improving else ""),
                               ev, _grow(cfg, improving), PLOT_CURVES, int(ep[-1].get("step", 0)) or None,
                               {"gap": g_last, "train_acc": float(tr[-1]), "val_acc": float(va[-1]), "level": low,
                                "improving": improving}))
    return out, []


def _regularize(cfg: Config | None) -> str:
    tips = []
    if cfg is None:
        return ("more regularization (--weight-decay 5e-4, --dropout 0.3, augmentation: --flip true --crop 4, "
                "--cutout 8, --mixup 0.2), more data (a larger --subset), or early stopping (--patience 3)")
    from .data import is_image

    if cfg.optim.weight_decay <= 0:
        tips.append("weight decay (--weight-decay 5e-4)")
    else:
        tips.append(f"stronger weight decay (--weight-decay {_g(_nice(cfg.optim.weight_decay * 5))})")
    if cfg.model.dropout <= 0:
        tips.append("dropout (--dropout 0.3)")
    image = is_image(cfg.data.dataset)
    if image:
        aug = []
        if not cfg.reg.flip:
            aug.append("--flip true")
        if cfg.reg.crop <= 0:
            aug.append("--crop 4")
        if cfg.reg.cutout <= 0:
            aug.append("--cutout 8")
        if cfg.reg.mixup <= 0 and cfg.reg.cutmix <= 0:
            aug.append("--mixup 0.2")
        if aug:
            tips.append("augmentation (" + ", ".join(aug) + ")")
    text = "more regularization: " + ", ".join(tips)
    if image and 0 < cfg.data.subset < 50000:
        text += f"; more data (--subset {min(50000, cfg.data.subset * 4)})"
    elif not image:
        text += f"; more data (--points {cfg.data.points * 4})"
    if cfg.train.patience <= 0:
        text += "; early stopping (--patience 3) keeps the best epoch"
    return text


def _grow(cfg: Config | None, improving: bool) -> str:
    tips = []
    if cfg is None:
        return "a bigger model (--width, --depth), less regularization, or train longer (--epochs)"
    tips.append(f"a bigger model (--width {cfg.model.width * 2} or --depth {cfg.model.depth + 1})")
    less = []
    if cfg.optim.weight_decay > 0:
        less.append(f"--weight-decay {_g(cfg.optim.weight_decay / 10)}")
    if cfg.model.dropout > 0:
        less.append("--dropout 0")
    if cfg.reg.mixup > 0 or cfg.reg.cutmix > 0:
        less.append("--mixup 0 --cutmix 0")
    if cfg.reg.label_smoothing > 0:
        less.append("--label-smoothing 0")
    if less:
        tips.append("less regularization (" + ", ".join(less) + ")")
    longer = f"train longer (--epochs {_g(cfg.train.epochs * 2)})"
    return ", ".join([longer] + tips if improving else tips + [longer])


# -- probe-based checks ------------------------------------------------------------------------------------
def _update_window(run: _Run, h: ProbeHistory, early: bool) -> tuple[float | None, list[int]]:
    """Median over weight tensors, then over the window, of the update/weight ratio; and the window's steps."""
    weights = h.weight_params()
    if not weights:
        return None, []
    ur = np.array([h.param_series(p, "update_ratio") for p in weights])  # (weights, snapshots)
    ok = np.isfinite(ur).any(axis=0)
    idx = [i for i in range(len(h)) if ok[i]]
    if len(idx) > 1:
        idx = [i for i in idx if h.steps[i] > 0] or idx  # step 0 of Adam moves every weight by ~lr: not typical
    if not idx:
        return None, []
    if early:
        idx = idx[:RECENT]
    else:
        lrs = np.array([run.lr_at(h.steps[i]) for i in idx])
        if np.isfinite(lrs).any():
            near = [i for i, lr in zip(idx, lrs) if math.isfinite(lr) and lr >= WARMUP_LR * np.nanmax(lrs)]
            idx = near or idx
        idx = idx[-RECENT:]
    meds = [float(np.nanmedian(ur[:, i])) for i in idx]
    return float(np.median(meds)), [h.steps[i] for i in idx]


def _update_ratio(run: _Run, h: ProbeHistory, early: bool) -> tuple[Finding | None, float | None]:
    ratio, steps = _update_window(run, h, early)
    if ratio is None:
        return None, None
    where = f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step {steps[0]}"
    lrs = [run.lr_at(s) for s in steps]
    lr = float(np.nanmedian(lrs)) if np.isfinite(lrs).any() else run.peak_lr
    ev = (f"median update/weight ratio {ratio:.1e} over {len(h.weight_params())} weight tensors at {where} "
          f"(LR {_g(lr)}); rule of thumb ~1e-3, healthy {UPDATE_LOW:.0e} to {UPDATE_HIGH:.0e}")
    vals = {"ratio": ratio, "steps": steps, "lr": lr}
    if ratio > UPDATE_HIGH:
        new = _nice(lr * max(0.01, UPDATE_TARGET / ratio)) if math.isfinite(lr) else None
        return Finding("update_ratio_high", "alarm" if ratio > UPDATE_HIGH * UPDATE_ALARM else "warn",
                       "Updates too large for the weights", ev,
                       (f"lower the LR: try --lr {_g(new)}" if new else "lower the LR") +
                       " (the ratio scales with it), or add warmup (--warmup 1)", PLOT_GRADS, steps[-1], vals), ratio
    if ratio < UPDATE_LOW and not early:
        new = _nice(lr * min(1e4, UPDATE_TARGET / max(ratio, 1e-12))) if math.isfinite(lr) else None
        return Finding("update_ratio_low", "alarm" if ratio < UPDATE_LOW / UPDATE_ALARM else "warn",
                       "Updates too small to change the weights", ev,
                       (f"raise the LR: try --lr {_g(new)}" if new else "raise the LR") +
                       ", or run `labkit check` for the LR range test", PLOT_GRADS, steps[-1], vals), ratio
    return None, ratio


def _layers_of(h: ProbeHistory, family: str) -> list[str]:
    from .activations import ACTIVATIONS

    out = []
    for name in h.layers:
        act = h.activation(name)
        if act in ACTIVATIONS and ACTIVATIONS.entry(act).traits.get("family") == family:
            out.append(name)
    return out


def _recent(h: ProbeHistory, layer: str, stat: str, n: int = 3) -> float:
    s = h.series(layer, stat)[-n:]
    return float(np.nanmedian(s)) if np.isfinite(s).any() else math.nan


def _dead(h: ProbeHistory) -> Finding | None:
    layers = _layers_of(h, "relu")
    dead = {name: _recent(h, name, "dead") for name in layers}
    bad = {k: v for k, v in dead.items() if math.isfinite(v) and v >= DEAD_WARN}
    if not bad:
        return None
    first = {k: float(h.series(k, "dead")[0]) for k in bad}
    step = h.steps[-1]
    ev = ", ".join(f"{k} {_pct(v)} dead" for k, v in bad.items()) + \
        f" (median of the last {min(3, len(h))} snapshots, to step {step}; at step {h.steps[0]}: " + \
        ", ".join(f"{_pct(v)}" for v in first.values()) + "); a dead unit outputs 0 for every example of the probe batch"
    sev = "alarm" if max(bad.values()) >= DEAD_ALARM else "warn"
    return Finding("dead_units", sev, "Dead ReLUs: units that never fire", ev,
                   "lower the LR (dead units often come from one large step), use --activation leaky_relu or elu, "
                   "He init (--init kaiming), or batch norm (--norm batch)", PLOT_STATS, step,
                   {"dead": bad})


def _saturated(h: ProbeHistory, run: _Run) -> Finding | None:
    layers = _layers_of(h, "saturating")
    if not layers:
        return None
    act = h.activation(layers[0])
    init_fix = ("use --init xavier (kept variance for tanh/sigmoid) or batch norm (--norm batch); or ReLU with He "
                f"init (--activation relu --init kaiming){'; sigmoid is not zero-centred: tanh trains faster' if act == 'sigmoid' else ''}")
    if h.steps[0] == 0:
        sat0 = {k: _f(h.series(k, "saturated")[0]) for k in layers}
        vals = [v for v in sat0.values() if math.isfinite(v)]
        if vals and float(np.median(vals)) >= SAT_INIT:
            med = float(np.median(vals))
            ev = (f"saturated values at step 0 (initialization): " + ", ".join(f"{k} {_pct(v)}" for k, v in sat0.items())
                  + f" (median {_pct(med)}; a value counts within 2% of the {act} range from a limit, where its "
                  "gradient is ~0)")
            return Finding("saturated_units", "alarm", f"Saturated {act} units from the start: init too large", ev,
                           init_fix, PLOT_FIRST, 0, {"saturated": sat0, "median": med, "when": "init"})
    sat = {k: _recent(h, k, "saturated") for k in layers}
    vals = [v for v in sat.values() if math.isfinite(v)]
    if not vals or float(np.median(vals)) < SAT_LATE:
        return None
    ep = [r for r in run.epochs if math.isfinite(_f(r.get("train_acc")))]
    if ep and run.chance is not None and _f(ep[-1]["train_acc"]) >= run.chance + CONFIDENT * (1 - run.chance):
        return None  # a confident, well-fitting network saturates by design
    med = float(np.median(vals))
    ev = (f"saturated values to step {h.steps[-1]}: " + ", ".join(f"{k} {_pct(v)}" for k, v in sat.items())
          + f" (median {_pct(med)})")
    return Finding("saturated_units", "warn", f"Saturated {act} units: gradients vanish", ev,
                   "add batch norm (--norm batch), which keeps pre-activations near zero, or lower the LR; or use "
                   "ReLU with He init (--activation relu --init kaiming)", PLOT_STATS,
                   h.steps[-1], {"saturated": sat, "median": med, "when": "late"})


def _collapsed(h: ProbeHistory, i: int) -> tuple[list[tuple[str, float]], int, float] | None:
    """(layer stds, deepest collapsed index, its ratio to the first) when snapshot `i` collapses across depth."""
    snap = h.snapshot(i)
    names = [n for n in h.layers if n in snap]
    pairs = [(n, s) for n, s in ((n, _f((snap.get(n) or {}).get("std"))) for n in names) if math.isfinite(s)]
    if len(pairs) < MIN_COLLAPSE_LAYERS or pairs[0][1] <= 0:
        return None
    s = np.array([p[1] for p in pairs])
    j = int(np.argmin(s[1:])) + 1  # the deepest point of the collapse (later layers may have learned a little)
    ratio = float(s[j] / s[0])
    if j + 1 >= MIN_COLLAPSE_LAYERS and ratio < COLLAPSE_RATIO and bool(np.all(np.diff(s[:j + 1]) < 0)):
        return pairs, j, ratio
    return None


def _collapse(h: ProbeHistory) -> Finding | None:
    """Activation std shrinking layer by layer: blamed on the init only when the init itself collapses."""
    at_init = _collapsed(h, 0) if h.steps[0] == 0 else None
    latest = _collapsed(h, -1)
    if at_init is not None:
        i, (pairs, j, ratio), when = 0, at_init, "init"
        if latest is not None:
            i, (pairs, j, ratio), when = -1, latest, "latest"
    elif latest is not None:
        pairs, j, ratio = latest
        snap = h.snapshot(-1)
        if any(_f((snap.get(n) or {}).get("dead")) >= DEAD_WARN for n, _ in pairs[:j + 1]):
            return None  # silent (dead) units explain the shrinking: the dead-units finding says so
        i, when = -1, "during"
    else:
        return None
    per = ratio ** (1 / j) if ratio > 0 else 0.0
    chain = " -> ".join(_g(float(v)) for _, v in pairs)
    ev = (f"activation std by depth at step {h.steps[i]}: {chain} ({pairs[0][0]} to {pairs[-1][0]}): x{_g(per, 2)} "
          f"per layer from {pairs[0][0]} to {pairs[j][0]}, which is at {_g(ratio)} of the first")
    values = {"stds": dict((n, float(v)) for n, v in pairs), "ratio": ratio, "when": when}
    if when == "during":  # the init passed the signal through; training shrank it
        return Finding("activation_collapse", "warn", "Activations shrink to zero with depth during training", ev
                       + "; at step 0 they did not collapse, so the init is not the cause",
                       "lower the LR or the weight decay (--weight-decay), which can shrink the deep layers' weights, "
                       "or add batch norm (--norm batch)", PLOT_STATS, h.steps[i], values)
    if when == "init" and len(h) > 1:
        ev += f"; by step {h.steps[-1]} it recovered (x{_g(float(_last_ratio(h)), 2)})"
    sev = "alarm" if ratio < COLLAPSE_ALARM and when == "latest" else ("warn" if when == "latest" else "info")
    return Finding("activation_collapse", sev, "Activations collapse to zero with depth: init too small", ev,
                   "use --init kaiming (ReLU family) or --init xavier (tanh, sigmoid), which keep the variance "
                   "from layer to layer, or add batch norm (--norm batch)", PLOT_STATS, h.steps[i], values)


def _last_ratio(h: ProbeHistory) -> float:
    snap = h.snapshot(-1)
    s = [_f((snap.get(n) or {}).get("std")) for n in h.layers if n in snap]
    s = [v for v in s if math.isfinite(v)]
    return s[-1] / s[0] if len(s) > 1 and s[0] > 0 else math.nan


def _symmetry_probes(h: ProbeHistory) -> dict[str, Any]:
    params = h.snapshot_params(-1)
    zero_w = [p for p in h.weight_params() if _f((params.get(p) or {}).get("norm")) == 0.0]
    snap = h.snapshot(-1)
    flat = [n for n in h.layers if _f((snap.get(n) or {}).get("std")) == 0.0]
    return {"zero_weights": zero_w, "zero_spread": flat, "step": h.steps[-1]}


def unit_symmetry(model: Any, x: Any) -> dict[str, dict[str, int]]:
    """Per activation layer: units, distinct units (outputs compared on the batch `x`), and all-zero units.

    Runs a copy of the model in eval mode (no running statistics change, no
    dropout), so it is safe on a model another thread is training. Two units
    are the same when their outputs on every example agree to SYMMETRY_TOL.
    Weight layers whose rows are all identical are reported under "weights".
    """
    import copy

    import torch
    from torch import nn

    from .activations import is_activation

    m = copy.deepcopy(model).float().eval()
    outs: dict[str, torch.Tensor] = {}
    names = {mod: n for n, mod in m.named_modules()}
    hooks = [mod.register_forward_hook(lambda mod, i, y: outs.__setitem__(names[mod], y.detach()))
             for mod in m.modules() if is_activation(mod)]
    try:
        with torch.no_grad():
            m(x.float() if x.dtype != torch.uint8 else x)
    finally:
        for hk in hooks:
            hk.remove()
    res: dict[str, dict[str, int]] = {}
    for name, y in outs.items():
        if y.ndim < 2 or y.shape[1] < 2:
            continue
        units = y.transpose(0, 1).reshape(y.shape[1], -1).double()  # (C, N * spatial)
        scale = float(units.abs().max())
        zero = (units.abs().amax(dim=1) <= SYMMETRY_TOL * max(scale, 1e-30)).sum().item() if scale > 0 else units.shape[0]
        if scale == 0:
            distinct = 1
        else:
            q = torch.round(units / (scale * SYMMETRY_TOL * 10))
            distinct = int(torch.unique(q, dim=0).shape[0])
        res[name] = {"units": int(units.shape[0]), "distinct": distinct, "zero": int(zero)}
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)) and mod.weight.shape[0] > 1:
                w = mod.weight.reshape(mod.weight.shape[0], -1).double()
                same = bool((w - w[:1]).abs().max() <= SYMMETRY_TOL * max(float(w.abs().max()), 1e-30))
                if same:
                    res.setdefault("weights", {})[f"{name}.weight"] = int(w.shape[0])  # type: ignore[index]
    return res


def _symmetry(h: ProbeHistory | None, model: Any, x: Any, loss_note: str) -> tuple[Finding | None, Finding | None]:
    ev, vals, step = [], {}, None
    if h is not None and len(h):
        s = _symmetry_probes(h)
        step = s["step"]
        if s["zero_weights"]:
            ev.append(f"weight tensors with norm exactly 0 at step {s['step']}: {', '.join(s['zero_weights'])}")
            if s["zero_spread"]:
                ev.append(f"activations with zero spread (std 0 on the probe batch): {', '.join(s['zero_spread'])}")
            vals.update(s)
    note = None
    if model is not None and x is not None:
        try:
            res = unit_symmetry(model, x)
        except Exception as e:  # a model this diagnosis cannot run (wrong input shape...): say so, do not fail
            note = _not_judged("symmetry", "Unit symmetry: the model could not be checked",
                               f"running the model on a batch failed: {type(e).__name__}: {e}",
                               "diagnose from the probes (train with --probe-every 25)", PLOT_STATS)
            res = {}
        weights = res.pop("weights", {}) if isinstance(res.get("weights"), dict) else {}
        same = {k: v for k, v in res.items() if v["units"] > 1 and v["distinct"] == 1}
        if weights and same:
            ev.append("on a batch of the training data, every unit of " +
                      ", ".join(f"{k} ({v['units']} units{', all outputting 0' if v['zero'] == v['units'] else ''})"
                                for k, v in same.items()) + " gives the same output")
            ev.append(f"weight tensors whose rows are all identical: {', '.join(weights)}")
            vals.update({"identical_layers": same, "identical_weights": weights})
    if not ev:
        return None, note
    if loss_note:
        ev.append(loss_note)
    return Finding("symmetry", "alarm", "Symmetric units: zero (or constant) init makes every unit the same",
                   "; ".join(ev),
                   "initialize with random weights: --init kaiming (ReLU family) or --init xavier (tanh, sigmoid); "
                   "identical units get identical gradients, so symmetry never breaks", PLOT_STATS, step, vals), note


def _loss_note(run: _Run) -> str:
    if run.n < 2:
        return ""
    w = run.window()
    first, last = float(np.nanmedian(run.loss[:w])), float(np.nanmedian(run.loss[-w:]))
    return f"the loss is {_g(first)} -> {_g(last)} over {run.n} steps" + (
        f" (chance ln {run.classes} = {run.ln_c:.3f})" if run.ln_c else "")


def _probe_input(data: Any, n: int = 64) -> Any:
    """A batch the symmetry check runs the model on: a Data's first training examples, or a tensor as given."""
    import torch

    if data is None:
        return None
    if isinstance(data, torch.Tensor):
        return data
    if hasattr(data, "train_x") and hasattr(data, "to_input"):
        return data.to_input(data.train_x[:n])
    raise LabkitError(f"data must be a labkit Data or an input tensor, got {type(data).__name__}")


# -- the diagnosis --------------------------------------------------------------------------------------------
def diagnose(metrics: list[dict], probes: ProbeHistory | None = None, config: Config | None = None,
             model: Any = None, data: Any = None) -> list[Finding]:
    """Findings about a run from its metric rows and probe history (alarms first), each with evidence and a fix.

    `model` (with `data`: a labkit Data or an input batch) adds the unit-symmetry check on real outputs.
    Checks without enough data yet come back as "not_judged" info findings.
    """
    if not isinstance(metrics, (list, tuple)):
        raise LabkitError(f"metrics must be a list of metric rows (dicts), got {type(metrics).__name__}; "
                          "use labkit.runs.read_metrics(run_dir)")
    if probes is not None and not isinstance(probes, ProbeHistory):
        raise LabkitError(f"probes must be a ProbeHistory, got {type(probes).__name__}; use labkit.probes.read_probes(run_dir)")
    run = _Run([r for r in metrics if isinstance(r, dict)], config)
    h = probes if probes is not None and len(probes) else None
    found: list[Finding] = []
    notes: list[Finding] = []

    blew_up = _divergence(run)
    found += blew_up
    ratio_f, ratio = (None, None)
    if h is not None:
        ratio_f, ratio = _update_ratio(run, h, early=bool(blew_up))
    if blew_up:
        if ratio_f is not None:
            found.append(ratio_f)
        notes.append(_not_judged("after_divergence", "Other checks skipped: the run blew up",
                                 "after the loss explodes, the gap, dead units, saturation and update ratios read "
                                 "meaningless values", "fix the learning rate first, then diagnose the new run"))
        return _sort(found + notes)

    x = _probe_input(data) if model is not None else None
    if model is not None and x is None and config is not None:
        try:
            from .data import load_data

            x = _probe_input(load_data(config.data, config.train.seed))
        except LabkitError as e:
            notes.append(_not_judged("symmetry", "Unit symmetry: the model could not be checked",
                                     f"the data to run it on could not be loaded: {e}", "pass data=", PLOT_STATS))
    sym, note = _symmetry(h, model, x, _loss_note(run))
    if note:
        notes.append(note)
    causes: list[Finding] = []
    if sym is not None:
        causes.append(sym)
    elif h is not None:
        for f in (_collapse(h), _saturated(h, run)):
            if f is not None:
                causes.append(f)
        dead = _dead(h)
        if dead is not None:
            found.append(dead)
    init_cause = any(f.severity in ("alarm", "warn") for f in causes)
    found += causes

    flat, note = _flat(run, ratio)
    if note:
        notes.append(note)
    if flat is not None:
        if init_cause:  # the flat loss is explained by the init: say so there instead of blaming the LR
            for f in causes:
                if f.severity != "info" and f.code != "symmetry":
                    f.evidence += f"; {_loss_note(run)}"
        else:
            found.append(flat)
    else:
        plateau = _plateau(run)
        if plateau is not None:
            found.append(plateau)

    if ratio_f is not None and not (init_cause and ratio_f.code == "update_ratio_low"):
        found.append(ratio_f)
    if h is None:
        why = ("probes were off (probe.every=0)" if config is not None and config.probe.every == 0
               else "no probe snapshots were recorded")
        notes.append(_not_judged("probes", "Inside the network: not judged",
                                 f"{why}: update/weight ratios, dead and saturated units, collapse across depth"
                                 + (" and symmetry" if model is None else "") + " need them",
                                 "train with --probe-every 25", PLOT_CURVES))

    gap, gap_notes = _epoch_gap(run)
    notes += gap_notes
    # a dead layer or a bad init caps the accuracy: "train longer, bigger model" would be the wrong advice
    explained = init_cause or flat is not None or any(f.code == "dead_units" and f.severity == "alarm" for f in found)
    found += [f for f in gap if not (explained and f.code == "underfitting")]

    if run.status is None and run.n:
        total = (run.start or {}).get("total_steps")
        notes.append(_not_judged("run_end", "The run has no end record yet",
                                 f"judged on {run.n} steps" + (f" of {total}" if total else "") +
                                 " recorded so far (still running, or killed)",
                                 "diagnose again later, or after the run ends", PLOT_CURVES))
    elif run.status in ("stopped", "failed"):
        notes.append(_not_judged("run_end", f"The run {run.status} early",
                                 f"judged on the {run.n} steps recorded; {(run.end or {}).get('message', '')}",
                                 "findings about late training need a complete run", PLOT_CURVES))
    return _sort(found + notes)


def has_alarms(findings: Iterable[Finding]) -> bool:
    """True when any finding is an alarm."""
    return any(f.severity == "alarm" for f in findings)


# -- stored runs -----------------------------------------------------------------------------------------------
def diagnose_run(run_dir: str | os.PathLike, model: Any = None, data: Any = None) -> list[Finding]:
    """Diagnose a stored run (finished, stopped, diverged, killed or running) from its files.

    The symmetry check runs the model rebuilt from config.json and best.pt (or `model`/`data` when given).
    """
    from .runs import load_run
    from .probes import read_probes

    d = Path(run_dir)
    if not d.exists():
        raise LabkitError(f"run directory {d} does not exist; list runs with `labkit runs --out DIR`")
    if not d.is_dir():
        raise LabkitError(f"{d} is a file, not a run directory; pass the folder holding config.json and metrics.jsonl")
    rec = load_run(d)
    rows = rec.metrics
    if not rows:
        return [_not_judged("run_end", "Nothing to diagnose yet",
                            f"{d / 'metrics.jsonl'} has no rows: the run has not reached its first step "
                            f"(status: {rec.status})", "diagnose again once it has taken some steps")]
    probes = read_probes(d)
    cfg = rec.config
    notes: list[Finding] = []
    if model is None and cfg is not None and rec.checkpoint is not None:
        try:
            model, data = _rebuild(cfg, rec, data)
        except Exception as e:  # an old or foreign checkpoint: the rest of the diagnosis still stands
            notes.append(_not_judged("symmetry", "Unit symmetry: the checkpoint could not be loaded",
                                     f"rebuilding the model from config.json and best.pt failed: {type(e).__name__}: {e}",
                                     "the probe-based symmetry check still ran", PLOT_STATS))
            model = None
    findings = diagnose(rows, probes, cfg, model=model, data=data)
    status = rec.status
    if status == "killed":
        last = max((int(r.get("step", 0)) for r in rows if r.get("kind") == "step"), default=0)
        findings = [f for f in findings if f.values.get("check") != "run_end"]
        total = next((r.get("total_steps") for r in rows if r.get("kind") == "start"), None)
        notes.append(_not_judged("run_end", "The run was killed",
                                 f"its process is gone after step {last}" + (f" of {total}" if total else "") +
                                 "; judged on what was recorded",
                                 "findings about late training need a complete run", PLOT_CURVES))
    return _sort(findings + notes)


def _rebuild(cfg: Config, rec: Any, data: Any) -> tuple[Any, Any]:
    from .data import load_data
    from .train import build_run_model

    if data is None:
        data = load_data(cfg.data, cfg.train.seed)
    model = build_run_model(cfg, data)
    model.load_state_dict(rec.load_state_dict())
    return model, data


# -- live runs ---------------------------------------------------------------------------------------------------
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


def report_text(findings: Sequence[Finding], header: str = "") -> str:
    """A readable report: one block per finding (severity, title, evidence, suggestion, plot file)."""
    lines = [header] if header else []
    for f in findings:
        tag = {"alarm": "ALARM", "warn": "WARN", "info": "INFO"}.get(f.severity, f.severity.upper())
        lines += ["", f"[{tag}] {f.title}", f"  evidence:   {f.evidence}", f"  suggestion: {f.suggestion}",
                  f"  plot:       {f.plot}.png"]
    counts = {s: sum(1 for f in findings if f.severity == s and f.code != "not_judged") for s in SEVERITIES}
    open_ = sum(1 for f in findings if f.code == "not_judged")
    lines.append("")
    summary = "no alarms" if counts["alarm"] == 0 else f"{counts['alarm']} alarm{'s' * (counts['alarm'] != 1)}"
    summary += f", {counts['warn']} warning{'s' * (counts['warn'] != 1)}, {counts['info']} note{'s' * (counts['info'] != 1)}"
    if open_:
        summary += f"; {open_} check{'s' * (open_ != 1)} not judged"
    lines.append(summary + ".")
    return "\n".join(lines)
