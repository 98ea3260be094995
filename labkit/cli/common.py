"""Config flags shared by every command that builds a Config (train, check, search), made from labkit.fields.

Flag conventions, the same in every sub-command: `--runs DIR` is the run store, `--figs DIR` a folder of
figures. The old `--out` still works where it used to, with a note on stderr naming the new flag.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Config
from ..errors import LabkitError
from ..fields import FIELDS, command_line  # command_line: re-exported, its home is labkit.fields

__all__ = ["FLAGS", "add_config_flags", "add_renamed", "note_renamed", "apply_args", "config_from_args", "command_line", "dest"]

# flag -> (config path, help): a view of the field declarations, kept for code that reads it
FLAGS: dict[str, tuple[str, str]] = {f.flag: (f.path, f.cli_help()) for f in FIELDS.values() if f.flag}


def dest(path: str) -> str:
    """The argparse attribute a config path's flag fills (`cfg_optim__lr`)."""
    return "cfg_" + path.replace(".", "__")


def note_renamed(old: str, new: str, what: str) -> None:
    """The deprecation note for an old flag spelling, on stderr (stdout stays the command's output)."""
    print(f"labkit: note: {old} is deprecated here; use {new} ({what})", file=sys.stderr)


class _Renamed(argparse.Action):
    """An old spelling of a flag: fills the new flag's attribute and says on stderr to use the new one."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", what: str = "", **kw: Any) -> None:
        self.new, self.what = new, what
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        note_renamed(option_string or "", self.new, self.what)
        setattr(namespace, self.dest, values)


def add_renamed(p: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, dest: str,
                what: str) -> None:
    """Accept `old` as a hidden, deprecated spelling of `new` (stored in `dest`), with a note when used."""
    # no default of its own: the new flag's default stands when the old spelling is not used
    p.add_argument(old, dest=dest, action=_Renamed, new=new, what=what, metavar="DIR", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)


def add_config_flags(p: argparse.ArgumentParser, old_out: bool = True) -> None:
    """Add --config, --set and one flag per declared field flag (all default to 'not given').

    old_out: accept the old `--out DIR` for the run store (--runs); a command whose `--out` was a figure
    folder passes False and maps it to --figs itself.
    """
    g = p.add_argument_group("configuration (defaults: the recipe in labkit.config)")
    g.add_argument("--config", metavar="FILE", help="start from this config.json (or run directory)")
    g.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                   help="set any config field, e.g. --set schedule.gamma=0.2 (repeatable)")
    for flag, (path, help_) in FLAGS.items():
        # '%' would be read as a format by argparse's help
        g.add_argument(flag, dest=dest(path), metavar="X", default=None, help=help_.replace("%", "%%"))
    if old_out:
        add_renamed(g, "--out", FIELDS["train.out"].flag, dest("train.out"), "the run store")


def _given(args: argparse.Namespace, path: str) -> bool:
    """Whether the command line set `path` (by its flag or --set)."""
    if getattr(args, dest(path), None) is not None:
        return True
    return any(item.split("=", 1)[0].strip() == path for item in getattr(args, "set", []) or [])


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
    """The Config the flags describe: --config file, then flags, then --set; validated.

    Without --config, a dataset's own default subset applies unless --subset is given: the default 5,000 is
    CIFAR's, while a folder of your own images is used whole (see labkit.data.default_subset).
    """
    from ..data.sets import default_subset

    cfg = Config.load(args.config) if getattr(args, "config", None) else Config()
    cfg = apply_args(cfg, args)
    if not getattr(args, "config", None) and not _given(args, "data.subset"):
        cfg.data.subset = default_subset(cfg.data.dataset)
    return cfg.validate()
