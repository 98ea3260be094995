"""The train/validation gap from the epoch rows: overfitting (a large, growing gap), underfitting (none, low accuracy)."""
from __future__ import annotations

import math

import numpy as np

from ..config import Config
from .finding import Finding, not_judged
from .fixes import Fix, Option, offer
from .fmt import g, nice, num, pct, round3
from .registry import Needs, finding
from .runner import Context
from .thresholds import (CROP_PAD, CUTOUT, DROPOUT, GAP_GROWTH, MIN_EPOCHS_GAP, MIXUP, OVERFIT_ALARM_RISE,
                         OVERFIT_GAP, PATIENCE, PLOT_CURVES, STILL_IMPROVING, UNDERFIT_GAP, UNDERFIT_LEVEL, VAL_RISE,
                         VAL_SIZE, WEIGHT_DECAY)


def _too_few_epochs(ctx: Context) -> Finding:
    run, cfg = ctx.run, ctx.config
    ep = run.val_epochs
    no_split = bool(run.epochs) and not ep
    why = (f"{len(run.epochs)} epoch(s) recorded without a validation split (val_size 0)"
           if no_split else f"{len(ep)} epoch(s) with validation so far")
    if no_split:
        sug = f"keep a validation split ({VAL_SIZE} examples)"
        fixes = [Fix({"data.val_size": VAL_SIZE}, "the gap is read on examples the model does not train on")]
    else:
        sug = f"let the run go on (or train for at least {MIN_EPOCHS_GAP} epochs)"
        fixes = ([Fix({"train.epochs": float(MIN_EPOCHS_GAP)}, "a gap needs two epochs to be growing")]
                 if cfg is not None and cfg.train.epochs < MIN_EPOCHS_GAP and not cfg.train.steps else [])
    return not_judged("generalization", "Overfitting / underfitting: not judged yet",
                      f"{why}; the train/validation gap needs at least {MIN_EPOCHS_GAP}", sug, PLOT_CURVES, fixes)


@finding("generalization", codes={"overfitting", "underfitting", "not_judged"}, needs=Needs(val_epochs=MIN_EPOCHS_GAP),
         unjudged=_too_few_epochs)
def epoch_gap(ctx: Context) -> Finding | None:
    """Overfitting (train accuracy 15+ points above validation, growing) or underfitting (no gap, low accuracy)."""
    run, cfg = ctx.run, ctx.config
    ep = run.val_epochs
    tr = np.array([num(r["train_acc"]) for r in ep])
    va = np.array([num(r["val_acc"]) for r in ep])
    vl = np.array([num(r.get("val_loss")) for r in ep])
    tl = np.array([num(r.get("train_loss")) for r in ep])
    e = [int(r.get("epoch", i + 1)) for i, r in enumerate(ep)]
    gap = tr - va
    g_last = float(np.mean(gap[-2:]))
    half = max(1, len(gap) // 2)
    k0 = int(np.argmin(gap[:half]))
    g0 = float(gap[k0])
    kmin = int(np.nanargmin(vl)) if np.isfinite(vl).any() else None
    vrise = float(vl[-1] / vl[kmin] - 1) if kmin is not None and vl[kmin] > 0 else 0.0
    train_falls = math.isfinite(tl[-1]) and kmin is not None and tl[-1] < tl[kmin]
    growing = g_last - g0 >= GAP_GROWTH or (vrise >= VAL_RISE and train_falls)
    if g_last >= OVERFIT_GAP and growing:
        ev = (f"train accuracy {tr[-1]:.1%} vs validation {va[-1]:.1%} at epoch {e[-1]} (gap {pct(g_last)}, "
              f"{pct(g0)} at epoch {e[k0]})")
        if kmin is not None:
            ev += (f"; validation loss {g(float(vl[-1]))}, {vrise:+.0%} from its minimum {g(float(vl[kmin]))} "
                   f"at epoch {e[kmin]}")
        sev = "alarm" if vrise >= OVERFIT_ALARM_RISE else "warn"
        sug, fixes = regularize(cfg)
        return Finding("overfitting", sev, "Overfitting: a large and growing train/validation gap", ev, sug,
                       PLOT_CURVES, int(ep[-1].get("step", 0)) or None,
                       {"gap": g_last, "early_gap": g0, "val_loss_rise": vrise, "train_acc": float(tr[-1]),
                        "val_acc": float(va[-1])}, fixes)
    if abs(g_last) < UNDERFIT_GAP and run.chance is not None:
        low = run.chance + UNDERFIT_LEVEL * (1 - run.chance)
        if tr[-1] < low:
            # with fewer than 3 epochs it is too early to call the model too small: count it as still improving
            improving = len(tl) < 3 or not math.isfinite(tl[-3]) or tl[-1] < tl[-3] * (1 - STILL_IMPROVING)
            ev = (f"train accuracy {tr[-1]:.1%}, validation {va[-1]:.1%} at epoch {e[-1]} (gap {pct(g_last)}); "
                  f"chance is 1/{run.classes} = {run.chance:.1%}, and a model that can fit this data reaches well "
                  f"above {low:.0%} on the training set")
            if len(tl) >= 3:
                ev += f"; train loss {g(float(tl[-3]))} -> {g(float(tl[-1]))} over the last two epochs"
            sug, fixes = grow(cfg, improving)
            return Finding("underfitting", "info" if improving else "warn",
                           "Underfitting: no gap, and low accuracy" + (" (still improving)" if improving else ""),
                           ev, sug, PLOT_CURVES, int(ep[-1].get("step", 0)) or None,
                           {"gap": g_last, "train_acc": float(tr[-1]), "val_acc": float(va[-1]), "level": low,
                            "improving": improving}, fixes)
    return None


def regularize(cfg: Config | None) -> tuple[str, list[Fix]]:
    """What to try against overfitting (words, fixes): what the config does not have yet, then more data."""
    from ..data.sets import is_image

    if cfg is None:
        text = (f"more regularization (weight decay {WEIGHT_DECAY:g}, dropout {DROPOUT:g}, augmentation: flips, "
                f"{CROP_PAD}-pixel crops, {CUTOUT}-pixel cutout, mixup {MIXUP:g}), more data (a larger subset), "
                f"or early stopping (patience {PATIENCE} epochs)")
        fixes = [Fix({"optim.weight_decay": WEIGHT_DECAY}, "L2 weight decay"), Fix({"model.dropout": DROPOUT}, "dropout"),
                 Fix({"train.patience": PATIENCE}, "stop when validation stops improving, keep the best epoch")]
        return text, fixes
    reg: list[Option] = []
    if cfg.optim.weight_decay <= 0:
        reg.append((f"weight decay {WEIGHT_DECAY:g}", Fix({"optim.weight_decay": WEIGHT_DECAY}, "L2 weight decay")))
    else:
        wd = nice(cfg.optim.weight_decay * 5)
        reg.append((f"stronger weight decay ({g(wd)})",
                    Fix({"optim.weight_decay": wd}, f"5x the {g(cfg.optim.weight_decay)} now")))
    if cfg.model.dropout <= 0:
        reg.append((f"dropout {DROPOUT:g}", Fix({"model.dropout": DROPOUT}, "drops units at random while training")))
    image = is_image(cfg.data.dataset)
    if image:
        flip_crop = {k: v for k, v in (("reg.flip", True), ("reg.crop", CROP_PAD))
                     if (k == "reg.flip" and not cfg.reg.flip) or (k == "reg.crop" and cfg.reg.crop <= 0)}
        if flip_crop:
            words = " and ".join(["flips"] * ("reg.flip" in flip_crop)
                                 + [f"{CROP_PAD}-pixel crops"] * ("reg.crop" in flip_crop))
            reg.append((f"augmentation ({words})", Fix(flip_crop, "CIFAR's standard augmentation")))
        if cfg.reg.cutout <= 0:
            reg.append((f"cutout ({CUTOUT} pixels)", Fix({"reg.cutout": CUTOUT}, "hides a random square of each image")))
        if cfg.reg.mixup <= 0 and cfg.reg.cutmix <= 0:
            reg.append((f"mixup {MIXUP:g}", Fix({"reg.mixup": MIXUP}, "trains on blends of two images and their labels")))
    words, fixes = offer(cfg, reg)
    text = "more regularization: " + ", ".join(words)
    more: list[Option] = []
    if image and 0 < cfg.data.subset < 50000:
        n = min(50000, cfg.data.subset * 4)
        more.append((f"more data ({n} training images)", Fix({"data.subset": n}, f"4x the {cfg.data.subset} now")))
    elif not image:
        n = cfg.data.points * 4
        more.append((f"more data ({n} points)", Fix({"data.points": n}, f"4x the {cfg.data.points} now")))
    if cfg.train.patience <= 0:
        more.append((f"early stopping (patience {PATIENCE} epochs), which keeps the best epoch",
                     Fix({"train.patience": PATIENCE}, "stop when validation stops improving, keep the best epoch")))
    words, more_fixes = offer(cfg, more)
    return "; ".join([text, *words]), fixes + more_fixes


def grow(cfg: Config | None, improving: bool) -> tuple[str, list[Fix]]:
    """What to try against underfitting (words, fixes): train longer first while the loss still falls."""
    if cfg is None:
        return "a bigger model (wider or deeper), less regularization, or train longer (more epochs)", []
    # every value below differs from the config's by construction, so every fix changes something
    w, d = cfg.model.width * 2, cfg.model.depth + 1
    tips: list[tuple[str, list[Fix]]] = [(f"a bigger model ({w} wide or {d} deep)", [
        Fix({"model.width": w}, "twice as wide"), Fix({"model.depth": d}, "one more layer or stage")])]
    less: dict[str, float] = {}
    said: list[str] = []
    if cfg.optim.weight_decay > 0:
        less["optim.weight_decay"] = round3(cfg.optim.weight_decay / 10)
        said.append(f"weight decay {g(less['optim.weight_decay'])}")
    if cfg.model.dropout > 0:
        less["model.dropout"] = 0.0
        said.append("no dropout")
    if cfg.reg.mixup > 0 or cfg.reg.cutmix > 0:
        less.update({"reg.mixup": 0.0, "reg.cutmix": 0.0})
        said.append("no mixup or cutmix")
    if cfg.reg.label_smoothing > 0:
        less["reg.label_smoothing"] = 0.0
        said.append("no label smoothing")
    if less:
        tips.append((f"less regularization ({', '.join(said)})",
                     [Fix(less, "regularization holds back a model that cannot fit yet")]))
    epochs = cfg.train.epochs * 2
    longer = (f"train longer ({g(epochs)} epochs)", [Fix({"train.epochs": epochs}, "twice the epochs")])
    options = [longer, *tips] if improving else [*tips, longer]
    return ", ".join(t for t, _ in options), [f for _, fs in options for f in fs]
