"""`labkit recipe`: the coarse-to-fine recipe: LR range test, short coarse search, longer refine stage.

    labkit recipe --subset 5000 --coarse-trials 12 --fine-trials 6 --workers 2
    labkit recipe --data spirals --model mlp --coarse-epochs 2 --fine-epochs 10 --runs runs/
    labkit search --report recipe-coarse,recipe-fine --figs figs/     # plots of both stages

Both stages are studies in RUNS/search.journal (or --storage), named STUDY-coarse and STUDY-fine;
rerunning the same command resumes them.
"""
from __future__ import annotations

import argparse
import json
import signal
import threading

from ..data.sets import ensure_available
from ..errors import LabkitError
from .common import add_config_flags, config_from_args


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LabkitError(f"--weight-decays {text!r}: give numbers separated by commas, e.g. 0,1e-5,1e-4") from None


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipe", help="coarse-to-fine search from the LR range test (coarse 1-5 epochs, fine 10-20 epochs)",
        description="Run the LR range test on the config, search lr (log range around the suggestion) and weight "
                    "decay in short coarse trials, then refine around the best coarse trials with longer ones. "
                    "--runs is the run store of the trials.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    g = p.add_argument_group("recipe")
    g.add_argument("--coarse-trials", type=int, default=12, help="coarse stage budget (default 12)")
    g.add_argument("--fine-trials", type=int, default=8, help="fine stage budget (default 8; 0 = coarse only)")
    g.add_argument("--coarse-epochs", type=float, default=3.0, help="epochs per coarse trial (default 3)")
    g.add_argument("--fine-epochs", type=float, default=15.0, help="epochs per fine trial (default 15)")
    g.add_argument("--workers", type=int, default=1, help="worker processes, each with its share of the cores")
    g.add_argument("--top", type=int, default=3, help="coarse trials the fine ranges are drawn around (default 3)")
    g.add_argument("--weight-decays", default="0,1e-5,1e-4", help="coarse weight-decay choices (default 0,1e-5,1e-4)")
    g.add_argument("--lr-span", default="0.1,30", help="coarse lr range as factors of the suggestion (default 0.1,30)")
    g.add_argument("--center-lr", type=float, default=None, help="skip the LR range test and centre the range here")
    g.add_argument("--lr-start", type=float, default=1e-7, help="LR range test: first learning rate")
    g.add_argument("--lr-end", type=float, default=10.0, help="LR range test: last learning rate")
    g.add_argument("--lr-iters", type=int, default=100, help="LR range test: steps")
    g.add_argument("--sampler", default="random", help="random, grid or tpe (both stages)")
    g.add_argument("--study", default="recipe", help="study name prefix: STUDY-coarse and STUDY-fine")
    g.add_argument("--storage", default=None, help="journal file or database URL (default: RUNS/search.journal)")
    g.add_argument("--quiet", action="store_true", help="no line per trial")
    g.add_argument("--json", action="store_true", help="print the result as JSON at the end")
    add_config_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..babysit.recipe import coarse_to_fine
    from ..search.storage import default_journal, describe

    # the trials run without probes (coarse_to_fine switches them off); the recommended command keeps the
    # config's probes, so the run it trains can be diagnosed and plotted
    base = config_from_args(args)
    ensure_available(base.data)  # missing data: one error now, not a failed run directory per trial
    span = _floats(args.lr_span)
    if len(span) != 2:
        raise LabkitError(f"--lr-span {args.lr_span!r}: give two factors LOW,HIGH, e.g. 0.1,30")
    storage = args.storage or default_journal(base.train.out)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        def _stop(signum, frame):  # Ctrl-C: stop the running trials cleanly; rerun to resume
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    if not args.json:
        print(f"recipe: studies {args.study}-coarse and {args.study}-fine in {describe(storage)}", flush=True)
    r = coarse_to_fine(base, lr=args.center_lr,
                       lr_options={"start": args.lr_start, "end": args.lr_end, "iters": args.lr_iters},
                       coarse_trials=args.coarse_trials, fine_trials=args.fine_trials,
                       coarse_epochs=args.coarse_epochs, fine_epochs=args.fine_epochs,
                       weight_decays=_floats(args.weight_decays), lr_span=span, top=args.top, sampler=args.sampler,
                       workers=args.workers, storage=storage, out=base.train.out, study=args.study,
                       stop_event=stop, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
    else:
        print()
        print(r.text())
    if stop.is_set():
        print("stopped; rerun the same command to resume")
        return 130
    return 0 if r.best_config is not None else 1
