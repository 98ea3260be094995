"""The lectures' demonstrations as computations (no plotting; labkit.plots draws them).

- `init_demo`: a deep, wide MLP fed Gaussian data, forward only, once per
  initializer: activations collapse to zero (small weights), saturate or
  explode (large weights), or keep their scale (Xavier for tanh, He for ReLU).
- `augment_preview`: real CIFAR images after each augmentation of labkit.data.augment,
  with the soft labels mixup and cutmix give them.
- `optimizer_paths`: torch.optim's own optimizers (via the OPTIMIZERS registry)
  walking a ravine, the Rosenbrock valley and a saddle point.
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

INIT_LABELS = {"zeros": "zeros", "small": "N(0, 0.01²)", "large": "N(0, 1)", "xavier": "Xavier", "kaiming": "He (Kaiming)"}


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
        return x.permute(0, 2, 3, 1).float().div(255).numpy()

    def show_f(x: torch.Tensor) -> np.ndarray:  # normalized floats back to [0, 1] pixels
        return (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).contiguous().numpy()

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
    "losses": {opt: array steps+1}, "lrs": {opt: lr}}.
    """
    if surface not in SURFACES:
        raise LabkitError(f"unknown surface {surface!r}; choose one of: {', '.join(SURFACES)}")
    spec = SURFACES[surface]
    steps = int(spec["steps"] if steps is None else steps)
    if not 1 <= steps <= 100_000:
        raise LabkitError(f"steps={steps} is out of range; allowed: 1 to 100000")
    f: Surface = spec["f"]
    paths, losses, lrs = {}, {}, {}
    for name in optimizers:
        OPTIMIZERS.check(name)
        rate = lr.get(name) if isinstance(lr, dict) else lr
        rate = float(spec["lr"].get(name, 0.01) if rate is None else rate)
        p = torch.tensor(spec["start"], dtype=torch.float64, requires_grad=True)
        # momentum only where the optimizer is named for it (the registry passes it to RMSProp too)
        mom = 0.9 if name in ("momentum", "nesterov") else 0.0
        opt = build_optimizer([p], OptimConfig(name=name, lr=rate, weight_decay=0.0, momentum=mom))

        def closure() -> torch.Tensor:
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
    x0, x1, y0, y1 = spec["box"]
    xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    X, Y = np.meshgrid(xs, ys)
    Z = f(torch.from_numpy(X), torch.from_numpy(Y)).numpy()
    return {"surface": surface, "formula": spec["formula"], "x": xs, "y": ys, "z": Z, "start": spec["start"],
            "minima": list(spec["minima"]), "saddles": list(spec.get("saddles", [])), "steps": steps, "log": spec["log"], "paths": paths, "losses": losses,
            "lrs": lrs}


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
