"""`labkit check`: the pre-training sanity checks and the LR range test, as a readable report.

    labkit check                                   # the default CIFAR-10 recipe
    labkit check --data spirals --model mlp --init large --figs figs/
    labkit check --lr-start 1e-6 --lr-end 1 --lr-iters 60 --json
    labkit check --lr-confirm 0                    # the suggestion read from the curve alone (no short runs)

Exit status: 0 when every check passes, 1 when one fails, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_config_flags, add_renamed, config_from_args
from .diagnose import flags_for, with_flags


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="sanity checks before training (initial loss, overfit 20 images) and the LR range test",
        description="Check a config before training it: the initial loss against ln C with regularization off, "
                    "that regularization raises it, that the model overfits 20 images to 100% training accuracy, "
                    "and the LR range test with its suggestions. --figs DIR writes lr_range.png and checks.png "
                    "there (no run is written).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    g = p.add_argument_group("checks")
    g.add_argument("--lr-start", type=float, default=1e-7, help="LR range test: first learning rate (default 1e-7)")
    g.add_argument("--lr-end", type=float, default=10.0, help="LR range test: last learning rate (default 10)")
    g.add_argument("--lr-iters", type=int, default=100, help="LR range test: steps (default 100)")
    g.add_argument("--lr-confirm", type=int, default=4, metavar="N",
                   help="LR range test: short runs of the config (at the floor's end, / 2, / 4, ...) that pick the "
                        "suggestion by validation loss (default 4; 0 reads it from the curve alone: the floor's "
                        "end / 2)")
    g.add_argument("--no-lr-test", action="store_true", help="skip the LR range test")
    g.add_argument("--overfit-images", type=int, default=20, help="examples in the overfit check (default 20)")
    g.add_argument("--overfit-steps", type=int, default=300, help="steps allowed to reach 100%% (default 300)")
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument("--figs", metavar="DIR", help="write checks.png and lr_range.png into DIR")
    add_renamed(g, "--out", "--figs", "figs", "the figure folder")
    add_config_flags(p, old_out=False)  # this command's old --out was its figure folder
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..babysit.checks import run_checks

    figs = args.figs
    cfg = config_from_args(args)
    say = None if (args.quiet or args.json) else (lambda s: print(f"... {s}", file=sys.stderr, flush=True))
    report = run_checks(cfg, lr_test=not args.no_lr_test, overfit_images=args.overfit_images,
                        overfit_steps=args.overfit_steps, progress=say,
                        lr_options={"start": args.lr_start, "end": args.lr_end, "iters": args.lr_iters,
                                    "confirm": args.lr_confirm})
    written = []
    if figs:
        from ..plots.babysit import checks_figure, lr_range_plot

        out = Path(figs)
        out.mkdir(parents=True, exist_ok=True)
        checks_figure(report).savefig(out / "checks.png", dpi=100)
        written.append(out / "checks.png")
        if report.lr is not None:
            lr_range_plot(report.lr).savefig(out / "lr_range.png", dpi=100)
            written.append(out / "lr_range.png")
    if args.json:
        d = report.to_dict()
        for c in d["checks"]:
            with_flags(c)
        if d["lr"] is not None:
            d["lr"]["flags"] = flags_for(d["lr"]["fix"])
        d["figures"] = [str(p) for p in written]
        print(json.dumps(d, indent=2))
    else:
        print(report.text(fix_text=flags_for))
        for p in written:
            print(f"wrote {p}")
    return 0 if report.passed else 1
