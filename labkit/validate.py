"""Every check on a Config, each failing with the offending value, the allowed range and the fix."""
from __future__ import annotations

import math

from .activations import ACTIVATIONS
from .config import Config
from .errors import LabkitError
from .initializers import INITIALIZERS
from .models import MODELS, NORMS
from .optimizers import OPTIMIZERS, needs_closure
from .precision import PRECISIONS
from .schedules import SCHEDULES


def _range(path: str, value: float, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, hint: str = "") -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok or (isinstance(value, float) and math.isnan(value)):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        hi_s = "inf" if hi == math.inf else f"{hi:g}"
        raise LabkitError(f"{path}={value!r} is out of range; allowed: {lb}{lo:g}, {hi_s}{rb}{hint}")


def validate_config(c: Config) -> None:
    """Raise LabkitError on the first unknown name, out-of-range number or incompatible choice."""
    from .data import DATASETS, PREPROCESS, check_subset, is_image

    DATASETS.check(c.data.dataset)
    MODELS.check(c.model.kind)
    ACTIVATIONS.check(c.model.activation)
    INITIALIZERS.check(c.model.init)
    NORMS.check(c.model.norm)
    OPTIMIZERS.check(c.optim.name)
    SCHEDULES.check(c.schedule.name)
    if c.data.preprocess not in PREPROCESS:
        raise LabkitError(f"unknown preprocess {c.data.preprocess!r}; choose one of: {', '.join(PREPROCESS)}")
    if c.train.precision not in PRECISIONS:
        raise LabkitError(f"unknown precision {c.train.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if c.train.monitor not in ("val_acc", "val_loss"):
        raise LabkitError(f"unknown monitor {c.train.monitor!r}; choose one of: val_acc, val_loss")

    inf = math.inf
    _range("data.subset", c.data.subset, 0, inf, hint=" (0 = all training images)")
    _range("data.val_size", c.data.val_size, 0, inf)
    _range("data.noise", c.data.noise, 0, 10)
    _range("data.points", c.data.points, 10, 1_000_000)
    _range("model.depth", c.model.depth, 1, 50)
    _range("model.width", c.model.width, 1, 4096)
    _range("model.dropout", c.model.dropout, 0, 1, hi_open=True)
    _range("optim.lr", c.optim.lr, 0, 100, lo_open=True, hint="; try 0.1 for SGD, 1e-3 for Adam")
    _range("optim.momentum", c.optim.momentum, 0, 1, hi_open=True)
    _range("optim.beta1", c.optim.beta1, 0, 1, hi_open=True)
    _range("optim.beta2", c.optim.beta2, 0, 1, hi_open=True)
    _range("optim.eps", c.optim.eps, 0, 1, lo_open=True)
    _range("optim.weight_decay", c.optim.weight_decay, 0, 1)
    _range("optim.l1", c.optim.l1, 0, 1)
    _range("optim.grad_clip", c.optim.grad_clip, 0, inf, hint=" (0 = off)")
    s = c.schedule
    _range("schedule.warmup_epochs", s.warmup_epochs, 0, 1000)
    _range("schedule.gamma", s.gamma, 0, 1, lo_open=True)
    _range("schedule.step_every", s.step_every, 0, 1000)
    _range("schedule.min_lr", s.min_lr, 0, c.optim.lr, hint=" (at most optim.lr)")
    _range("schedule.restart_epochs", s.restart_epochs, 0, 1000, lo_open=True)
    _range("schedule.restart_mult", s.restart_mult, 1, 100)
    _range("schedule.pct_start", s.pct_start, 0, 1, lo_open=True, hi_open=True)
    _range("schedule.div_factor", s.div_factor, 1, 1e6)
    _range("schedule.final_div_factor", s.final_div_factor, 1, 1e9)
    for m in s.milestones:
        _range("schedule.milestones[]", m, 0, 1, lo_open=True, hi_open=True, hint=" (fractions of training)")
    r = c.reg
    _range("reg.crop", r.crop, 0, 16)
    _range("reg.cutout", r.cutout, 0, 32)
    _range("reg.mixup", r.mixup, 0, 100)
    _range("reg.cutmix", r.cutmix, 0, 100)
    _range("reg.label_smoothing", r.label_smoothing, 0, 1, hi_open=True)
    t = c.train
    _range("train.epochs", t.epochs, 0, 10000, lo_open=t.steps == 0, hint=" (or set train.steps)")
    _range("train.steps", t.steps, 0, 10_000_000)
    _range("train.batch_size", t.batch_size, 1, 65536)
    _range("train.threads", t.threads, 0, 1024, hint=" (0 = all cores)")
    _range("train.patience", t.patience, 0, 10000, hint=" (0 = no early stopping)")
    _range("train.eval_batch_size", t.eval_batch_size, 1, 100000)
    _range("probe.every", c.probe.every, 0, 1_000_000, hint=" (0 = probes off)")
    _range("probe.batch", c.probe.batch, 1, 10000)

    image = is_image(c.data.dataset)
    if MODELS.entry(c.model.kind).traits.get("image_only") and not image:
        raise LabkitError(
            f"model {c.model.kind!r} needs images, but {c.data.dataset!r} is a 2-D point set; "
            f"use --model mlp, or an image dataset (cifar10, cifar100, folder)"
        )
    if needs_closure(c.optim.name):
        if r.mixup > 0 or r.cutmix > 0:
            raise LabkitError(
                "lbfgs re-evaluates the loss several times per step and needs the same objective each "
                "time; mixup/cutmix change it at random; set --mixup 0 --cutmix 0 or choose another optimizer"
            )
        if c.model.dropout > 0:
            raise LabkitError("lbfgs needs a deterministic loss per step; set --dropout 0 or choose another optimizer")
    if c.model.norm == "batch" and t.batch_size < 2:
        raise LabkitError("batch norm needs batch_size >= 2; raise --batch-size or use --norm layer/group/none")
    check_subset(c.data)
