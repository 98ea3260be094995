"""`labkit demo init|optimizers|augment|schedules|transfer|<concept>`: the lectures' demonstrations as PNG files.

The concept demos (zigzag, dead-units, preprocess, ...) come from labkit.concepts.CONCEPTS, one sub-command each.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..activations import ACTIVATIONS
from ..errors import LabkitError
from ..initializers import INITIALIZERS
from ..optimizers import OPTIMIZERS
from ..schedules import SCHEDULES
from .common import add_renamed


def _names(text: str | None, valid: list[str], what: str) -> list[str] | None:
    if not text:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        if n not in valid:
            raise LabkitError(f"unknown {what} {n!r}; choose from: {', '.join(valid)}")
    return names


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="write the lecture demos (init, optimizers, augment, schedules, transfer) as PNGs",
                       description="Write a demonstration figure as PNG and print its path.")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    demos = p.add_subparsers(dest="demo", metavar="DEMO")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--figs", metavar="DIR", default="demos", help="where to write the PNG (default: demos)")
        add_renamed(q, "--out", "--figs", "figs", "the figure folder")
        q.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
        q.add_argument("--seed", type=int, default=0, help="random seed")

    q = demos.add_parser("init", help="activation statistics of a deep MLP per initializer (forward only)")
    common(q)
    q.add_argument("--activation", default="tanh", help=f"activation: {', '.join(ACTIVATIONS.names())}")
    q.add_argument("--inits", default="zeros,small,large,xavier,kaiming",
                   help=f"comma-separated initializers from: {', '.join(INITIALIZERS.names())}")
    q.add_argument("--depth", type=int, default=10, help="layers (default 10)")
    q.add_argument("--width", type=int, default=500, help="units per layer (default 500)")
    q.add_argument("--n", type=int, default=1000, help="Gaussian inputs (default 1000)")
    q.set_defaults(func=run_init)

    q = demos.add_parser("optimizers", help="torch.optim optimizers on 2-D surfaces")
    common(q)
    q.add_argument("--surface", default="all", help="ravine, rosenbrock, saddle or all (default)")
    q.add_argument("--optimizers", default="sgd,momentum,nesterov,adagrad,rmsprop,adam",
                   help=f"comma-separated, from: {', '.join(OPTIMIZERS.names())}")
    q.add_argument("--steps", type=int, default=None, help="steps (default: per surface)")
    q.add_argument("--lr", type=float, default=None, help="one LR for all (default: a sensible LR per optimizer)")
    q.set_defaults(func=run_optimizers)

    q = demos.add_parser("adam", help="Adam's first steps with and without its bias correction",
                         description="Run torch.optim.Adam and the same update without bias correction (raw m / "
                                     "sqrt(v)) from one start on a 2-D surface; draw both paths, each step's size "
                                     "against lr, and the loss.")
    common(q)
    q.add_argument("--surface", default="ravine", help="ravine (default), rosenbrock or saddle")
    q.add_argument("--steps", type=int, default=60, help="steps (default 60)")
    q.add_argument("--lr", type=float, default=0.3, help="learning rate (default 0.3)")
    q.add_argument("--beta1", type=float, default=0.9, help="first-moment decay (default 0.9)")
    q.add_argument("--beta2", type=float, default=0.999, help="second-moment decay (default 0.999)")
    q.set_defaults(func=run_adam)

    q = demos.add_parser("augment", help="CIFAR images after flip, crop, cutout, mixup, cutmix")
    common(q)
    q.add_argument("--data", default="cifar10", help="image dataset: cifar10, cifar100, folder")
    q.add_argument("--data-root", default=None, help="data directory (default: $LABKIT_DATA, else the cache)")
    q.add_argument("--folder", default=None, help="with --data folder: your images, one sub-folder per class")
    q.add_argument("--n", type=int, default=8, help="images per row (default 8)")
    q.add_argument("--crop", type=int, default=4, help="crop padding in pixels")
    q.add_argument("--cutout", type=int, default=12, help="cutout square in pixels")
    q.add_argument("--mixup", type=float, default=0.4, help="mixup alpha")
    q.add_argument("--cutmix", type=float, default=1.0, help="cutmix alpha")
    q.set_defaults(func=run_augment)

    q = demos.add_parser("schedules", help="every registered LR schedule on one axis")
    common(q)
    q.add_argument("--names", default=None, help=f"comma-separated schedules (default all): {', '.join(SCHEDULES.names())}")
    q.add_argument("--epochs", type=float, default=20, help="run length in epochs (default 20)")
    q.add_argument("--steps-per-epoch", type=int, default=50, help="steps per epoch (default 50)")
    q.add_argument("--lr", type=float, default=0.1, help="peak LR (default 0.1)")
    q.add_argument("--warmup", type=float, default=0.0, help="linear warmup in epochs, in front of every schedule (onecycle: the length of its own rise)")
    q.set_defaults(func=run_schedules)

    from ..transfer import DEFAULTS

    q = demos.add_parser("transfer", help="the lectures' transfer table measured: small/large x similar/different",
                         description="Train a source network on CIFAR-10's animals (once: it is kept in the run store "
                                     "and reused), then learn CIFAR-10's vehicles (similar) and generated shapes "
                                     "(different) from little and from much data, three ways each at equal steps: "
                                     "from scratch, a linear probe, and fine-tuning at a tenth of the rate.")
    common(q)
    q.add_argument("--runs", default="runs", metavar="DIR", help="run store: the source is cached here, the target "
                   "runs go under DIR/transfer-demo (default: runs)")
    q.add_argument("--source", default=None, metavar="RUN_DIR", help="start from this run instead of the demo's own "
                   "source (its model and recipe are used for every target run)")
    q.add_argument("--small", type=int, default=DEFAULTS["small"], help=f"images per class of a small target "
                   f"(default {DEFAULTS['small']})")
    q.add_argument("--large", type=int, default=DEFAULTS["large"], help=f"images per class of a large target "
                   f"(default {DEFAULTS['large']})")
    q.add_argument("--small-steps", type=int, default=DEFAULTS["small_steps"], help="training steps of every run "
                   f"on a small target (default {DEFAULTS['small_steps']})")
    q.add_argument("--large-steps", type=int, default=DEFAULTS["large_steps"], help="training steps of every run "
                   f"on a large target (default {DEFAULTS['large_steps']})")
    q.add_argument("--source-images", type=int, default=DEFAULTS["source_images"], help="training images of the "
                   f"source (default {DEFAULTS['source_images']})")
    q.add_argument("--source-epochs", type=float, default=DEFAULTS["source_epochs"], help="epochs of the source "
                   f"(default {DEFAULTS['source_epochs']})")
    q.add_argument("--width", type=int, default=DEFAULTS["width"], help="model width of the source and targets "
                   "(default: the recipe's, as labkit train)")
    q.add_argument("--threads", type=int, default=0, help="torch threads (default 0: every core)")
    q.set_defaults(func=run_transfer)

    from ..demos import LARGE_BATCH as LB

    q = demos.add_parser("large-batch", help="batch 128 vs 1,024 at equal epochs: same LR, linear scaling rule, "
                         "rule + warmup", description="Train four runs at equal epochs (kept in the run store and "
                         "reused): the small batch; the large batch at the same learning rate; with the linear "
                         "scaling rule (peak LR x large/small); and with the rule plus warmup. Cosine schedule, the "
                         "recipe's model. Prints the table and writes the curves.")
    common(q)
    q.add_argument("--runs", default="runs", metavar="DIR", help="run store: the runs go under "
                   "DIR/large-batch-demo and are reused (default: runs)")
    q.add_argument("--data", default="cifar10", help="dataset (default cifar10; the 2-D sets train an MLP)")
    q.add_argument("--subset", type=int, default=LB["subset"], help=f"training images (default {LB['subset']})")
    q.add_argument("--epochs", type=float, default=LB["epochs"], help=f"epochs of every run (default {LB['epochs']:g})")
    q.add_argument("--small", type=int, default=LB["small"], help=f"the small batch (default {LB['small']})")
    q.add_argument("--large", type=int, default=LB["large"], help=f"the large batch (default {LB['large']}; cut to "
                   "the largest power of two that keeps 8 steps per epoch)")
    q.add_argument("--lr", type=float, default=LB["lr"], help=f"the small batch's peak LR (default {LB['lr']:g})")
    q.add_argument("--warmup", type=float, default=LB["warmup"], help="warmup epochs of the last run "
                   f"(default {LB['warmup']:g})")
    q.add_argument("--width", type=int, default=None, help="model width (default: the recipe's)")
    q.add_argument("--threads", type=int, default=0, help="torch threads (default 0: every core)")
    q.set_defaults(func=run_large_batch)

    q = demos.add_parser("model-parallel", help="the convnet cut across two devices, and the pipeline's timeline")
    common(q)
    q.add_argument("--devices", type=int, default=2, help="devices to cut the model across (default 2)")
    q.add_argument("--micro-batches", type=int, default=4, help="micro-batches of the pipeline (default 4)")
    q.add_argument("--depth", type=int, default=None, help="convnet stages (default: the recipe's)")
    q.add_argument("--width", type=int, default=None, help="convnet width (default: the recipe's)")
    q.set_defaults(func=run_model_parallel)

    from ..concepts import CONCEPTS

    for entry in CONCEPTS:  # the concept demos: one sub-command each, its flags read off the function's signature
        _add_concept(demos, common, entry)
    p.error = lambda message: _one_line_error(message, demos)  # an unknown demo: one line, exit 2


def _one_line_error(message: str, demos: argparse._SubParsersAction) -> None:
    import sys

    if "invalid choice" in message:
        bad = message.split("invalid choice: ", 1)[1].split(" (", 1)[0]
        message = f"unknown demo {bad}; choose one of: {', '.join(demos.choices)}"
    print(f"labkit demo: error: {message}", file=sys.stderr)
    sys.exit(2)


def _add_concept(demos: argparse._SubParsersAction, common, entry) -> None:
    """`labkit demo NAME` for a CONCEPTS entry: --figs, --dpi, --seed, and a flag per parameter of its function."""
    import inspect

    fn = entry.factory
    q = demos.add_parser(entry.name, help=entry.help, description=f"{entry.help}. {inspect.getdoc(fn).splitlines()[0]}")
    common(q)
    params = []
    for name, prm in inspect.signature(fn).parameters.items():
        if name == "seed":
            continue
        d = prm.default
        flag = "--" + name.replace("_", "-")
        if isinstance(d, (tuple, list)):
            q.add_argument(flag, default=",".join(str(v) for v in d), metavar="A,B,...",
                           help=f"comma-separated (default {','.join(str(v) for v in d)})")
        elif isinstance(d, bool):
            q.add_argument(flag, default=d, action=argparse.BooleanOptionalAction, help=f"(default {d})")
        elif name == "data_root":
            q.add_argument(flag, default=None, help="data directory (default: $LABKIT_DATA, else the cache)")
        else:
            q.add_argument(flag, type=type(d) if d is not None else str, default=d, help=f"(default {d})")
        params.append(name)
    q.set_defaults(func=run_concept, concept=entry.name, concept_params=params)


def run_concept(args: argparse.Namespace) -> int:
    import inspect

    from ..concepts import CONCEPTS
    from ..plots.concepts import concept_figure

    fn = CONCEPTS.get(args.concept)
    kwargs = {}
    for name in args.concept_params:
        value, default = getattr(args, name), inspect.signature(fn).parameters[name].default
        if isinstance(default, (tuple, list)):
            kind = type(default[0]) if default else str
            try:
                value = [kind(v.strip()) for v in str(value).split(",") if v.strip()]
            except ValueError:
                raise LabkitError(f"--{name.replace('_', '-')} {value!r}: each item must be a {kind.__name__}, "
                                  f"comma-separated, e.g. {','.join(str(v) for v in default)}") from None
        kwargs[name] = value
    result = fn(seed=args.seed, **kwargs)
    for line in result["lines"]:
        print(line)
    return _save(concept_figure(args.concept, result), args, args.concept)


def _save(fig, args: argparse.Namespace, name: str) -> int:
    from .plot import save_figures

    for path in save_figures({name: fig}, Path(args.figs), args.dpi):
        print(path)
    return 0


def run_init(args: argparse.Namespace) -> int:
    from .. import demos, plots

    inits = _names(args.inits, INITIALIZERS.names(), "initializer") or ["zeros", "small", "large", "xavier", "kaiming"]
    ACTIVATIONS.check(args.activation)
    r = demos.init_demo(args.activation, inits, args.depth, args.width, args.n, args.seed)
    return _save(plots.init_demo(r), args, f"init_{args.activation}")


def run_optimizers(args: argparse.Namespace) -> int:
    from .. import demos, plots

    surfaces = list(demos.SURFACES) if args.surface == "all" else [args.surface]
    opts = _names(args.optimizers, OPTIMIZERS.names(), "optimizer")
    for s in surfaces:
        r = demos.optimizer_paths(s, opts, args.steps, args.lr)
        _save(plots.optimizer_trajectories(r), args, f"optimizers_{s}")
    return 0


def run_adam(args: argparse.Namespace) -> int:
    from .. import demos, plots

    r = demos.adam_bias_correction(args.surface, args.steps, args.lr, (args.beta1, args.beta2))
    first = {k: v[: min(5, len(v))] for k, v in r["step_size"].items()}
    print("first steps, |step| / lr: with correction " + ", ".join(f"{v:.2f}" for v in first["with"])
          + "; without " + ", ".join(f"{v:.2f}" for v in first["without"]))
    return _save(plots.adam_bias_correction(r), args, f"adam_bias_{args.surface}")


def run_augment(args: argparse.Namespace) -> int:
    from .. import demos, plots
    from ..config import DataConfig, RegConfig

    reg = RegConfig(crop=args.crop, cutout=args.cutout, mixup=args.mixup, cutmix=args.cutmix)
    data = DataConfig(dataset=args.data, root=args.data_root, folder=args.folder, subset=1000, val_size=100)
    if args.data == "folder":
        data.subset, data.val_size = 0, 0
    r = demos.augment_preview(reg, data, args.n, args.seed)
    return _save(plots.augment_preview(r), args, "augment")


def run_schedules(args: argparse.Namespace) -> int:
    from .. import demos, plots

    names = _names(args.names, SCHEDULES.names(), "schedule")
    curves = demos.schedule_curves(names, args.epochs, args.steps_per_epoch, args.lr, args.warmup)
    title = (f"Learning-rate schedules: peak {args.lr:g}, {args.epochs:g} epochs of {args.steps_per_epoch} steps"
             + (f", {args.warmup:g} warmup epochs" if args.warmup else ""))
    return _save(plots.schedule_comparison(curves, args.steps_per_epoch, title), args, "schedules")


def run_transfer(args: argparse.Namespace) -> int:
    import sys

    from .. import plots
    from ..transfer import table_rows, transfer_demo

    r = transfer_demo(args.runs, small=args.small, large=args.large, small_steps=args.small_steps,
                      large_steps=args.large_steps, source=args.source, source_images=args.source_images,
                      source_epochs=args.source_epochs, width=args.width, seed=args.seed, threads=args.threads,
                      progress=lambda text: print(text, file=sys.stderr, flush=True))
    src = r["source"]
    print(f"source: {src['run']}" + (" (reused)" if src["cached"] else "")
          + (f", test accuracy {src['test_acc']:.3f}" if src.get("test_acc") is not None else ""))
    for line in table_rows(r):
        print(line)
    print(f"{r['seconds']:.0f} s")
    return _save(plots.transfer_quadrants(r), args, "transfer")


def run_large_batch(args: argparse.Namespace) -> int:
    import sys

    from .. import plots
    from ..config import Config
    from ..data.sets import DATASETS, is_image
    from ..demos import large_batch_demo, large_batch_rows

    DATASETS.check(args.data)
    over = {"data.dataset": args.data} if is_image(args.data) else {"data.dataset": args.data, "model.kind": "mlp"}
    r = large_batch_demo(args.runs, base=Config().replace(**over), subset=args.subset, epochs=args.epochs,
                         small=args.small, large=args.large, lr=args.lr, warmup=args.warmup, width=args.width,
                         seed=args.seed, threads=args.threads,
                         progress=lambda text: print(text, file=sys.stderr, flush=True))
    for line in large_batch_rows(r):
        print(line)
    print(f"{r['seconds']:.0f} s")
    return _save(plots.large_batch(r), args, "large_batch")


def run_model_parallel(args: argparse.Namespace) -> int:
    from .. import plots
    from ..config import ModelConfig
    from ..demos import model_split

    m = ModelConfig()
    for name in ("depth", "width"):
        v = getattr(args, name)
        if v is not None:
            if v < 1:
                raise LabkitError(f"--{name} {v} is out of range; allowed: 1 or more")
            setattr(m, name, v)
    if args.micro_batches < 1:
        raise LabkitError(f"--micro-batches {args.micro_batches} is out of range; allowed: 1 or more (4 is usual)")
    return _save(plots.model_parallel(model_split(m, args.devices), args.micro_batches), args, "model_parallel")
