"""Every check on a Config, each failing with the offending value, the allowed range and the fix.

Names and ranges come from the field declarations (labkit.fields); the rules
that tie fields together (lbfgs with mixup, a subset larger than the data) are
written here.
"""
from __future__ import annotations

from .config import Config, add_validator
from .errors import LabkitError
from .fields import FIELDS
from .models import MODELS
from .optimizers import needs_closure


@add_validator
def validate_config(c: Config) -> None:
    """Raise LabkitError on the first unknown name, out-of-range number or incompatible choice."""
    from .data.sets import check_subset, is_image

    # names first: a wrong name explains more than a range that depends on it
    for f in FIELDS.values():
        if f.choices is not None:
            f.check(c.get(f.path))
    for f in FIELDS.values():
        if f.is_range:
            f.check(c.get(f.path))

    t, s, r = c.train, c.schedule, c.reg
    if t.steps == 0 and t.epochs <= 0:  # epochs may be 0 only when steps says how long
        raise LabkitError(f"train.epochs={t.epochs!r} is out of range; allowed: (0, {FIELDS['train.epochs'].hi:g}] "
                          f"(or set train.steps)")
    if s.min_lr > c.optim.lr:
        raise LabkitError(f"schedule.min_lr={s.min_lr!r} is out of range; allowed: [0, {c.optim.lr:g}] "
                          f"(at most optim.lr)")
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
