"""The lectures' demonstrations as computations (no plotting; labkit.plots draws them).

- `init_demo`: a deep, wide MLP fed Gaussian data, forward only, once per
  initializer: activations collapse to zero (small weights), saturate or
  explode (large weights), or keep their scale (Xavier for tanh, He for ReLU; Xavier collapses a deep
  ReLU net, since each ReLU halves the variance Xavier keeps).
- `augment_preview`: real CIFAR images after each augmentation of labkit.data.augment,
  with the soft labels mixup and cutmix give them.
- `optimizer_paths`: torch.optim's own optimizers (via the OPTIMIZERS registry)
  walking a ravine, the Rosenbrock valley and a saddle point.
- `adam_bias_correction`: Adam's first steps with and without its bias correction.
- `schedule_curves`: every registered LR schedule over one run length.
"""
from __future__ import annotations

from dataclasses import replace as dc_replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .activations import ACTIVATIONS, expand, make_activation
from .config import DataConfig, OptimConfig, RegConfig, ScheduleConfig
from .errors import LabkitError
from .initializers import INITIALIZERS, gain_for
from .optimizers import OPTIMIZERS, build_optimizer, needs_closure
from .training.probes import tensor_stats
from .schedules import SCHEDULES, Schedule

INIT_LABELS = {"zeros": "zeros", "small": "N(0, 0.01²)", "large": "N(0, 1)", "xavier": "Xavier", "kaiming": "He (Kaiming)",
               "xavier_gain": "Xavier × gain"}


# -- weight initialization -------------------------------------------------------
def init_demo(activation: str = "tanh", inits: Sequence[str] = ("zeros", "small", "large", "xavier", "kaiming"),
              depth: int = 10, width: int = 500, n: int = 1000, seed: int = 0, bins: int = 40) -> dict[str, Any]:
    """Per-layer activation statistics of a `depth` x `width` MLP (no biases) on N(0, 1) inputs, for each initializer.

    Returns {"activation", "depth", "width", "n", "inits": {init: {"label", "mean": [depth],
    "std": [depth], "hist": array depth x bins, "range": (lo, hi), "saturated": [...], "dead": [...]}}}.
    Every initializer sees the same inputs; the global torch RNG is left as it was.
    """
    ACTIVATIONS.check(activation)
    for name in inits:
        INITIALIZERS.check(name)
    if not (1 <= depth <= 100 and 2 <= width <= 4096 and 2 <= n <= 100_000):
        raise LabkitError(f"init demo size depth={depth}, width={width}, n={n} is out of range; "
                          "allowed: depth 1-100, width 2-4096, n 2-100000; the lecture uses 10, 500, 1000")
    k = expand(activation)
    gain = gain_for(activation)
    out: dict[str, Any] = {"activation": activation, "depth": depth, "width": width, "n": n, "inits": {}}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        x0 = torch.randn(n, width)
        for name in inits:
            torch.manual_seed(seed + 1)
            h = x0
            rows: dict[str, list] = {"mean": [], "std": [], "hist": [], "saturated": [], "dead": []}
            act = make_activation(activation)
            lo_hi = (0.0, 1.0)
            for _ in range(depth):
                layer = nn.Linear(width, width * k, bias=False)
                INITIALIZERS.get(name)(layer.weight, gain)
                h = act(layer(h))
                s = tensor_stats(h, activation, bins)
                for key in ("mean", "std", "hist", "saturated", "dead"):
                    rows[key].append(s[key])
                lo_hi = (s["lo"], s["hi"])
            out["inits"][name] = {"label": INIT_LABELS.get(name, name), "mean": rows["mean"], "std": rows["std"],
                                  "hist": np.asarray(rows["hist"], dtype=float), "range": lo_hi,
                                  "saturated": rows["saturated"], "dead": rows["dead"]}
    return out


# -- data augmentation -------------------------------------------------------------
def _soft_text(target: torch.Tensor, classes: Sequence[str]) -> str:
    vals, idx = target.topk(min(2, len(target)))
    parts = [(float(v), classes[int(i)]) for v, i in zip(vals, idx) if float(v) > 0.005]
    if len(parts) == 1 and parts[0][0] > 0.995:
        return parts[0][1]
    return "\n".join(f"{v:.2f} {c}" for v, c in parts)


def _visible_lambda(alpha: float, gen: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw, redrawn (seeded, at most 50 times) until both images show: 0.2 <= lambda <= 0.8."""
    from .data.augment import sample_lambda

    lam = sample_lambda(alpha, gen)
    for _ in range(50):
        if 0.2 <= lam <= 0.8:
            break
        lam = sample_lambda(alpha, gen)
    return lam


def augment_preview(reg_cfg: RegConfig | None = None, data_cfg: DataConfig | None = None, n: int = 8,
                    seed: int = 0) -> dict[str, Any]:
    """The same `n` CIFAR training images as they are, and after flip, crop, cutout, mixup and cutmix.

    Uses labkit.data and the batch functions of labkit.data.augment in the pipeline's
    order (uint8 flip/crop, normalize, cutout, then mixing). Settings come from
    `reg_cfg` where they are on; where they are off, a typical value is shown
    and marked as such. Returns {"classes", "rows": [{"name", "detail",
    "images": float array n x H x W x 3 in [0, 1], "labels": [str]}]}.
    Raises LabkitError when the images cannot be found or the dataset is not images.
    """
    from .data import augment
    from .data.sets import DATASETS, load_data

    reg = reg_cfg or RegConfig()
    dcfg = data_cfg or DataConfig(dataset="cifar10", subset=1000, val_size=100)
    if DATASETS.entry(dcfg.dataset).traits.get("kind") != "image":
        raise LabkitError(f"the augmentation preview needs an image dataset, not {dcfg.dataset!r}; "
                          "use --data cifar10 (or cifar100 / folder)")
    if not 1 <= n <= 64:
        raise LabkitError(f"augment preview n={n} is out of range; allowed: 1 to 64 images")
    data = load_data(dcfg, seed)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train_y), generator=gen)[:n]
    x8, y = data.train_x[idx], data.train_y[idx]
    classes = list(data.classes)
    onehot = torch.nn.functional.one_hot(y, data.num_classes).float()
    hard = [classes[int(i)] for i in y]
    mean, std = data.mean.view(1, -1, 1, 1), data.std.view(1, -1, 1, 1)

    def show_u8(x: torch.Tensor) -> np.ndarray:
        return x.permute(0, 2, 3, 1).float().div(255).cpu().numpy()

    def show_f(x: torch.Tensor) -> np.ndarray:  # normalized floats back to [0, 1] pixels
        return (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu().numpy()

    pad = reg.crop if reg.crop > 0 else 4
    size = reg.cutout if reg.cutout > 0 else 12
    a_mix = reg.mixup if reg.mixup > 0 else 0.4
    a_cut = reg.cutmix if reg.cutmix > 0 else 1.0
    flipped = x8.flip(3)  # the pipeline flips each image with probability 1/2; the preview shows the flip itself
    rows = [
        {"name": "original", "detail": "", "images": show_u8(x8), "labels": hard},
        {"name": "flip", "detail": "mirrored" + ("" if reg.flip else " (off in config)"), "images": show_u8(flipped),
         "labels": hard},
        {"name": "crop", "detail": f"reflect-pad {pad} px" + ("" if reg.crop > 0 else " (off in config)"),
         "images": show_u8(augment.crop(x8, pad, gen)), "labels": hard},
    ]
    xf = data.to_input(x8)
    rows.append({"name": "cutout", "detail": f"{size}x{size} px" + ("" if reg.cutout > 0 else " (off in config)"),
                 "images": show_f(augment.cutout(xf, size, gen)), "labels": hard})
    lam = _visible_lambda(a_mix, gen)
    xm, tm = augment.mixup(xf.clone(), onehot.clone(), lam)
    rows.append({"name": "mixup", "detail": f"alpha {a_mix:g}, lambda {lam:.2f}" + ("" if reg.mixup > 0 else " (off in config)"),
                 "images": show_f(xm), "labels": [_soft_text(t, classes) for t in tm]})
    lam = _visible_lambda(a_cut, gen)
    xc, tc, lam_true = augment.cutmix(xf, onehot.clone(), lam, gen)
    rows.append({"name": "cutmix", "detail": f"alpha {a_cut:g}, lambda {lam_true:.2f}" + ("" if reg.cutmix > 0 else " (off in config)"),
                 "images": show_f(xc), "labels": [_soft_text(t, classes) for t in tc]})
    return {"classes": classes, "dataset": dcfg.dataset, "rows": rows}


# -- optimizers on 2-D surfaces --------------------------------------------------------
Surface = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SURFACES: dict[str, dict[str, Any]] = {
    "ravine": {
        "f": lambda x, y: 0.05 * x**2 + 2.0 * y**2,
        "formula": "f = 0.05 x² + 2 y²  (condition number 40)",
        "start": (-4.5, 1.2), "box": (-5.0, 2.5, -1.6, 1.6), "minima": [(0.0, 0.0)], "steps": 60, "log": False,
        "lr": {"sgd": 0.45, "momentum": 0.05, "nesterov": 0.05, "adagrad": 1.0, "rmsprop": 0.05, "adam": 0.3, "adamw": 0.3, "lbfgs": 0.5},
    },
    "rosenbrock": {
        "f": lambda x, y: (1 - x) ** 2 + 100.0 * (y - x**2) ** 2,
        "formula": "f = (1 - x)² + 100 (y - x²)²",
        "start": (-1.5, 2.0), "box": (-2.0, 2.0, -1.0, 3.0), "minima": [(1.0, 1.0)], "steps": 400, "log": True,
        "lr": {"sgd": 1e-3, "momentum": 2e-4, "nesterov": 2e-4, "adagrad": 0.5, "rmsprop": 0.01, "adam": 0.1, "adamw": 0.1, "lbfgs": 0.5},
    },
    "saddle": {
        "f": lambda x, y: x**2 + 0.25 * y**4 - 0.5 * y**2,
        "formula": "f = x² + y⁴/4 - y²/2  (saddle at 0, minima at y = ±1)",
        "start": (1.8, 1e-3), "box": (-2.0, 2.0, -1.6, 1.6), "minima": [(0.0, 1.0), (0.0, -1.0)], "saddles": [(0.0, 0.0)],
        "steps": 100, "log": False,
        "lr": {"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.5, "rmsprop": 0.02, "adam": 0.1, "adamw": 0.1, "lbfgs": 0.5},
    },
}


def optimizer_paths(surface: str = "ravine", optimizers: Sequence[str] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"),
                    steps: int | None = None, lr: float | dict[str, float] | None = None, grid: int = 200) -> dict[str, Any]:
    """Paths of torch.optim optimizers (from the OPTIMIZERS registry) descending a 2-D surface from one start.

    `lr`: one value for all, a dict per optimizer, or None for the per-surface
    defaults (chosen so each optimizer shows its typical behaviour without
    diverging). Returns {"surface", "formula", "x", "y", "z" (grid x grid),
    "start", "minima", "steps", "log", "paths": {opt: array (steps+1) x 2},
    "losses": {opt: array steps+1}, "lrs": {opt: lr}, "evals": {opt: gradient evaluations}} (L-BFGS, which
    needs a closure, takes several evaluations per step for its line search).
    """
    if surface not in SURFACES:
        raise LabkitError(f"unknown surface {surface!r}; choose one of: {', '.join(SURFACES)}")
    spec = SURFACES[surface]
    steps = int(spec["steps"] if steps is None else steps)
    if not 1 <= steps <= 100_000:
        raise LabkitError(f"steps={steps} is out of range; allowed: 1 to 100000")
    f: Surface = spec["f"]
    paths, losses, lrs, evals = {}, {}, {}, {}
    for name in optimizers:
        OPTIMIZERS.check(name)
        rate = lr.get(name) if isinstance(lr, dict) else lr
        rate = float(spec["lr"].get(name, 0.01) if rate is None else rate)
        p = torch.tensor(spec["start"], dtype=torch.float64, requires_grad=True)
        # momentum only where the optimizer is named for it (the registry passes it to RMSProp too)
        mom = 0.9 if name in ("momentum", "nesterov") else 0.0
        opt = build_optimizer([p], OptimConfig(name=name, lr=rate, weight_decay=0.0, momentum=mom))

        calls = [0]  # L-BFGS evaluates f several times per step (its line search): counted, so work is comparable

        def closure() -> torch.Tensor:
            calls[0] += 1
            opt.zero_grad()
            loss = f(p[0], p[1])
            loss.backward()
            return loss

        pts, vals = [p.detach().clone()], [float(f(*p.detach()))]
        for _ in range(steps):
            if needs_closure(name):
                opt.step(closure)
            else:
                closure()
                opt.step()
            with torch.no_grad():
                v = float(f(p[0], p[1]))
            pts.append(p.detach().clone())
            vals.append(v)
            if not np.isfinite(v) or float(p.detach().abs().max()) > 1e6:
                break  # diverged: keep the path so far
        paths[name] = torch.stack(pts).numpy()
        losses[name] = np.asarray(vals)
        lrs[name] = rate
        evals[name] = calls[0]
    x0, x1, y0, y1 = spec["box"]
    xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    X, Y = np.meshgrid(xs, ys)
    Z = f(torch.from_numpy(X), torch.from_numpy(Y)).numpy()
    return {"surface": surface, "formula": spec["formula"], "x": xs, "y": ys, "z": Z, "start": spec["start"],
            "minima": list(spec["minima"]), "saddles": list(spec.get("saddles", [])), "steps": steps, "log": spec["log"], "paths": paths, "losses": losses,
            "lrs": lrs, "evals": evals}


def adam_bias_correction(surface: str = "ravine", steps: int = 60, lr: float = 0.3,
                         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> dict[str, Any]:
    """Adam's first steps with and without bias correction, on a 2-D surface of SURFACES.

    "with" is torch.optim.Adam itself; "without" is the same update with the moment estimates m and v
    used as they are (both start at 0, so early on m is too small by 1 - beta1^t and v by 1 - beta2^t,
    and the step m / sqrt(v) comes out up to ~6x larger than lr for beta2 = 0.999). Returns {"surface",
    "formula", "x", "y", "z", "start", "minima", "steps", "lr", "betas", "paths": {"with", "without"}:
    (steps+1) x 2, "losses": {...}: steps+1, "step_size": {...}: |update| / lr per step (the larger
    coordinate), "factor": (1 - beta1^t) / sqrt(1 - beta2^t), what no correction multiplies a constant
    gradient's step by}.
    """
    if surface not in SURFACES:
        raise LabkitError(f"unknown surface {surface!r}; choose one of: {', '.join(SURFACES)}")
    if not 1 <= steps <= 100_000:
        raise LabkitError(f"steps={steps} is out of range; allowed: 1 to 100000")
    b1, b2 = (float(b) for b in betas)
    if not (0 <= b1 < 1 and 0 <= b2 < 1) or not lr > 0:
        raise LabkitError(f"Adam demo betas={betas}, lr={lr}: betas must lie in [0, 1) and lr be > 0 "
                          "(the defaults are betas (0.9, 0.999))")
    spec = SURFACES[surface]
    f: Surface = spec["f"]
    paths, losses, sizes = {}, {}, {}
    for mode in ("with", "without"):
        p = torch.tensor(spec["start"], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps) if mode == "with" else None
        m, v = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        pts, vals, size = [p.detach().clone()], [float(f(*p.detach()))], []
        for _ in range(steps):
            p.grad = None
            f(p[0], p[1]).backward()
            before = p.detach().clone()
            if opt is not None:
                opt.step()
            else:
                with torch.no_grad():
                    g = p.grad
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    p.sub_(lr * m / (v.sqrt() + eps))  # no division by (1 - beta^t): the raw moments
            pts.append(p.detach().clone())
            vals.append(float(f(*p.detach())))
            size.append(float((p.detach() - before).abs().max()) / lr)
        paths[mode] = torch.stack(pts).numpy()
        losses[mode] = np.asarray(vals)
        sizes[mode] = np.asarray(size)
    t = np.arange(1, steps + 1)
    x0, x1, y0, y1 = spec["box"]
    xs, ys = np.linspace(x0, x1, 200), np.linspace(y0, y1, 200)
    X, Y = np.meshgrid(xs, ys)
    return {"surface": surface, "formula": spec["formula"], "x": xs, "y": ys,
            "z": f(torch.from_numpy(X), torch.from_numpy(Y)).numpy(), "start": spec["start"],
            "minima": list(spec["minima"]), "steps": steps, "lr": lr, "betas": (b1, b2), "paths": paths,
            "losses": losses, "step_size": sizes, "factor": (1 - b1 ** t) / np.sqrt(1 - b2 ** t)}


# -- learning-rate schedules -----------------------------------------------------------
def schedule_curves(names: Sequence[str] | None = None, epochs: float = 20, steps_per_epoch: int = 50, lr: float = 0.1,
                    warmup_epochs: float = 0.0, schedule_cfg: ScheduleConfig | None = None) -> dict[str, list[float]]:
    """The LR at every step of an `epochs`-long run for each named schedule (default: all registered), same code as training."""
    base = schedule_cfg or ScheduleConfig()
    total = max(1, round(epochs * steps_per_epoch))
    out: dict[str, list[float]] = {}
    for name in names or SCHEDULES.names():
        SCHEDULES.check(name)
        cfg = dc_replace(base, name=name, warmup_epochs=warmup_epochs)
        out[name] = Schedule(cfg, lr, total, steps_per_epoch).curve()
    return out


# -- the concept demos (sigmoid's zig-zag, dead units, preprocessing, batch norm, cross-validation, early stopping,
# L1 vs L2, dropout's scaling): computed in labkit.concepts, listed in its CONCEPTS registry ---------------------------
from .concepts import CONCEPTS, run_concept  # noqa: E402  (re-exported: labkit.demos is where the demos are found)


# -- large batches: the linear scaling rule and warmup (Goyal et al. 2017) ---------------------------------------------
LARGE_BATCH = {"subset": 10240, "val_size": 1000, "epochs": 8.0, "small": 128, "large": 1024, "lr": 0.1,
               "warmup": 2.0, "width": None, "min_steps": 8}  # min_steps: steps per epoch the large batch keeps
LARGE_BATCH_FOLDER = "large-batch-demo"  # the runs go under the run store's sub-folder of this name


def large_batch_arms(small: int, large: int, lr: float, warmup: float) -> list[dict[str, Any]]:
    """The four runs: the small batch at `lr`; the large batch at the same rate; with the linear rule; rule + warmup.

    The rule runs through train.scale_lr=linear (peak = optim.lr x batch / 128) with optim.lr = lr x 128 / small,
    so its peak is lr x large / small whatever the small batch is (with small = 128, optim.lr is just lr).
    """
    from .schedules import REFERENCE_BATCH

    k, ref_lr = large / small, lr * REFERENCE_BATCH / small
    return [
        {"label": f"batch {small}", "batch": small, "lr": lr, "scale_lr": "none", "warmup": 0.0, "peak": lr},
        {"label": f"batch {large}, same LR", "batch": large, "lr": lr, "scale_lr": "none", "warmup": 0.0, "peak": lr},
        {"label": f"batch {large}, linear rule (x{k:g})", "batch": large, "lr": ref_lr, "scale_lr": "linear",
         "warmup": 0.0, "peak": lr * k},
        {"label": f"batch {large}, rule + {warmup:g} ep. warmup", "batch": large, "lr": ref_lr, "scale_lr": "linear",
         "warmup": warmup, "peak": lr * k},
    ]


def large_batch_demo(out: str = "runs", *, base: Any = None, subset: int = LARGE_BATCH["subset"],
                     val_size: int = LARGE_BATCH["val_size"], epochs: float = LARGE_BATCH["epochs"],
                     small: int = LARGE_BATCH["small"], large: int = LARGE_BATCH["large"], lr: float = LARGE_BATCH["lr"],
                     warmup: float = LARGE_BATCH["warmup"], width: int | None = LARGE_BATCH["width"], seed: int = 0,
                     threads: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Small vs large batch at equal epochs, the large one without and with the linear scaling rule and warmup.

    `lr` is the small batch's rate; the rule gives the large batch lr x large / small. Every run is `base` (a Config;
    default: the recipe, on CIFAR-10) with a cosine schedule (no warmup of its own, unlike onecycle), so warmup is
    only what `warmup` adds. `subset` applies to image sets. `large` is cut to the largest power of two that leaves
    `min_steps` steps per epoch. Runs are kept in `out`/large-batch-demo and reused. Returns {"arms": [{"label", "batch", "scale_lr", "warmup", "peak",
    "steps", "run", "cached", "test_acc", "val_acc", "epochs": [...], "val": [...], "train_loss": [...],
    "step_epoch": [...], "lr": [...]}], "subset", "epochs", "small", "large", "asked_large", "seconds"}.
    """
    import time
    from pathlib import Path

    from .config import Config
    from .data.sets import is_image, train_size_of
    from .transfer import cached_train, find_run

    say = progress or (lambda text: None)
    for name, v in (("subset", subset), ("small", small), ("large", large)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise LabkitError(f"large-batch demo: {name}={v!r} is out of range; allowed: a whole number >= 2")
    if small >= large:
        raise LabkitError(f"large-batch demo: small={small} must be below large={large}; fix: a larger --large")
    base = (base or Config()).copy()
    if is_image(base.data.dataset):
        base = base.replace(**{"data.subset": subset, "data.val_size": val_size})
    subset = train_size_of(base.data)
    fits = 2 ** int(np.log2(max(2, subset // LARGE_BATCH["min_steps"])))
    asked, large = large, min(large, fits)
    if large <= small:
        raise LabkitError(f"large-batch demo: a subset of {subset} allows batches up to {fits} (at least "
                          f"{LARGE_BATCH['min_steps']} steps per epoch), not above small={small}; fix: a larger "
                          f"--subset (e.g. {small * 2 * LARGE_BATCH['min_steps']}) or a smaller --small")
    store = Path(out) / LARGE_BATCH_FOLDER
    t0 = time.perf_counter()
    arms = large_batch_arms(small, large, lr, warmup)
    for arm in arms:
        over: dict[str, Any] = {"train.epochs": float(epochs), "train.steps": 0, "train.batch_size": arm["batch"],
                                "optim.lr": arm["lr"], "train.scale_lr": arm["scale_lr"], "schedule.name": "cosine",
                                "schedule.warmup_epochs": arm["warmup"], "train.seed": seed, "probe.every": 0,
                                "train.tta": False, "train.patience": 0, "train.nproc": 1,
                                "train.name": "large-batch-" + arm["label"].split(",")[0].replace(" ", "")}
        if width is not None:
            over["model.width"] = width
        if threads:
            over["train.threads"] = threads
        cfg = base.replace(**over)
        say(f"{arm['label']}" + (": reused" if find_run(cfg, store) is not None else f": training {epochs:g} epochs"))
        rec, hit = cached_train(cfg, store)  # a loaded record either way
        ep, st = rec.rows("epoch"), rec.rows("step")
        final = rec.summary.get("final") or {}
        arm.update({"run": str(rec.dir), "cached": hit, "steps": rec.summary.get("steps"),
                    "test_acc": final.get("test_acc"), "val_acc": final.get("val_acc"),
                    "epochs": [r["epoch"] for r in ep], "val": [r["val_acc"] for r in ep],
                    "train_loss": [r["train_loss"] for r in ep], "step_epoch": [r["epoch"] for r in st],
                    "lr": [r["lr"] for r in st], "seconds": rec.summary.get("train_seconds")})
    return {"arms": arms, "dataset": base.data.dataset, "subset": subset, "epochs": float(epochs), "small": small,
            "large": large, "asked_large": asked, "lr": lr, "warmup": warmup,
            "seconds": round(time.perf_counter() - t0, 1)}


def large_batch_rows(result: dict[str, Any]) -> list[str]:
    """The result as a text table (the CLI prints it; README and RESULTS quote it)."""
    lines = [f"{'run':<36} {'peak LR':>8} {'steps':>6} {'val acc':>8} {'test acc':>9}"]
    for a in result["arms"]:
        acc = lambda v: f"{v:.3f}" if isinstance(v, float) else "-"  # noqa: E731
        lines.append(f"{a['label']:<36} {a['peak']:>8.3g} {a['steps'] or 0:>6} {acc(a['val_acc']):>8} "
                     f"{acc(a['test_acc']):>9}")
    return lines


# -- model parallelism: the convnet cut across two devices -----------------------------------------------------------
def model_split(model_cfg: Any = None, devices: int = 2, input_shape: Sequence[int] = (3, 32, 32),
                classes: int = 10) -> dict[str, Any]:
    """The model's blocks (labkit.models.blocks_of, plus the head) with their parameters, multiply-adds per image and
    output shapes, cut into `devices` consecutive parts of about equal multiply-adds (the usual balance for a
    pipeline). Returns {"blocks": [{"name", "kind", "params", "macs", "shape"}], "device": [block -> device],
    "cuts": [{"after": block index, "floats": activation values per image crossing}], "devices", "kind"}."""
    from .config import ModelConfig
    from .models import blocks_of, build_model, head_of

    cfg = model_cfg or ModelConfig()
    if not isinstance(devices, int) or not 1 <= devices <= 8:
        raise LabkitError(f"model split: devices={devices!r} is out of range; allowed: 1 to 8")
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg, input_shape, classes, seed=0)
    names = [b for b in blocks_of(model)] + [[head_of(model)]]
    modules = dict(model.named_modules())
    outs: dict[str, tuple[int, ...]] = {}
    macs: dict[str, int] = {}

    def hook(name: str):
        def fn(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            outs[name] = tuple(out.shape[1:])
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                macs[name] = int(out[0].numel() * k)
            elif isinstance(mod, nn.Linear):
                macs[name] = mod.in_features * mod.out_features
        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for block in names for n in block]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    blocks = []
    for block in names:
        first = modules[block[0]]
        blocks.append({"name": block[0], "kind": type(first).__name__, "shape": list(outs.get(block[-1], ())),
                       "params": sum(p.numel() for n in block for p in modules[n].parameters(recurse=True)),
                       "macs": sum(macs.get(n, 0) for n in block)})
    total = sum(b["macs"] for b in blocks) or 1
    device, run = [], 0
    for b in blocks:  # a block goes to the device whose equal share of the work its middle falls in
        device.append(min(devices - 1, int((run + b["macs"] / 2) / total * devices)))
        run += b["macs"]
    cuts = [{"after": i, "floats": int(np.prod(blocks[i]["shape"]))} for i in range(len(blocks) - 1)
            if device[i] != device[i + 1]]
    return {"blocks": blocks, "device": device, "cuts": cuts, "devices": devices, "kind": cfg.kind}
