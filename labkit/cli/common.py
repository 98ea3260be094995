"""Config flags shared by every command that builds a Config (train, check, search), made from labkit.fields."""
from __future__ import annotations

import argparse

from ..config import Config
from ..errors import LabkitError
from ..fields import FIELDS, command_line  # command_line: re-exported, its home is labkit.fields

__all__ = ["FLAGS", "add_config_flags", "apply_args", "config_from_args", "command_line", "dest"]

# flag -> (config path, help): a view of the field declarations, kept for code that reads it
FLAGS: dict[str, tuple[str, str]] = {f.flag: (f.path, f.cli_help()) for f in FIELDS.values() if f.flag}


def dest(path: str) -> str:
    """The argparse attribute a config path's flag fills (`cfg_optim__lr`)."""
    return "cfg_" + path.replace(".", "__")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """Add --config, --set and one flag per declared field flag (all default to 'not given')."""
    g = p.add_argument_group("configuration (defaults: the recipe in labkit.config)")
    g.add_argument("--config", metavar="FILE", help="start from this config.json (or run directory)")
    g.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                   help="set any config field, e.g. --set schedule.gamma=0.2 (repeatable)")
    for flag, (path, help_) in FLAGS.items():
        # '%' would be read as a format by argparse's help
        g.add_argument(flag, dest=dest(path), metavar="X", default=None, help=help_.replace("%", "%%"))


def apply_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Flags, then --set, on top of `cfg` (not validated); returns cfg."""
    for path in FIELDS:
        v = getattr(args, dest(path), None)
        if v is not None:
            cfg.set(path, v)
    for item in getattr(args, "set", []) or []:
        if "=" not in item:
            raise LabkitError(f"--set {item!r}: expected PATH=VALUE, e.g. --set optim.lr=0.05")
        path, value = item.split("=", 1)
        cfg.set(path.strip(), value.strip())
    return cfg


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config the flags describe: --config file, then flags, then --set; validated."""
    cfg = Config.load(args.config) if getattr(args, "config", None) else Config()
    return apply_args(cfg, args).validate()
