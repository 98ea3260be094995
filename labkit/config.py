"""The validated training configuration: nested dataclasses with a JSON round trip.

The defaults are the recipe `benchmarks/train_cifar.py` measures, so a
newcomer's first `labkit train` is a good run. Each field's allowed range or
names, help, CLI flag and widget are declared once, in labkit.fields; the
comments here say what a value means, not what is allowed.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, get_type_hints

from .errors import LabkitError


@dataclass
class DataConfig:
    """Which data, how much of it, and how it is preprocessed."""

    dataset: str = "cifar10"  # a name in labkit.data.DATASETS
    root: str | None = None  # data directory; None -> $LABKIT_DATA, else the per-user cache
    folder: str | None = None  # dataset="folder": an ImageFolder-layout directory of your images
    subset: int = 5000  # training examples, stratified by class; 0 = all of them
    val_size: int = 1000  # validation examples carved from the training set (stratified)
    preprocess: str = "standardize"  # a name in labkit.data.PREPROCESS
    noise: float = 0.05  # 2-D sets: std of Gaussian noise added to the points
    points: int = 1000  # 2-D sets: training points generated (val and test are generated too)
    download: bool = True  # fetch the official archive when the data is missing and we are online
    classes: str = ""  # train on these classes only, by index or name ("0,1,4", "cat,dog"); "" = all of them


@dataclass
class ModelConfig:
    """The network: its kind, size, activation, initializer and normalization."""

    kind: str = "convnet"  # a name in labkit.models.MODELS
    depth: int = 3  # mlp: hidden layers; convnet: stages (conv-norm-act, pool); resnet: stages
    width: int = 32  # units (mlp) or channels of the first stage (convnet, resnet; doubled per stage)
    activation: str = "relu"
    init: str = "kaiming"
    norm: str = "batch"  # a name in labkit.models.NORMS
    whiten: bool = True  # convnet: a frozen patch-whitening first layer fitted to the training images
    dropout: float = 0.0  # probability; applied before the classifier (and per layer in mlp)
    dropconnect: float = 0.0  # probability of dropping each weight of the classifier (and mlp's later layers)
    init_from: str | None = None  # a run directory: start from its best.pt (a new head where the classes differ)
    freeze: str = "none"  # none, all (everything but the head) or N (the first N blocks; see labkit.models.blocks_of)
    bn_group: int = 0  # ghost batch norm: each chunk of this many images of a batch normalised on its own; 0 = off


@dataclass
class OptimConfig:
    """The optimizer and its own parameters."""

    name: str = "nesterov"
    lr: float = 0.3  # peak learning rate (after warmup); 0.3 beat 0.1 by 2.5 points on the default recipe (RESULTS.md)
    momentum: float = 0.9  # momentum / nesterov / rmsprop
    beta1: float = 0.9  # adam, adamw
    beta2: float = 0.999  # adam, adamw
    eps: float = 1e-8
    weight_decay: float = 5e-4  # L2 (decoupled for adamw); applied to weights, not biases or norm gains
    l1: float = 0.0  # L1 penalty on weights, added to the loss
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    backbone_lr_scale: float = 1.0  # everything but the head learns at this fraction of the rate (0.1: fine-tuning)


@dataclass
class ScheduleConfig:
    """The learning rate over steps; see labkit.schedules for the closed forms."""

    name: str = "onecycle"
    warmup_epochs: float = 0.0  # linear warmup in front of any schedule (epochs; fractions allowed); onecycle: its rise
    milestones: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.9])  # step/multistep: fractions of training
    gamma: float = 0.1  # step/multistep: factor at each milestone; exponential: factor over all training
    step_every: float = 0.0  # step: decay every this many epochs (0 = use milestones)
    min_lr: float = 0.0  # cosine / linear / restarts: floor
    restart_epochs: float = 2.0  # cosine restarts: first period in epochs
    restart_mult: float = 2.0  # cosine restarts: period multiplier after each restart
    pct_start: float = 0.25  # onecycle: fraction of training spent rising
    div_factor: float = 25.0  # onecycle: start lr = lr / div_factor
    final_div_factor: float = 1e4  # onecycle: final lr = start lr / final_div_factor


@dataclass
class RegConfig:
    """Regularizers and data augmentation; off by default where they change results much."""

    flip: bool = True  # random horizontal flip (images)
    crop: int = 4  # reflect-pad by this many pixels and crop back at random; 0 = off
    cutout: int = 0  # side of a zeroed square; 0 = off
    mixup: float = 0.0  # Beta(alpha, alpha) alpha; 0 = off
    cutmix: float = 0.0  # Beta(alpha, alpha) alpha; 0 = off
    label_smoothing: float = 0.2


@dataclass
class TrainConfig:
    """How long, in what batches, and with what bookkeeping."""

    epochs: float = 11.0  # the default recipe at lr 0.3 reaches ~72% in 11 epochs (16 at lr 0.1), RESULTS.md
    steps: int = 0  # > 0: train for exactly this many steps instead of epochs
    batch_size: int = 64  # on 5,000 images, 64 beats 128 by ~3 points at equal epochs, at ~the same speed
    seed: int = 0
    threads: int = 0  # torch threads; 0 = automatic: 1 for the 2-D sets, else every core this process may use
    precision: str = "auto"  # a name in labkit.precision.PRECISIONS; auto: bf16 autocast for images where the
    #                          CPU/GPU computes bfloat16 natively (1.7x faster steps here), else fp32
    patience: int = 0  # early stopping: epochs without validation improvement; 0 = off
    monitor: str = "val_acc"  # val_acc (higher is better) or val_loss (lower is better)
    eval_batch_size: int = 1000
    test: bool = True  # evaluate the best checkpoint on the test set at the end
    tta: bool = True  # test with each image's mirror image too (test-time augmentation); validation without
    out: str = "runs"  # run store directory
    name: str = ""  # optional label in the run id
    # weight averaging and snapshot ensembles (labkit.training.averaging, labkit.training.snapshots)
    ema: float = 0.0  # decay of an exponential moving average of the weights (Polyak), per step; 0 = off
    ema_warmup: float = 0.667  # update n decays by min(ema, 1 - (1 + n)^-ema_warmup) (timm's ModelEmaV3); 0 = off
    swa_start: float = 0.0  # epoch from which SWA averages the weights at each epoch's end under swa_lr; 0 = off
    swa_lr: float = 0.05  # SWA: the constant rate SWALR anneals to (cosine, over one epoch) from swa_start on
    avg_bn: str = "recompute"  # batch-norm statistics of averaged weights: recompute (update_bn) or average
    snapshots: int = 1  # > 1: that many equal cosine cycles (restarts), a snapshot at each end, scored as an ensemble
    # scale (labkit.training.distributed, labkit.training.launch)
    device: str = "auto"  # a name in labkit.precision.DEVICES; auto: the CUDA GPU when there is one, else the CPU
    nproc: int = 1  # data-parallel processes (torchrun + DistributedDataParallel); batch_size is the global batch
    scale_lr: str = "none"  # linear: the peak rate is optim.lr x batch_size / 128 (Goyal et al. 2017's rule)
    batch_order: str = "random"  # class: each batch's examples sorted by label, so a replica / BN group sees few classes


@dataclass
class ProbeConfig:
    """What the probes record inside the network (see labkit.training.probes)."""

    every: int = 25  # record a snapshot every this many steps (and at the first and last); 0 = off
    pre_activation: bool = False  # also record the inputs of each activation
    batch: int = 128  # examples in the fixed probe batch (its forward pass is most of a snapshot's cost)
    bins: int = 40  # histogram bins per layer (range from the activation's registry trait)


@dataclass
class Config:
    """Everything one training run depends on; a run is a function of this object."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    # -- serialization ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain dict of plain values (JSON-ready)."""
        return dataclasses.asdict(self)

    def to_json(self, indent: int = 2) -> str:
        """The config as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        """Build a Config from a dict; unknown keys are an error naming the valid ones."""
        return _from_dict(cls, d, "")

    @classmethod
    def from_json(cls, text: str) -> "Config":
        """Parse JSON text made by `to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabkitError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a config.json file."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        try:
            return cls.from_json(p.read_text())
        except FileNotFoundError:
            raise LabkitError(f"no config file at {p}; pass a run directory or its config.json") from None

    def save(self, path: str | Path) -> None:
        """Write the config as JSON."""
        Path(path).write_text(self.to_json() + "\n")

    # -- dotted paths ------------------------------------------------------
    def set(self, path: str, value: Any) -> "Config":
        """Set `section.field` (value may be a string, parsed to the field's type); returns self."""
        section, name = _split_path(path)
        obj = getattr(self, section)
        typ = _paths()[path]
        setattr(obj, name, parse_value(value, typ, path) if isinstance(value, str) else value)
        return self

    def get(self, path: str) -> Any:
        """The value at `section.field`."""
        section, name = _split_path(path)
        return getattr(getattr(self, section), name)

    def replace(self, **overrides: Any) -> "Config":
        """A copy with dotted-path overrides, e.g. replace(**{"optim.lr": 0.01})."""
        c = Config.from_dict(self.to_dict())
        for k, v in overrides.items():
            c.set(k, v)
        return c

    def copy(self) -> "Config":
        """A deep copy."""
        return Config.from_dict(self.to_dict())

    def validate(self) -> "Config":
        """Check every name and range; raise LabkitError with the fix. Returns self."""
        if not _VALIDATORS:  # labkit/__init__ imports labkit.validate, which registers the checks
            raise RuntimeError("no config validator registered; import labkit (or labkit.validate) first")
        for check in _VALIDATORS:
            check(self)
        return self


# The checks need the registries (datasets, models, optimizers), which sit above this module and import it; so
# the validator plugs itself in from labkit.validate instead of being imported from here (no import cycle).
_VALIDATORS: list[Callable[[Config], None]] = []


def add_validator(check: Callable[[Config], None]) -> Callable[[Config], None]:
    """Register a whole-config check that Config.validate() runs (labkit.validate registers the standard one)."""
    _VALIDATORS.append(check)
    return check


# The allowed values of a field are declared in labkit.fields, above this module; it plugs in the text a parse
# error ends with ("allowed: (0, 1); fix: ..."), the same way the validator plugs in.
_VALUE_HELP: list[Callable[[str, bool], str]] = []


def add_value_help(describe: Callable[[str, bool], str]) -> Callable[[str, bool], str]:
    """Register fn(path, fix) -> 'allowed: ...[; fix: ...]', appended to parse_value's errors (labkit.fields does)."""
    _VALUE_HELP.append(describe)
    return describe


def _value_help(path: str, fix: bool) -> str:
    texts = [t for t in (d(path, fix) for d in _VALUE_HELP) if t]
    return "; " + "; ".join(texts) if texts else ""


def config_paths() -> dict[str, type]:
    """Every settable `section.field` path and its type (search spaces and --set use this)."""
    return dict(_paths())


@functools.lru_cache(maxsize=None)
def _paths() -> dict[str, type]:
    # the dataclasses are fixed at import; resolving their type hints on every get/set cost 2 ms a call, which
    # the lab paid ~300 times per page load
    out: dict[str, type] = {}
    for sec in fields(Config):
        sec_type = get_type_hints(Config)[sec.name]
        for f, t in get_type_hints(sec_type).items():
            out[f"{sec.name}.{f}"] = t
    return out


def _split_path(path: str) -> tuple[str, str]:
    paths = _paths()
    if path not in paths:
        raise LabkitError(
            f"unknown config path {path!r}; valid paths are: {', '.join(paths)}"
        )
    section, name = path.split(".", 1)
    return section, name


def parse_value(text: str, typ: Any, path: str = "value", fix: bool = True) -> Any:
    """Parse a command-line string to a config field's type; the error gives the allowed values (and the fix)."""
    t = str(typ)
    try:
        if typ is bool or t == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int or t == "int":
            f = float(text)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if typ is float or t == "float":
            v = float(text)
            if math.isnan(v):
                raise ValueError
            return v
        if "list" in t:
            return [float(x) for x in text.replace("[", "").replace("]", "").split(",") if x.strip()]
        if "None" in t and text.strip().lower() in ("", "none", "null"):
            return None
        return text
    except ValueError:
        kind = {"bool": "true/false", "int": "an integer", "float": "a number"}.get(
            getattr(typ, "__name__", t), t
        )
        raise LabkitError(f"{path}: cannot read {text!r} as {kind}{_value_help(path, fix)}") from None


def _from_dict(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise LabkitError(f"config section {prefix or 'root'!r} must be an object, got {d!r}")
    hints = get_type_hints(cls)
    unknown = set(d) - set(hints)
    if unknown:
        where = f" in section {prefix!r}" if prefix else ""
        raise LabkitError(
            f"unknown config key(s) {sorted(unknown)}{where}; valid keys: {', '.join(hints)}"
        )
    kwargs = {}
    for name, typ in hints.items():
        if name not in d:
            continue
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _from_dict(typ, d[name], name)
        else:
            kwargs[name] = d[name]
    return cls(**kwargs)
