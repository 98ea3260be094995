"""`labkit search`: hyperparameter search (random, grid, TPE) over any config path, coarse to fine.

    labkit search --space "optim.lr=log:1e-4:1e-1" --space "model.dropout=0:0.5" \
        --sampler random --trials 24 --epochs 3 --subset 5000 --workers 2 --study coarse
    labkit search --refine coarse --top 5 --trials 12 --epochs 15 --study fine
    labkit search --storage postgresql://user@host/db --study shared ...
    labkit search --report coarse --figs figs/
    labkit search --demo --figs figs/
"""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from ..config import Config
from ..data.sets import ensure_available
from ..errors import LabkitError
from ..search.space import PRUNERS, SAMPLERS
from .common import add_config_flags, apply_args, config_from_args, note_renamed


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="hyperparameter search on Optuna (random, grid, TPE; coarse to fine)",
        description="Search hyperparameters: each trial is an ordinary labkit run. Studies live in a journal file "
                    "under the run store (--runs, default runs/search.journal) unless --storage gives a database "
                    "URL; rerunning the same command resumes the study. --figs is where --report and --demo write "
                    "their figures.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    g = p.add_argument_group("search")
    g.add_argument("--space", action="append", default=[], metavar="SPEC",
                   help="a searched field: PATH=log:LO:HI, PATH=LO:HI or PATH=A,B,C (repeatable)")
    g.add_argument("--sampler", default="random",
                   help=f"{', '.join(SAMPLERS.names())}; a comma list (e.g. grid,random) runs one study per "
                        f"sampler, named STUDY-SAMPLER, at the same budget")
    g.add_argument("--trials", type=int, default=20, help="budget: trials to finish (grid: the full grid that fits)")
    g.add_argument("--workers", type=int, default=1, help="worker processes, each with its share of the cores")
    g.add_argument("--study", default="search", help="study name (rerun the same name to resume)")
    g.add_argument("--storage", default=None,
                   help="journal file path or database URL (default: RUNS/search.journal, RUNS from --runs)")
    g.add_argument("--pruner", default="none",
                   help=f"stop poor trials early on val_acc per epoch: {', '.join(PRUNERS.names())}")
    g.add_argument("--grid-points", type=int, default=None, help="grid: points per range (default: what fits --trials)")
    g.add_argument("--search-seed", type=int, default=0, help="seed of the samplers")
    g.add_argument("--refine", metavar="STUDY", help="coarse to fine: search a narrower space around STUDY's top trials")
    g.add_argument("--top", type=int, default=5, help="with --refine: how many top trials set the new ranges")
    g.add_argument("--report", metavar="STUDY", help="write plots of STUDY (comma list to compare) into --figs and "
                                                     "print its table and border warnings")
    g.add_argument("--figs", metavar="DIR", default=None, help="with --report or --demo: the figure folder (default: figs)")
    # the old --out: the run store when searching, the figure folder with --report/--demo (resolved in run)
    g.add_argument("--out", dest="old_out", metavar="DIR", default=None, help=argparse.SUPPRESS)
    g.add_argument("--demo", action="store_true",
                   help="Bergstra & Bengio's random-vs-grid demonstration on a synthetic objective (instant)")
    g.add_argument("--repeats", type=int, default=500, help="with --demo: repeats per budget")
    g.add_argument("--quiet", action="store_true", help="no line per trial")
    # internal: a worker process started by a search with --workers > 1
    g.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    g.add_argument("--worker-count", type=int, default=1, help=argparse.SUPPRESS)
    g.add_argument("--cpus", default="", help=argparse.SUPPRESS)
    add_config_flags(p, old_out=False)
    p.set_defaults(func=run)


def _store(args: argparse.Namespace) -> str:
    # the run store: --runs (or --set train.out=), else the --config file's, else the default
    if getattr(args, "cfg_train__out", None):
        return args.cfg_train__out
    for item in args.set or []:
        if item.split("=", 1)[0].strip() == "train.out":
            return item.split("=", 1)[1].strip()
    return Config.load(args.config).train.out if args.config else Config().train.out


def _resolve_old_out(args: argparse.Namespace) -> None:
    # the old --out meant the figure folder for --report/--demo and the run store otherwise; map it, with a note
    if args.old_out is None:
        return
    if args.report or args.demo:
        note_renamed("--out", "--figs", "the figure folder")
        args.figs = args.figs or args.old_out
    else:
        note_renamed("--out", "--runs", "the run store")
        args.cfg_train__out = args.cfg_train__out or args.old_out


def _apply_flags(cfg: Config, args: argparse.Namespace) -> Config:
    """Flags and --set on top of `cfg` (used by --refine, whose base is the coarse study's config)."""
    return apply_args(cfg, args).validate()


def run(args: argparse.Namespace) -> int:
    from .. import search

    if args.worker:
        cpus = [int(c) for c in args.cpus.split(",") if c.strip()]
        return search.worker_main(args.storage, args.study, args.worker_index, args.worker_count, cpus,
                                  progress=not args.quiet)
    _resolve_old_out(args)
    if args.demo:
        return _demo(args)
    if args.report:
        return _report(args, args.report.split(","))

    samplers = [s.strip() for s in args.sampler.split(",") if s.strip()]
    for s in samplers:  # names and budgets first: before a study is opened, a coarse one read or anything printed
        SAMPLERS.check(s)
    PRUNERS.check(args.pruner)
    if args.workers < 1:
        raise LabkitError(f"--workers {args.workers}; give a whole number >= 1 (at most one per core is fastest)")
    if args.trials < 1:
        raise LabkitError(f"--trials {args.trials}; the budget must be a whole number >= 1")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        def _stop(signum, frame):  # Ctrl-C: stop the running trials cleanly; the study resumes later
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)

    out = _store(args)
    storage = args.storage or search.default_journal(out)
    if args.refine:
        if args.refine == args.study:
            raise LabkitError(f"--refine {args.refine} --study {args.study}: the fine search needs its own "
                              f"name, e.g. --study {args.refine}-fine")
        coarse = search.load_study(args.refine, storage)
        setup = search.study_setup(coarse)
        base = _apply_flags(setup.base.copy(), args)
        space, widened = search.refine_with_notes(coarse, top=args.top)
        print(f"refined from {args.refine} (top {args.top}): {space}")
        for w in widened:  # the coarse study's border warnings, answered: those ranges now go past the edge
            print(f"widened: {w}")
        if args.space:  # explicit specs override the refined ranges of the same paths
            extra = search.Space.parse(args.space)
            space = search.Space([extra[p.path] if p.path in extra.paths else p for p in space] +
                                 [p for p in extra if p.path not in space.paths])
    else:
        if not args.space:
            raise LabkitError(f"give the space to search with --space (repeatable); {search.SYNTAX}")
        base = config_from_args(args)
        if args.cfg_probe__every is None and not args.config and not any(x.startswith("probe.every") for x in args.set):
            base.probe.every = 0  # a search wants scores; probes stay on only when asked for (--probe-every)
        space = search.Space.parse(args.space, base=base)
    ensure_available(base.data)  # missing data: one error now, not a failed run directory per trial
    search.open_storage(storage)  # an unusable storage (a directory, a server down): one error before we start
    common = dict(workers=args.workers, storage=storage, pruner=args.pruner, out=out, stop_event=stop,
                  seed=args.search_seed, grid_points=args.grid_points, progress=not args.quiet)
    print(f"searching {space} with {','.join(samplers)} ({args.trials} trials, {args.workers} worker(s)); "
          f"study {args.study!r} in {_describe(storage)}")
    if len(samplers) == 1:
        studies = {samplers[0]: search.run_search(base, space, sampler=samplers[0], trials=args.trials,
                                                  study=args.study, **common)}
        names = [args.study]
    else:
        studies = search.compare_samplers(base, space, trials=args.trials, samplers=samplers, study=args.study, **common)
        names = [f"{args.study}-{s}" for s in samplers]
    for s in studies.values():
        print()
        print(search.trials_table(s))
        for w in search.border_warnings(s):
            print(f"warning: {w}")
    if stop.is_set():
        print("stopped; rerun the same command to resume")
        return 130
    print(f"\nplots: labkit search --report {','.join(names)} --figs figs/"
          + (f" --storage {args.storage}" if args.storage else (f" --runs {out}" if out != "runs" else "")))
    return 0


def _describe(storage: str) -> str:
    from ..search.storage import describe

    return describe(storage)


def _report(args: argparse.Namespace, names: list[str]) -> int:
    from .. import search

    figs = args.figs or "figs"
    # the study is in --storage, else in the run store's journal (--runs)
    storage = args.storage or search.default_journal(_store(args))
    if not args.storage and not Path(storage).exists():
        raise LabkitError(f"no study journal at {storage}; pass --runs RUN_STORE (the run store the search used) "
                          f"or --storage (a journal file or database URL)")
    paths, text = write_report(names, storage, figs)
    print(text)
    print()
    for p in paths:
        print(f"wrote {p}")
    return 0


def write_report(studies: str | list[str], storage: object, out: str | Path) -> tuple[list[Path], str]:
    """Save the search report's figures as PNGs under `out`; return (paths, text with tables and border warnings)."""
    from ..plots.search import search_figures

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabkitError(f"cannot create the figure folder {out}: {e.strerror}; choose another --figs") from None
    figs, text = search_figures(studies, storage)
    paths = []
    for name, fig in figs.items():
        fig.savefig(out / name, dpi=110)
        paths.append(out / name)
    return paths, text


def _demo(args: argparse.Namespace) -> int:
    from ..plots import search as plots
    from ..search.analysis import bergstra_demo, demo_params

    figs = Path(args.figs or "figs")
    figs.mkdir(parents=True, exist_ok=True)
    r = bergstra_demo(repeats=args.repeats, seed=args.search_seed)
    print(r.table())
    x, y = demo_params()
    ex = r.example
    fig = plots.sampler_planes({"grid": ex["grid"], "random": ex["random"]}, x, y,
                               curves={"x": ex["x_curve"], "y": ex["y_curve"]}, score="score",
                               bands={"grid": ("a peak here: grid wins", ex["luck"])}, note=ex["note"])
    print(ex["note"])
    fig.savefig(figs / "bergstra-planes.png", dpi=110)
    plots.bergstra_summary(r.budgets, r.random_wins, r.ties, r.grid_best, r.random_best, r.repeats,
                           r.weight).savefig(figs / "bergstra-summary.png", dpi=110)
    print(f"wrote {figs / 'bergstra-planes.png'}\nwrote {figs / 'bergstra-summary.png'}")
    return 0
