"""The `labkit` command: one sub-command module per job, each adding its own parser."""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import LabkitError

# each module defines add(subparsers), registering a parser whose `func(args) -> int` runs it
COMMANDS = ["train", "runs", "data", "search", "plot", "demo", "lab", "diagnose", "check", "recipe", "ensemble"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands from COMMANDS)."""
    p = argparse.ArgumentParser(prog="labkit", description="A lab for the craft of training neural networks.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one plain line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LabkitError as e:
        print(f"labkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130
