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
        if c.model.dropout > 0 or c.model.dropconnect > 0:
            raise LabkitError("lbfgs needs a deterministic loss per step; set --dropout 0 --dropconnect 0 or choose "
                              "another optimizer")
    if c.model.norm == "batch" and t.batch_size < 2:
        raise LabkitError("batch norm needs batch_size >= 2; raise --batch-size or use --norm layer/group/none")
    check_transfer(c)
    check_subset(c.data)
    check_averaging(c)
    check_scale(c)


def check_scale(c: Config) -> None:
    """The device exists; the global batch splits evenly over the processes and the ghost-BN groups fit in it."""
    from .precision import cuda_available

    t, m = c.train, c.model
    if t.device == "cuda" and not cuda_available():
        raise LabkitError("train.device='cuda' but torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                          "fix: --device auto (the GPU when there is one) or --device cpu")
    if t.nproc > 1:
        if needs_closure(c.optim.name):
            raise LabkitError(f"{c.optim.name} re-evaluates the loss a varying number of times per step, which "
                              "data-parallel processes cannot follow in step; use --nproc 1 or another optimizer")
        if t.batch_size % t.nproc:
            raise LabkitError(f"train.batch_size={t.batch_size} does not split evenly over --nproc {t.nproc}; the "
                              f"batch is global, each process takes batch/nproc; fix: a batch divisible by "
                              f"{t.nproc}, e.g. --batch-size {max(t.nproc, t.batch_size // t.nproc * t.nproc)}")
        if t.device != "cpu" and cuda_available():
            import torch

            if t.nproc > torch.cuda.device_count():
                raise LabkitError(f"--nproc {t.nproc} needs a GPU per process, and this machine has "
                                  f"{torch.cuda.device_count()}; fix: --nproc {torch.cuda.device_count()} or "
                                  "--device cpu")
    per = t.batch_size // t.nproc  # each process's batch: what its batch norm sees
    if m.norm == "batch" and per < 2:
        raise LabkitError(f"batch norm needs at least 2 examples per process, and --batch-size {t.batch_size} over "
                          f"--nproc {t.nproc} gives {per}; raise --batch-size or use --norm layer/group/none")
    if m.bn_group:
        if m.norm != "batch":
            raise LabkitError(f"model.bn_group={m.bn_group} splits batch norm's batch, but the norm is {m.norm!r}; "
                              "fix: --norm batch, or --bn-group 0")
        if m.bn_group < 2:
            raise LabkitError(f"model.bn_group={m.bn_group} is out of range; allowed: 0 (off) or 2 and more (a group "
                              "of one image has no batch statistics); fix: --bn-group 0, or e.g. --bn-group 8")
        if per % m.bn_group:
            what = f"the batch per process ({t.batch_size} / {t.nproc} = {per})" if t.nproc > 1 else \
                f"--batch-size {t.batch_size}"
            divisors = [d for d in range(2, per + 1) if per % d == 0]
            raise LabkitError(f"model.bn_group={m.bn_group} does not divide {what}; allowed: 0 (off) or a divisor "
                              f">= 2: {', '.join(map(str, divisors[:12]))}{', ...' if len(divisors) > 12 else ''}; "
                              f"fix: --bn-group {divisors[0] if divisors else 0}")


def check_averaging(c: Config) -> None:
    """SWA and snapshots each reshape the learning rate, so not both; each needs room inside the run."""
    t = c.train
    if t.snapshots > 1 and t.swa_start > 0:
        raise LabkitError(f"train.snapshots={t.snapshots} and train.swa_start={t.swa_start:g} both set the learning "
                          "rate (cosine cycles vs SWALR's constant rate); use one: --snapshots 1 or --swa-start 0")
    if t.steps == 0 and t.swa_start >= t.epochs > 0:
        raise LabkitError(f"train.swa_start={t.swa_start:g} is not before the end of training ({t.epochs:g} epochs); "
                          f"allowed: (0, {t.epochs:g}) (0 = no SWA); fix: --swa-start X with X below --epochs, "
                          f"e.g. {0.75 * t.epochs:g}")
    if t.snapshots > 1 and c.data.dataset != "folder":  # a folder's size needs a directory scan: checked at start
        from .data.sets import train_size_of
        from .schedules import make_schedule

        s = make_schedule(c, train_size_of(c.data))
        if t.snapshots > s.total_steps - s.warmup:
            raise LabkitError(f"train.snapshots={t.snapshots} needs at least one step per cycle, but this run has "
                              f"{s.total_steps - s.warmup} steps after warmup; fix: fewer --snapshots, or more "
                              f"--epochs or data")


def freeze_depth(freeze: str) -> int | None:
    """model.freeze as a number of blocks (0 for none), None for all; raise on any other text."""
    text = freeze.strip().lower()
    if text in ("none", "0"):
        return 0
    if text == "all":
        return None
    if text.isdigit():
        return int(text)
    raise LabkitError(f"model.freeze={freeze!r} is not a freeze depth; allowed: none, all (everything but the head) "
                      "or N (the first N blocks, N >= 1); fix: --freeze all, or e.g. --freeze 2")


def check_transfer(c: Config) -> None:
    """The forms of data.classes and model.freeze, a freeze no deeper than the model, one LR group for L-BFGS.

    What needs files (the class names of CIFAR-100 or a folder, the source run) is checked before a run
    starts (labkit.data.ensure_available, labkit.training.transfer.check_init_from).
    """
    import torch

    from .data.sets import DATASETS, is_image, pick_classes
    from .models import blocks_of

    d, m = c.data, c.model
    if d.classes.strip():
        if not is_image(d.dataset):
            raise LabkitError(f"data.classes={d.classes!r} picks classes of an image dataset; {d.dataset!r} is a 2-D "
                              "set of two classes: leave --classes empty, or use an image dataset")
        traits = DATASETS.entry(d.dataset).traits
        pick_classes(d.classes, list(traits["names"]) if "names" in traits else None, d.dataset)
    depth = freeze_depth(m.freeze)
    if depth:
        with torch.device("meta"):  # the module tree alone: no memory, no initialization, the RNG untouched
            model = MODELS.get(m.kind)(m, (3, 32, 32) if is_image(d.dataset) else (2,), 2)
        blocks = len(blocks_of(model))
        if depth > blocks:
            raise LabkitError(f"model.freeze={m.freeze} is deeper than the model: {m.kind} (depth {m.depth}) has "
                              f"{blocks} blocks below its head; allowed: none, all, or 1 to {blocks}; fix: "
                              f"--freeze {blocks} (or all)")
    if needs_closure(c.optim.name) and c.optim.backbone_lr_scale != 1:
        raise LabkitError(f"optim.backbone_lr_scale={c.optim.backbone_lr_scale:g} needs two parameter groups, and "
                          f"{c.optim.name} takes one; set --backbone-lr-scale 1 or choose another optimizer")
