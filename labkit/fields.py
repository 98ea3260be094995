"""Every config field declared once: range or choices, help, CLI flag, widget, and who reads it.

The validator (labkit.validate), the CLI flags (labkit.cli.common), the lab's
controls (labkit.widgets.controls), `command_line()` and the recipe's LR limit
all read these declarations, so a bound or a list of names is written here
and nowhere else. Types and defaults are not repeated: they come from the
dataclasses in labkit.config. Cross-field rules (lbfgs with mixup, a subset
larger than the data) stay in labkit.validate.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any, Mapping

from .activations import ACTIVATIONS
from .config import Config, add_value_help, config_paths
from .data.sets import DATASETS, PREPROCESS
from .errors import LabkitError
from .initializers import INITIALIZERS
from .models import MODELS, NORMS
from .optimizers import OPTIMIZERS
from .precision import DEVICES, PRECISIONS
from .registry import Registry
from .schedules import SCHEDULES

INF = math.inf

# the lab's accordion sections, in order; a field names its section (or none: CLI, --set and Python only)
SECTIONS = ("Data", "Model", "Optimizer", "Schedule", "Regularization", "Training", "Averaging", "Transfer", "Scale")

# widget kinds; None on a field means "from its type" (see Field.widget_kind); "run": a dropdown of the run store's runs
WIDGET_KINDS = ("dropdown", "checkbox", "int", "float", "slider", "log", "list", "text", "run")


@dataclass(frozen=True)
class Field:
    """One config field: its allowed values, its help, how the CLI and the lab offer it, and who reads it."""

    path: str
    help: str
    lo: float | None = None  # numbers: allowed range [lo, hi], ends open where lo_open / hi_open
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: Registry | tuple[str, ...] | None = None  # names: a registry (its names) or a fixed tuple
    flag: str | None = None  # CLI flag; None: reachable by --set PATH=VALUE
    widget: str | None = None  # one of WIDGET_KINDS; None: from the type
    label: str | None = None  # the lab's label; None: the field name with spaces
    step: float | None = None  # slider step (log: in decades)
    log_min: float | None = None  # log widget: the slider's left end where lo is 0 (a log scale has no 0)
    section: str | None = None  # the lab's section; None: not in the lab
    hidden: tuple[str, ...] = ()  # choices the lab does not offer (they need more than a name)
    hint: str = ""  # appended to the range error: what an end means, or a good value
    optimizer_uses: bool = False  # shown only for optimizers whose registry entry lists the name in `uses`
    schedules: tuple[str, ...] | None = None  # schedule parameter: the schedules that read it
    data: str | None = None  # "image" or "points": the kind of dataset that reads it

    @property
    def name(self) -> str:
        """The field's name inside its section (`lr` of `optim.lr`)."""
        return self.path.split(".", 1)[1]

    @property
    def type(self) -> Any:
        """The dataclass field's type."""
        return _TYPES[self.path]

    @property
    def default(self) -> Any:
        """The dataclass default (a fresh copy for lists)."""
        return Config().get(self.path)

    @property
    def is_range(self) -> bool:
        """Whether the field is a number (or a list of numbers) with a declared range."""
        return self.lo is not None

    @property
    def is_list(self) -> bool:
        """Whether the field holds a list (each item is checked against the range)."""
        return "list" in str(self.type)

    def choice_names(self) -> list[str]:
        """The allowed names (a registry's in registration order), or [] for a field without choices."""
        if self.choices is None:
            return []
        return self.choices.names() if isinstance(self.choices, Registry) else list(self.choices)

    def offered(self) -> list[str]:
        """The names the lab's dropdown offers: the choices less the hidden ones."""
        return [n for n in self.choice_names() if n not in self.hidden]

    def range_text(self) -> str:
        """The allowed range as text, e.g. '(0, 100]' or '[0, inf]'."""
        return f"{'(' if self.lo_open else '['}{_bound(self.lo)}, {_bound(self.hi)}{')' if self.hi_open else ']'}"

    def in_range(self, value: float) -> bool:
        """Whether a number lies in the declared range (NaN never does)."""
        if isinstance(value, float) and math.isnan(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def check(self, value: Any) -> None:
        """Raise LabkitError unless `value` is one of the choices / in the range (each item of a list)."""
        if self.choices is not None:
            _check_choice(self, value)
        if not self.is_range:
            return
        for v in (value if self.is_list else [value]):
            where = f"{self.path}[]" if self.is_list else self.path
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise LabkitError(f"{where}={v!r} is not a number; {self.allowed_text()}")
            if not self.in_range(v):
                raise LabkitError(f"{where}={v!r} is out of range; {self.allowed_text()}")

    def allowed_text(self, fix: bool = True) -> str:
        """What an error appends: the allowed values and the fix, e.g. 'allowed: [0, 1); fix: --dropout X ...'."""
        allowed = (f"allowed: {self.range_text()}{self.hint}" if self.is_range else
                   f"allowed: {', '.join(self.choice_names())}" if self.choices is not None else "")
        parts = [allowed] + ([f"fix: {self.fix_text()}"] if fix else [])
        return "; ".join(p for p in parts if p)

    def fix_text(self) -> str:
        """How to give this field a good value: its flag (or --set), what is allowed, and the default as an example."""
        how = f"{self.flag} X" if self.flag else f"--set {self.path}=X"
        example = value_text(self.default)
        if self.is_range:
            each = "each item of X" if self.is_list else "X"
            return f"{how} with {each} in {self.range_text()}, e.g. {example} (the default)"
        if self.type is bool or str(self.type) == "bool":
            return f"{how} with X true or false (default {example})"
        if self.choices is not None:
            return f"{how} with X one of the names above, e.g. {example} (the default)"
        return f"{how} (default {example})"

    def widget_kind(self) -> str:
        """The widget the lab builds: the declared kind, else one from the type and choices."""
        if self.widget:
            return self.widget
        t = str(self.type)
        if self.choices is not None:
            return "dropdown"
        if self.type is bool or t == "bool":
            return "checkbox"
        if self.type is int or t == "int":
            return "int"
        if self.type is float or t == "float":
            return "float"
        return "list" if self.is_list else "text"

    def widget_label(self) -> str:
        """The label the lab shows."""
        return self.label or self.name.replace("_", " ")

    def cli_help(self) -> str:
        """The flag's --help text: the help, then the allowed range or names."""
        if self.choices is not None:
            return f"{self.help}: {', '.join(self.choice_names())}"
        if self.is_range:
            return f"{self.help}; in {self.range_text()}"
        return self.help


def _bound(x: float) -> str:
    if x == INF:
        return "inf"
    short = f"{x:g}"
    return short if float(short) == x else str(int(x)) if float(x).is_integer() else repr(x)


def _check_choice(f: Field, value: Any) -> None:
    if isinstance(f.choices, Registry):
        f.choices.check(value)  # the registry's own error: value and every valid name
    elif value not in f.choices:
        raise LabkitError(f"unknown {f.name} {value!r}; choose one of: {', '.join(f.choices)}")


FIELDS: dict[str, Field] = {}
_TYPES = config_paths()  # computed once: the validator reads a type per field on every lab change


def _declare(path: str, help: str, **kw: Any) -> None:
    if path not in _TYPES:
        raise ValueError(f"field {path!r} is not in labkit.config")
    if path in FIELDS:
        raise ValueError(f"field {path!r} is declared twice")
    if kw.get("widget") not in (None, *WIDGET_KINDS) or kw.get("section") not in (None, *SECTIONS):
        raise ValueError(f"field {path!r}: unknown widget or section")
    FIELDS[path] = Field(path, help, **kw)


# Declaration order is the lab's order within a section and the order of the CLI's flags. Where 0 switches
# a feature off, `hint` says so in the range error.

# -- data -------------------------------------------------------------------------------------------------
_declare("data.dataset", "dataset", choices=DATASETS, flag="--data", section="Data",
         hidden=("folder",))  # folder needs a path: the Python API and the CLI give it
_declare("data.subset", "training examples, stratified by class (0 = all)", lo=0, hi=INF, flag="--subset",
         section="Data", label="subset (0 = all)", hint=" (0 = all training images)", data="image")
_declare("data.val_size", "validation examples carved from the training set (stratified)", lo=0, hi=INF,
         flag="--val-size", section="Data", label="validation size", data="image")
_declare("data.points", "2-D sets: training points generated (val and test are generated too)", lo=10,
         hi=1_000_000, flag="--points", section="Data", label="points (2-D sets)", data="points")
_declare("data.noise", "2-D sets: std of the Gaussian noise added to the points", lo=0, hi=10, flag="--noise",
         section="Data", label="noise (2-D sets)", data="points")
_declare("data.preprocess", "input preprocessing", choices=PREPROCESS, flag="--preprocess", section="Data",
         data="image")
_declare("data.root", "data directory (default: $LABKIT_DATA, else the per-user cache)", flag="--data-root")
_declare("data.folder", "with --data folder: your images, one sub-folder per class", flag="--folder")
_declare("data.download", "fetch the official archive when the data is missing and we are online")

# -- model ------------------------------------------------------------------------------------------------
_declare("model.kind", "model", choices=MODELS, flag="--model", section="Model", label="model")
_declare("model.depth", "hidden layers (mlp) or stages (convnet, resnet)", lo=1, hi=50, flag="--depth",
         section="Model")
_declare("model.width", "units (mlp) or first-stage channels (convnet, resnet; doubled per stage)", lo=1, hi=4096,
         flag="--width", section="Model")
_declare("model.activation", "activation", choices=ACTIVATIONS, flag="--activation", section="Model")
_declare("model.init", "initializer", choices=INITIALIZERS, flag="--init", section="Model")
_declare("model.norm", "normalization", choices=NORMS, flag="--norm", section="Model")
_declare("model.whiten", "convnet: a frozen 2x2 patch-whitening first layer fitted to the training images "
         "(PCA whitening of each patch); false: a plain 3x3 conv-norm-act stem", flag="--whiten", section="Model",
         label="whitening stem")
_declare("model.dropout", "dropout probability, before the classifier (and per layer in mlp)", lo=0, hi=1,
         hi_open=True, flag="--dropout", section="Model", widget="slider", step=0.05)
_declare("model.dropconnect", "DropConnect: probability of zeroing each weight (not unit) of the classifier, and of "
         "the mlp's hidden layers after the first, while training (inverted scaling; off in eval)", lo=0, hi=1,
         hi_open=True, flag="--dropconnect", section="Model", label="DropConnect", widget="slider", step=0.05,
         hint=" (0 = off; a probability below 1)")

# -- optimizer --------------------------------------------------------------------------------------------
_declare("optim.name", "optimizer", choices=OPTIMIZERS, flag="--optimizer", section="Optimizer", label="optimizer")
# lr > 0 cannot sit on a log slider; the box beside it holds the exact value from 0 up (see widgets.controls)
_declare("optim.lr", "peak learning rate (after warmup)", lo=0, hi=100, lo_open=True, flag="--lr",
         section="Optimizer", label="learning rate", widget="log", step=0.05, log_min=1e-6,
         hint="; try 0.1 for SGD, 1e-3 for Adam")
_declare("optim.momentum", "momentum (momentum, nesterov, rmsprop)", lo=0, hi=1, hi_open=True, flag="--momentum",
         section="Optimizer", optimizer_uses=True)
_declare("optim.beta1", "Adam's beta1: decay of the gradient average", lo=0, hi=1, hi_open=True, flag="--beta1",
         section="Optimizer", optimizer_uses=True)
_declare("optim.beta2", "Adam's beta2: decay of the squared-gradient average", lo=0, hi=1, hi_open=True,
         flag="--beta2", section="Optimizer", optimizer_uses=True)
_declare("optim.weight_decay", "L2 weight decay (decoupled for adamw); weights only, not biases or norm gains",
         lo=0, hi=1, flag="--weight-decay", section="Optimizer", label="weight decay", optimizer_uses=True)
_declare("optim.l1", "L1 penalty on weights, added to the loss", lo=0, hi=1, flag="--l1", section="Optimizer",
         label="L1 penalty")
_declare("optim.grad_clip", "max global gradient norm (0 = off)", lo=0, hi=INF, flag="--grad-clip",
         section="Optimizer", label="grad clip (0 = off)", hint=" (0 = off)")
_declare("optim.eps", "epsilon of the adaptive optimizers (adagrad, rmsprop, adam, adamw)", lo=0, hi=1,
         lo_open=True)

# -- schedule ---------------------------------------------------------------------------------------------
_declare("schedule.name", "LR schedule", choices=SCHEDULES, flag="--schedule", section="Schedule",
         label="schedule")
_declare("schedule.warmup_epochs", "linear warmup in front of any schedule, in epochs (fractions allowed); onecycle "
         "rises once, over this many epochs instead of pct_start", lo=0,
         hi=1000, flag="--warmup", section="Schedule", label="warmup (epochs)")
_declare("schedule.milestones", "step/multistep: milestones as fractions of training", lo=0, hi=1, lo_open=True,
         hi_open=True, section="Schedule", label="milestones (fractions)", hint=" (fractions of training)",
         schedules=("step", "multistep"))
_declare("schedule.gamma", "step/multistep: factor at each milestone; exponential: factor over all training",
         lo=0, hi=1, lo_open=True, section="Schedule", schedules=("step", "multistep", "exponential"))
_declare("schedule.step_every", "step: decay every this many epochs (0 = use the milestones)", lo=0, hi=1000,
         section="Schedule", label="step every (epochs)", schedules=("step",))
# its upper end is optim.lr's: validate checks min_lr <= lr itself
_declare("schedule.min_lr", "cosine / linear / restarts: the floor (at most optim.lr)", lo=0,
         hi=FIELDS["optim.lr"].hi,
         section="Schedule", label="min LR", schedules=("cosine", "linear", "restarts"))
_declare("schedule.pct_start", "onecycle: fraction of training spent rising (a warmup, when set, replaces it)", lo=0,
         hi=1, lo_open=True,
         hi_open=True, section="Schedule", label="rise fraction", schedules=("onecycle",))
_declare("schedule.div_factor", "onecycle: start lr = lr / div_factor", lo=1, hi=1e6, section="Schedule",
         label="start = LR /", schedules=("onecycle",))
_declare("schedule.final_div_factor", "onecycle: final lr = start lr / final_div_factor", lo=1, hi=1e9,
         section="Schedule", label="final = start /", schedules=("onecycle",))
_declare("schedule.restart_epochs", "cosine restarts: first period in epochs", lo=0, hi=1000, lo_open=True,
         section="Schedule", label="first period (ep.)", schedules=("restarts",))
_declare("schedule.restart_mult", "cosine restarts: period multiplier after each restart", lo=1, hi=100,
         section="Schedule", label="period x", schedules=("restarts",))

# -- regularization ---------------------------------------------------------------------------------------
_declare("reg.flip", "random horizontal flip: true/false", flag="--flip", section="Regularization",
         label="horizontal flip", data="image")
_declare("reg.crop", "random-crop padding in pixels (reflect-pad, crop back; 0 = off)", lo=0, hi=16, flag="--crop",
         section="Regularization", label="pad-crop (px)", data="image")
_declare("reg.cutout", "cutout: side of a zeroed square in pixels (0 = off)", lo=0, hi=32, flag="--cutout",
         section="Regularization", label="cutout side (px)", data="image")
_declare("reg.mixup", "mixup: Beta(alpha, alpha) alpha (0 = off)", lo=0, hi=100, flag="--mixup",
         section="Regularization", label="mixup alpha", data="image")
_declare("reg.cutmix", "cutmix: Beta(alpha, alpha) alpha (0 = off)", lo=0, hi=100, flag="--cutmix",
         section="Regularization", label="cutmix alpha", data="image")
_declare("reg.label_smoothing", "label smoothing", lo=0, hi=1, hi_open=True, flag="--label-smoothing",
         section="Regularization", widget="slider", step=0.05)

# -- training ---------------------------------------------------------------------------------------------
# epochs may be 0 only when train.steps is set: validate checks that itself
_declare("train.epochs", "epochs (fractions allowed)", lo=0, hi=10000, flag="--epochs", section="Training",
         hint=" (0 only with train.steps set)")
_declare("train.batch_size", "batch size", lo=1, hi=65536, flag="--batch-size", section="Training",
         label="batch size")
_declare("train.seed", "random seed", lo=0, hi=2**32 - 1, flag="--seed", section="Training")  # numpy's seed range
_declare("train.patience", "early stopping: epochs without validation improvement (0 = off)", lo=0, hi=10000,
         flag="--patience", section="Training", label="early-stop patience", hint=" (0 = no early stopping)")
_declare("train.precision", "numeric precision", choices=PRECISIONS, flag="--precision", section="Training")
_declare("train.steps", "train exactly this many steps instead of epochs (0 = use epochs)", lo=0, hi=10_000_000,
         flag="--steps")
_declare("train.threads", "torch threads (0 = automatic: 1 for the 2-D sets, else every core)", lo=0, hi=1024,
         flag="--threads", hint=" (0 = all cores)")
_declare("train.monitor", "early stopping and the best checkpoint watch this", choices=("val_acc", "val_loss"))
_declare("train.eval_batch_size", "batch size of evaluation", lo=1, hi=100000)
_declare("train.test", "evaluate the best checkpoint on the test set at the end")
_declare("train.tta", "score the test set with each image's mirror image too (test-time augmentation); "
         "the per-epoch validation goes without it, to stay cheap")
_declare("train.out", "run store directory: each run writes a directory under it", flag="--runs")
_declare("train.name", "a label for the run id", flag="--name")

# -- weight averaging and snapshot ensembles (labkit.training.averaging, .snapshots) ---------------------------
_declare("train.ema", "EMA (Polyak) decay of the averaged weights per step (0 = off), e.g. 0.999", lo=0, hi=1,
         hi_open=True, flag="--ema", section="Averaging", label="EMA decay (0 = off)",
         hint=" (0 = no EMA; 1 would never move)")
_declare("train.ema_warmup", "EMA warm-up power p: update n uses min(decay, 1 - (1+n)^-p), as timm's ModelEmaV3 "
         "(1 = a plain running mean; 0 = off: the full decay from the first step)", lo=0, hi=1,
         flag="--ema-warmup", section="Averaging", label="EMA warm-up power", hint=" (0 = no warm-up)")
_declare("train.swa_start", "SWA: from this epoch on, average the weights at each epoch's end under --swa-lr "
         "(0 = off)", lo=0, hi=10000, flag="--swa-start", section="Averaging", label="SWA start (epoch)",
         hint=" (0 = no SWA)")
_declare("train.swa_lr", "SWA: the constant learning rate SWALR anneals to from --swa-start on", lo=0, hi=100,
         lo_open=True, flag="--swa-lr", section="Averaging", label="SWA learning rate", widget="log", step=0.05,
         log_min=1e-6, hint="; try about half the peak rate (0.05 for SGD at 0.1)")
_declare("train.avg_bn", "batch-norm statistics of the averaged weights: recompute them on training images "
         "(update_bn) or average the running buffers too", choices=("recompute", "average"), flag="--avg-bn",
         section="Averaging", label="BN of averages")
_declare("train.snapshots", "snapshot ensemble: train M equal cosine cycles (restarts) after the warmup, save the "
         "weights at each cycle's end and score their averaged softmax (1 = off; on CIFAR add --warmup 1)", lo=1,
         hi=100, flag="--snapshots",
         section="Averaging", label="snapshots (1 = off)", hint=" (1 = no snapshot ensemble; 2 or more: cycles)")

# -- probes -----------------------------------------------------------------------------------------------
_declare("probe.every", "probe snapshot every N steps (and at the first and last; 0 = off)", lo=0, hi=1_000_000,
         flag="--probe-every", section="Training", label="probe every (steps)", hint=" (0 = probes off)")
_declare("probe.pre_activation", "also record the inputs of each activation")
_declare("probe.batch", "examples in the fixed probe batch", lo=1, hi=10000)
_declare("probe.bins", "histogram bins per layer", lo=1, hi=1000)

# -- transfer learning (labkit.training.transfer); freeze's and classes' forms are checked in labkit.validate ---------
_declare("model.init_from", "start from this run's best.pt (a run directory; a new head where the classes differ)",
         flag="--init-from", section="Transfer", widget="run", label="start from")
_declare("data.classes", "train on these classes only, by index or name, e.g. 0,1,4 or cat,dog (empty = all)",
         flag="--classes", section="Transfer", label="classes (empty = all)", data="image")
_declare("model.freeze", "freeze: none, all (everything but the head) or N (the first N blocks); frozen batch norm "
         "keeps its statistics", flag="--freeze", section="Transfer")
_declare("optim.backbone_lr_scale", "everything but the head learns at this fraction of the rate (0.1: fine-tune)",
         lo=0, hi=10, flag="--backbone-lr-scale", section="Transfer", label="backbone LR scale",
         hint=" (1 = the same rate as the head; 0.1 is usual for fine-tuning)")


# -- scale: the device, data-parallel processes, large batches (labkit.training.distributed, .launch) ----------
_declare("train.device", "where the data, the augmentation and the model live (auto: the CUDA GPU when there is "
         "one)", choices=DEVICES, flag="--device", section="Scale")
_declare("train.nproc", "data-parallel processes on this machine (torchrun + DistributedDataParallel; --batch-size "
         "is the global batch, split evenly; each process gets max(1, threads // N) torch threads)", lo=1, hi=1024,
         flag="--nproc", section="Scale", label="processes", hint=" (1 = one process, no torch.distributed)")
_declare("train.scale_lr", "linear scaling rule: the peak LR becomes --lr x batch/128 (128 is the reference batch; "
         "--warmup stays as given)", choices=("none", "linear"), flag="--scale-lr", section="Scale",
         label="scale LR by batch")
_declare("train.batch_order", "order inside each batch: random, or class (sorted by label: each process and each "
         "--bn-group chunk then sees a few classes, as replicas holding different data would)",
         choices=("random", "class"), flag="--batch-order", section="Scale", label="order in a batch")
# bn_group must divide the per-process batch: labkit.validate checks that itself
_declare("model.bn_group", "ghost batch norm: normalise each chunk of N images of a batch on its own, as N-image "
         "replicas would (0 = the whole batch; must divide the batch per process)", lo=0, hi=65536,
         flag="--bn-group", section="Scale", label="BN group (0 = batch)", hint=" (0 = off; else 2 or more)")


# Config.set's parse errors (labkit.config sits below this module) end with the field's allowed values and fix
add_value_help(lambda path, fix: FIELDS[path].allowed_text(fix) if path in FIELDS else "")


def get_field(path: str) -> Field:
    """The declaration of `path`, or the unknown-path error listing the valid ones."""
    try:
        return FIELDS[path]
    except KeyError:
        raise LabkitError(f"unknown config path {path!r}; valid paths are: {', '.join(FIELDS)}") from None


def relevant(path: str, *, optimizer: str, schedule: str, dataset: str) -> bool:
    """Whether the field matters for this optimizer, schedule and dataset (the lab hides the others)."""
    f = get_field(path)
    if f.optimizer_uses:
        uses = OPTIMIZERS.entry(optimizer).traits.get("uses")
        if uses is not None and f.name not in uses:
            return False
    if f.schedules is not None:
        # a schedule registered outside labkit lists its parameters in a `uses` trait, as optimizers do
        uses = SCHEDULES.entry(schedule).traits.get("uses")
        used = f.name in uses if uses is not None else schedule in f.schedules
        if not used:
            return False
    if f.data is not None:
        return DATASETS.entry(dataset).traits.get("kind") == f.data
    return True


# -- text -------------------------------------------------------------------------------------------------
def _number(v: float) -> str:
    short = f"{v:g}"
    return short if float(short) == v else repr(v)  # short where exact, else every digit (round-trips)


def value_text(value: Any) -> str:
    """A field value as the text `Config.set` parses back: 0.003, true, 0.3,0.6."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return ",".join(_number(float(v)) for v in value)
    return str(value)


def differing(cfg: Config, base: Config | None = None) -> dict[str, Any]:
    """{path: value} of every field where `cfg` differs from `base` (the defaults), in declaration order."""
    ref = base or Config()
    return {p: cfg.get(p) for p in FIELDS if cfg.get(p) != ref.get(p)}


def flags_for(changes: Mapping[str, Any]) -> str:
    """The CLI arguments that make `changes` (path -> value): `--lr 0.01`, else `--set path=value`."""
    parts: list[str] = []
    for path, value in changes.items():
        text, flag = value_text(value), get_field(path).flag
        parts += [flag, shlex.quote(text)] if flag else ["--set", shlex.quote(f"{path}={text}")]
    return " ".join(parts)


def command_line(cfg: Config) -> str:
    """The `labkit train ...` command that reproduces `cfg` (flags for fields that differ from the defaults)."""
    return " ".join(["labkit", "train", *filter(None, [flags_for(differing(cfg))])])
