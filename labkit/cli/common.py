"""Config flags shared by every command that builds a Config (train, check, search)."""
from __future__ import annotations

import argparse

from ..activations import ACTIVATIONS
from ..config import Config, config_paths
from ..data import DATASETS
from ..errors import LabkitError
from ..initializers import INITIALIZERS
from ..models import MODELS, NORMS
from ..optimizers import OPTIMIZERS
from ..schedules import SCHEDULES

# flag -> (config path, help). Values are parsed by the config's own types.
FLAGS: dict[str, tuple[str, str]] = {
    "--data": ("data.dataset", f"dataset: {', '.join(DATASETS.names())}"),
    "--data-root": ("data.root", "data directory (default: $LABKIT_DATA, else the per-user cache)"),
    "--folder": ("data.folder", "with --data folder: your images, one sub-folder per class"),
    "--subset": ("data.subset", "training images, stratified (0 = all)"),
    "--val-size": ("data.val_size", "validation images carved from train"),
    "--preprocess": ("data.preprocess", "none, mean, standardize"),
    "--noise": ("data.noise", "2-D sets: noise"),
    "--points": ("data.points", "2-D sets: training points"),
    "--model": ("model.kind", f"model: {', '.join(MODELS.names())}"),
    "--depth": ("model.depth", "hidden layers (mlp) or stages (convnet, resnet)"),
    "--width": ("model.width", "units (mlp) or first-stage channels"),
    "--activation": ("model.activation", f"activation: {', '.join(ACTIVATIONS.names())}"),
    "--init": ("model.init", f"initializer: {', '.join(INITIALIZERS.names())}"),
    "--norm": ("model.norm", f"normalization: {', '.join(NORMS.names())}"),
    "--dropout": ("model.dropout", "dropout probability in [0, 1)"),
    "--optimizer": ("optim.name", f"optimizer: {', '.join(OPTIMIZERS.names())}"),
    "--lr": ("optim.lr", "peak learning rate"),
    "--momentum": ("optim.momentum", "momentum (momentum, nesterov, rmsprop)"),
    "--beta1": ("optim.beta1", "Adam beta1"),
    "--beta2": ("optim.beta2", "Adam beta2"),
    "--weight-decay": ("optim.weight_decay", "L2 weight decay (decoupled for adamw)"),
    "--l1": ("optim.l1", "L1 penalty on weights"),
    "--grad-clip": ("optim.grad_clip", "max gradient norm (0 = off)"),
    "--schedule": ("schedule.name", f"LR schedule: {', '.join(SCHEDULES.names())}"),
    "--warmup": ("schedule.warmup_epochs", "linear warmup, in epochs"),
    "--mixup": ("reg.mixup", "mixup alpha (0 = off)"),
    "--cutmix": ("reg.cutmix", "cutmix alpha (0 = off)"),
    "--cutout": ("reg.cutout", "cutout square size in pixels (0 = off)"),
    "--crop": ("reg.crop", "random-crop padding in pixels (0 = off)"),
    "--flip": ("reg.flip", "random horizontal flip: true/false"),
    "--label-smoothing": ("reg.label_smoothing", "label smoothing in [0, 1)"),
    "--epochs": ("train.epochs", "epochs (fractions allowed)"),
    "--steps": ("train.steps", "train exactly this many steps instead of epochs"),
    "--batch-size": ("train.batch_size", "batch size"),
    "--seed": ("train.seed", "random seed"),
    "--threads": ("train.threads", "torch threads (0 = all cores)"),
    "--precision": ("train.precision", "auto, fp32 or bf16 (auto: bf16 autocast for images where the CPU/GPU has it)"),
    "--patience": ("train.patience", "early stopping patience in epochs (0 = off)"),
    "--out": ("train.out", "run store directory"),
    "--name": ("train.name", "a label for the run id"),
    "--probe-every": ("probe.every", "probe snapshot every N steps (0 = off)"),
}


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """Add --config, --set and one flag per common config field (all default to 'not given')."""
    g = p.add_argument_group("configuration (defaults: the recipe in labkit.config)")
    g.add_argument("--config", metavar="FILE", help="start from this config.json (or run directory)")
    g.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                   help="set any config field, e.g. --set schedule.gamma=0.2 (repeatable)")
    for flag, (path, help_) in FLAGS.items():
        g.add_argument(flag, dest="cfg_" + path.replace(".", "__"), metavar="X", default=None, help=help_)


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config the flags describe: --config file, then flags, then --set; validated."""
    cfg = Config.load(args.config) if getattr(args, "config", None) else Config()
    for path in config_paths():
        v = getattr(args, "cfg_" + path.replace(".", "__"), None)
        if v is not None:
            cfg.set(path, v)
    for item in getattr(args, "set", []) or []:
        if "=" not in item:
            raise LabkitError(f"--set {item!r}: expected PATH=VALUE, e.g. --set optim.lr=0.05")
        path, value = item.split("=", 1)
        cfg.set(path.strip(), value.strip())
    return cfg.validate()


def command_line(cfg: Config) -> str:
    """The `labkit train ...` command that reproduces `cfg` (flags for fields that differ from the defaults)."""
    import shlex

    default, flat = Config().to_dict(), cfg.to_dict()
    by_path = {path: flag for flag, (path, _) in FLAGS.items()}
    parts = ["labkit", "train"]
    for section, fields in flat.items():
        for name, value in fields.items():
            if default[section][name] == value:
                continue
            path = f"{section}.{name}"
            text = ",".join(f"{v:g}" for v in value) if isinstance(value, list) else (
                f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value))
            if path in by_path:
                parts += [by_path[path], shlex.quote(text)]
            else:
                parts += ["--set", shlex.quote(f"{path}={text}")]
    return " ".join(parts)
