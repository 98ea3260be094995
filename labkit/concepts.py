"""The lectures' claims that a flag alone does not show, each measured on real data (labkit.plots.concepts draws them).

Every demo trains small real models (a 2-D set, or a CIFAR-10 subset for preprocessing) through labkit's own
loop (`train`, or its `TrainStep` where a demo needs every step), and returns plain numbers plus `lines`: what
was measured, in words, for the CLI and the lab to print. Each runs in a few seconds on 2 CPU cores and leaves
the global RNG and thread count as it found them. The `CONCEPTS` registry lists them; `labkit demo NAME`, the
lab's Demos tab and `run_concept(name)` all read it.

- `zigzag`: sigmoid outputs are all positive, so every per-example gradient on a neuron's incoming weights has
  one sign, and two weights that must move apart can only zig-zag.
- `dead_units`: ReLU units that a high learning rate pushes below zero for every input get no gradient again;
  leaky ReLU, PReLU, ELU and maxout always pass some.
- `preprocess`: none vs mean subtraction vs standardization of CIFAR pixels, same model, same steps.
- `batchnorm`: with and without batch norm under a bad initialization and a high learning rate, and batch norm's
  batch statistics (train mode) vs its running averages (eval mode).
- `crossval`: the spread of a single held-out estimate vs k-fold cross-validation's, on a small set.
- `early_stopping`: the best epoch, where patience stops the run, and what the best checkpoint keeps.
- `l1_l2`: L1 drives many weights to (near) zero; L2 shrinks all of them.
- `dropout`: inverted dropout (and DropConnect) keep a unit's mean input the same in train and eval mode.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import tempfile
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .activations import ACTIVATIONS, Maxout, is_activation
from .config import Config
from .data.sets import DATASETS, PREPROCESS, Data, load_data
from .errors import LabkitError
from .models import DropConnectLinear, build_model
from .registry import Registry
from .runlog import RunLog

Demo = Callable[..., dict]
CONCEPTS: Registry[Demo] = Registry("demo")

POINTS = tuple(n for n in DATASETS.names() if DATASETS.entry(n).traits.get("kind") == "points")


# -- shared helpers ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _isolated(threads: int = 1) -> Iterator[None]:
    """Run a demo on `threads` torch threads, leaving the caller's RNG streams and thread count as they were.

    One thread by default: these models are small, and a second thread only adds synchronisation (on a shared
    2-core machine the cross-validation demo took 39 s of CPU on two threads, 4 s on one).
    """
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        try:
            torch.set_num_threads(threads)
            yield
        finally:
            torch.set_num_threads(before)


def _config(**over: Any) -> Config:
    """A quiet small-run config: no probes, no test pass, no augmentation or regularization unless asked for."""
    base = {"probe.every": 0, "train.test": False, "train.tta": False, "reg.label_smoothing": 0.0, "reg.flip": False,
            "reg.crop": 0, "optim.weight_decay": 0.0, "schedule.name": "constant", "model.kind": "mlp",
            "model.norm": "none", "train.batch_size": 32, "train.threads": 1}
    base.update(over)
    return Config().replace(**base).validate()


def _train(cfg: Config, label: str = "run", hooks: Sequence = ()) -> tuple[Any, RunLog]:
    """Train `cfg` with labkit's loop into a throw-away run store; the Run (model, data, summary) and its log."""
    from .training import train

    log = RunLog.live(cfg, name=label)
    with tempfile.TemporaryDirectory(prefix="labkit-demo-") as d:
        run = train(cfg, [log], hooks=list(hooks), out=d)
    return run, log.snapshot()


def _check(name: str, value: float, lo: float, hi: float, hint: str) -> None:
    if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
        raise LabkitError(f"{name}={value!r} is out of range; allowed: [{lo:g}, {hi:g}]; {hint}")


def _points_dataset(name: str) -> None:
    if name not in POINTS:
        raise LabkitError(f"this demo runs on a 2-D set, not {name!r}; choose one of: {', '.join(POINTS)}")


def _val_acc(log: RunLog) -> float:
    v = log.epoch_values("val_acc")
    return float(v[-1]) if len(v) else float("nan")


# -- sigmoid is not zero-centred: the zig-zag ----------------------------------------------------------------------
def zigzag(seed: int = 0, dataset: str = "xor", steps: int = 600, lr: float = 0.2, width: int = 16,
           activations: Sequence[str] = ("sigmoid", "tanh")) -> dict:
    """Per-example SGD on a 2-layer MLP; the gradient signs of the second layer's incoming weights, and a path.

    The second layer reads the first layer's outputs: all positive for sigmoid, both signs for tanh. For each
    step (one example: the lecture's argument is per example) it records, for every second-layer unit, whether
    the gradient on all its incoming weights has one sign, and the update of every weight. The path shown is the
    pair of one unit's weights whose net movement has opposite signs and is largest: the direction sigmoid
    inputs cannot step in.
    """
    from .training.step import TrainStep

    _points_dataset(dataset)
    _check("steps", steps, 10, 20000, "try 600")
    _check("lr", lr, 1e-6, 100, "try 0.2")
    _check("width", width, 2, 256, "try 16")
    out: dict[str, Any] = {"dataset": dataset, "steps": steps, "lr": lr, "width": width, "acts": {}}
    with _isolated():
        for act in activations:
            ACTIVATIONS.check(act)
            cfg = _config(**{"data.dataset": dataset, "model.depth": 2, "model.width": width, "model.activation": act,
                             "model.init": "xavier", "optim.name": "sgd", "optim.lr": lr, "train.seed": seed})
            data = load_data(cfg.data, seed)
            model = build_model(cfg.model, data.input_shape, data.num_classes, seed=seed)
            layer = [m for m in model.modules() if isinstance(m, nn.Linear)][1]  # reads the first activations
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            grads: list[torch.Tensor] = []
            step = TrainStep(model, opt, cfg, after_backward=[lambda: grads.append(layer.weight.grad.detach().clone())])
            x, y = data.to_input(data.train_x), data.train_y
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
            weights, losses = [layer.weight.detach().clone()], []
            model.train()
            for i in range(steps):
                j = order[i % len(y)]
                losses.append(float(step(x[j:j + 1], F.one_hot(y[j:j + 1], data.num_classes).float()).loss))
                weights.append(layer.weight.detach().clone())
            g = torch.stack(grads)  # steps x units x inputs
            nonzero = g.abs().amax(2) > 0
            same = ((g >= 0).all(2) | (g <= 0).all(2)) & nonzero
            w = torch.stack(weights)  # steps+1 x units x inputs
            net = w[-1] - w[0]
            # the unit and pair (a, b) whose net moves have opposite signs and the largest smaller magnitude
            best, pick = -1.0, (0, 0, 1)
            for u in range(net.shape[0]):
                pos, neg = int(net[u].argmax()), int(net[u].argmin())
                score = float(torch.minimum(net[u, pos], -net[u, neg]))
                if score > best:
                    best, pick = score, (u, pos, neg)
            u, a, b = pick
            with torch.no_grad():
                model.eval()
                acc = float((model(data.to_input(data.val_x)).argmax(1) == data.val_y).float().mean())
            h = torch.sigmoid if act == "sigmoid" else torch.tanh
            with torch.no_grad():
                first = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
                inputs = h(first(x))
            out["acts"][act] = {
                "same_sign": float(same.float().sum() / nonzero.float().sum().clamp_min(1)),
                "positive_inputs": float((inputs > 0).float().mean()),
                "pair": pick, "path": w[:, u, [a, b]].cpu().numpy(),
                "updates": (w[1:, u, [a, b]] - w[:-1, u, [a, b]]).cpu().numpy(),
                "val_acc": acc, "losses": np.array(losses),
            }
    lines = [f"{act}: {r['positive_inputs']:.0%} of the layer's inputs are positive; the gradient on a unit's "
             f"incoming weights had one sign in {r['same_sign']:.0%} of the steps (val acc {r['val_acc']:.2f})"
             for act, r in out["acts"].items()]
    out["lines"] = lines
    return out


# -- dead units --------------------------------------------------------------------------------------------------------
def dead_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of hidden units whose input gets an exactly zero gradient on every example of (x, y).

    The gradient of the summed loss with respect to each activation module's input, per unit (channel; a
    maxout unit is dead only when all its pieces are): a unit that passes no gradient on any example cannot
    change its incoming weights any more.
    """
    acts = [m for m in model.modules() if is_activation(m)]
    ins: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda mod, i, o: ins.append(i[0])) for m in acts]
    was = model.training
    model.eval()
    try:
        loss = F.cross_entropy(model(x), y, reduction="sum")
        grads = torch.autograd.grad(loss, ins)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    dead, total = 0, 0
    for m, g in zip(acts, grads):
        peak = g.abs().amax(dim=[0, *range(2, g.ndim)])  # per channel
        if isinstance(m, Maxout):
            peak = peak.view(m.pieces, -1).amax(0)
        dead += int((peak == 0).sum())
        total += peak.numel()
    return dead / max(1, total)


def dead_units(seed: int = 0, dataset: str = "spirals", lrs: Sequence[float] = (1e-3, 1e-2, 1e-1),
               activations: Sequence[str] = ("relu", "leaky_relu", "prelu", "elu", "maxout"), epochs: float = 8,
               width: int = 64, depth: int = 3, points: int = 600) -> dict:
    """Dead units and validation accuracy after Adam runs at rising learning rates, for each activation (no norm)."""
    _points_dataset(dataset)
    _check("epochs", epochs, 0.1, 1000, "try 10")
    for lr in lrs:
        _check("lr", lr, 1e-6, 10, "try 1e-3 to 0.1")
    for a in activations:
        ACTIVATIONS.check(a)
    dead = np.zeros((len(activations), len(lrs)))
    acc = np.zeros_like(dead)
    status = [["" for _ in lrs] for _ in activations]
    with _isolated():
        for i, act in enumerate(activations):
            for j, lr in enumerate(lrs):
                cfg = _config(**{"data.dataset": dataset, "data.points": points, "model.activation": act,
                                 "model.width": width, "model.depth": depth, "optim.name": "adam", "optim.lr": lr,
                                 "train.epochs": epochs, "train.seed": seed})
                run, log = _train(cfg, act)
                data = run.data
                dead[i, j] = dead_fraction(run.model, data.to_input(data.train_x), data.train_y)
                acc[i, j] = _val_acc(log) if run.status == "completed" else float("nan")
                status[i][j] = run.status
    lines = [f"{a:>10}: dead units " + ", ".join(f"{d:.0%} at lr {lr:g}" for d, lr in zip(dead[i], lrs))
             for i, a in enumerate(activations)]
    return {"dataset": dataset, "activations": list(activations), "lrs": list(lrs), "dead": dead, "val_acc": acc,
            "status": status, "epochs": epochs, "lines": lines}


# -- preprocessing ----------------------------------------------------------------------------------------------------
def preprocess(seed: int = 0, subset: int = 2000, epochs: float = 5, lr: float = 0.05, data_root: str | None = None,
               methods: Sequence[str] = tuple(PREPROCESS.names()), threads: int = 1) -> dict:
    """One MLP (no normalization layers, plain SGD) on a CIFAR-10 subset under each input preprocessing."""
    methods = list(methods)
    for m in methods:
        PREPROCESS.check(m)
    _check("subset", subset, 100, 50000, "try 2000")
    _check("epochs", epochs, 0.1, 1000, "try 5")
    _check("threads", threads, 1, 1024, "try 1")
    logs: dict[str, RunLog] = {}
    inputs: dict[str, dict] = {}
    with _isolated(threads):
        for m in methods:
            cfg = _config(**{"data.dataset": "cifar10", "data.root": data_root, "data.subset": subset,
                             "data.val_size": max(100, subset // 4), "data.preprocess": m, "model.width": 64,
                             "model.depth": 2, "optim.name": "sgd", "optim.lr": lr, "train.epochs": epochs,
                             "train.batch_size": 64, "train.seed": seed, "train.threads": threads})
            run, logs[m] = _train(cfg, m)
            x = run.data.to_input(run.data.train_x[:500]).float()
            inputs[m] = {"values": x.flatten()[::7].cpu().numpy(), "mean": x.mean(dim=(0, 2, 3)).tolist(),
                         "std": x.std(dim=(0, 2, 3)).tolist()}
    lines = [f"{m:>12}: input mean {np.mean(inputs[m]['mean']):+.2f}, std {np.mean(inputs[m]['std']):.2f}; "
             f"train loss {logs[m].epoch_values('train_loss')[-1]:.3f}, val acc {_val_acc(logs[m]):.3f} after "
             f"{epochs:g} epochs" for m in methods]
    return {"methods": methods, "logs": logs, "inputs": inputs, "subset": subset, "epochs": epochs, "lr": lr,
            "lines": lines}


# -- batch normalization -------------------------------------------------------------------------------------------
BN_CASES = (("He init, lr {lr:g}", "kaiming", False), ("N(0, 0.01²) init", "small", False),
            ("N(0, 1) init", "large", False), ("He init, lr {high:g}", "kaiming", True))


def batchnorm(seed: int = 0, dataset: str = "spirals", depth: int = 4, width: int = 64, epochs: float = 8,
              lr: float = 0.1, high_lr: float = 1.0, batch_sizes: Sequence[int] = (2, 4, 16, 64, 200)) -> dict:
    """Training with and without batch norm under a good and two bad inits and a high LR; then train vs eval mode.

    The second part takes the batch-norm model of the first case: its validation accuracy in eval mode (running
    averages: an example's output does not depend on its batch) and in train mode with batches of each size
    (each batch normalized by its own statistics), on a copy so the running averages stay as trained.
    """
    _points_dataset(dataset)
    _check("lr", lr, 1e-6, 10, "try 0.1")
    _check("high_lr", high_lr, 1e-6, 100, "try 1.0")
    for b in batch_sizes:
        _check("batch size", b, 2, 200, "train mode needs at least 2 examples per batch; the validation set has 200")
    cases = [c[0].format(lr=lr, high=high_lr) for c in BN_CASES]
    curves: dict[str, dict[str, np.ndarray]] = {"none": {}, "batch": {}}
    status: dict[str, dict[str, str]] = {"none": {}, "batch": {}}
    with _isolated():
        kept = None
        for norm in ("none", "batch"):
            for label, (_, init, high) in zip(cases, BN_CASES):
                cfg = _config(**{"data.dataset": dataset, "model.norm": norm, "model.init": init, "model.depth": depth,
                                 "model.width": width, "optim.name": "sgd", "optim.lr": high_lr if high else lr,
                                 "train.epochs": epochs, "train.batch_size": 64, "train.seed": seed})
                run, log = _train(cfg, f"{norm}: {label}")
                curves[norm][label] = log.epoch_values("val_acc")
                status[norm][label] = run.status
                if norm == "batch" and kept is None:
                    kept = run
        model, data = kept.model, kept.data
        x, y = data.to_input(data.val_x), data.val_y
        model.eval()
        with torch.no_grad():
            eval_acc = float((model(x).argmax(1) == y).float().mean())
            train_mode = []
            for b in batch_sizes:
                m = copy.deepcopy(model).train()
                correct, n = 0, 0
                for i in range(0, len(y) - b + 1, b):  # whole batches only: a batch of one has no statistics
                    correct += int((m(x[i:i + b]).argmax(1) == y[i:i + b]).sum())
                    n += b
                train_mode.append(correct / max(1, n))
            bn = [mm for mm in model.modules() if isinstance(mm, nn.BatchNorm1d)][-1]  # reads ReLU outputs: mean > 0
            feats: list[torch.Tensor] = []
            handle = bn.register_forward_hook(lambda mod, i, o: feats.append(i[0]))
            model(data.to_input(data.train_x))
            handle.remove()
            h = feats[0]
            g = torch.Generator().manual_seed(seed)
            batch_means = torch.stack([h[torch.randperm(len(h), generator=g)[:16]].mean(0) for _ in range(20)])
    last = {norm: {k: (float(v[-1]) if len(v) else float("nan")) for k, v in c.items()} for norm, c in curves.items()}
    lines = [f"{label:>18}: val acc {last['none'][label]:.2f} without batch norm ({status['none'][label]}), "
             f"{last['batch'][label]:.2f} with it" for label in cases]
    lines.append(f"eval mode (running averages): val acc {eval_acc:.3f}; train mode (batch statistics): "
                 + ", ".join(f"{a:.3f} in batches of {b}" for a, b in zip(train_mode, batch_sizes)))
    return {"dataset": dataset, "cases": cases, "curves": curves, "status": status, "eval_acc": eval_acc,
            "batch_sizes": list(batch_sizes), "train_mode_acc": train_mode,
            "running_mean": bn.running_mean.cpu().numpy()[:32].copy(), "data_mean": h.mean(0).cpu().numpy()[:32],
            "batch_means": batch_means.cpu().numpy()[:, :32], "lines": lines}


# -- cross-validation --------------------------------------------------------------------------------------------
def _fit_and_score(cfg: Config, data: Data) -> float:
    """Train cfg's model on data's train split with labkit's step and batches; accuracy on its val split."""
    from .data.pipeline import TrainBatches
    from .optimizers import build_optimizer
    from .schedules import make_schedule
    from .training import evaluate
    from .training.step import TrainStep, set_lr

    model = build_model(cfg.model, data.input_shape, data.num_classes, seed=cfg.train.seed)
    opt = build_optimizer(model, cfg.optim)
    sched = make_schedule(cfg, len(data.train_y))
    batches = TrainBatches(data, cfg.reg, cfg.train.batch_size, cfg.train.seed + 1)
    step = TrainStep(model, opt, cfg)
    model.train()
    s = 0
    while s < sched.total_steps:
        for x, target, _ in batches.epoch():
            if s >= sched.total_steps:
                break
            set_lr(opt, sched(s))
            step(x, target)
            s += 1
    return evaluate(model, data, "val")[1]


def crossval(seed: int = 0, dataset: str = "circles", points: int = 200, noise: float = 0.25, k: int = 5,
             repeats: int = 6, epochs: float = 20, holdout: float = 0.2) -> dict:
    """A small set's accuracy estimated `repeats` times by one held-out split and by k-fold cross-validation.

    Each repeat shuffles the same `points` examples differently (seeded); the held-out estimate trains on
    1 - holdout of them and scores the rest, k-fold trains k models and averages the k held-out scores (with
    holdout = 1/k the held-out split is the first fold: one draw of the k). The
    truth is the accuracy of the same recipe trained on all the points, measured on 2,000 fresh ones.
    """
    _points_dataset(dataset)
    _check("k", k, 2, 20, "try 5")
    _check("repeats", repeats, 2, 100, "try 6")
    _check("points", points, 20, 100000, "try 200")
    _check("holdout", holdout, 0.05, 0.5, "try 0.2")
    held, kfold, folds = [], [], []
    with _isolated():
        cfg = _config(**{"data.dataset": dataset, "data.points": points, "data.noise": noise, "model.width": 32,
                         "model.depth": 2, "optim.name": "adam", "optim.lr": 0.01, "train.epochs": epochs,
                         "train.seed": seed})
        pool = load_data(cfg.data, seed)
        x, y = pool.train_x, pool.train_y
        n = len(y)
        for r in range(repeats):
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + r))
            n_val = max(1, round(holdout * n))
            split = dataclasses.replace(pool, train_x=x[perm[n_val:]], train_y=y[perm[n_val:]],
                                        val_x=x[perm[:n_val]], val_y=y[perm[:n_val]])
            held.append(_fit_and_score(cfg, split))
            scores = []
            parts = torch.tensor_split(perm, k)
            for i, part in enumerate(parts):
                rest = torch.cat([q for j, q in enumerate(parts) if j != i])
                fold = dataclasses.replace(pool, train_x=x[rest], train_y=y[rest], val_x=x[part], val_y=y[part])
                scores.append(_fit_and_score(cfg, fold))
            folds.append(scores)
            kfold.append(float(np.mean(scores)))
        fresh = load_data(dataclasses.replace(cfg.data, points=2000), seed + 1)
        truth = _fit_and_score(cfg, dataclasses.replace(pool, val_x=fresh.train_x, val_y=fresh.train_y))
    held_a, kfold_a = np.array(held), np.array(kfold)
    lines = [f"one held-out split ({holdout:.0%} of {n}): mean {held_a.mean():.3f}, std {held_a.std(ddof=1):.3f} "
             f"over {repeats} shuffles",
             f"{k}-fold cross-validation: mean {kfold_a.mean():.3f}, std {kfold_a.std(ddof=1):.3f} over the same "
             f"shuffles ({k}x the training)",
             f"accuracy on 2,000 fresh points of the recipe trained on all {n}: {truth:.3f}"]
    return {"dataset": dataset, "points": n, "k": k, "repeats": repeats, "holdout": holdout, "held_out": held_a,
            "kfold": kfold_a, "folds": np.array(folds), "truth": truth,
            "held_out_std": float(held_a.std(ddof=1)), "kfold_std": float(kfold_a.std(ddof=1)), "lines": lines}


# -- early stopping ----------------------------------------------------------------------------------------------
def early_stopping(seed: int = 0, dataset: str = "circles", points: int = 100, noise: float = 0.25,
                   epochs: float = 60, patience: int = 10, width: int = 256) -> dict:
    """A wide MLP overfitting a small noisy 2-D set, run to the end and again with early stopping (patience).

    Both runs are the same seeded run until the early stop, so the stopped run is the full run cut short; the
    best checkpoint of each is the epoch of its best validation accuracy (the first, on ties).
    """
    _points_dataset(dataset)
    _check("patience", patience, 1, 1000, "try 10")
    _check("epochs", epochs, 2, 10000, "try 60")
    logs: dict[str, RunLog] = {}
    summaries: dict[str, dict] = {}
    with _isolated():
        for label, p in (("no early stopping", 0), (f"patience {patience}", patience)):
            cfg = _config(**{"data.dataset": dataset, "data.points": points, "data.noise": noise,
                             "model.width": width, "model.depth": 2, "optim.name": "adam", "optim.lr": 0.01,
                             "train.epochs": epochs, "train.patience": p, "train.seed": seed, "train.test": True})
            run, logs[label] = _train(cfg, label)
            summaries[label] = dict(run.summary)
    full, stopped = (summaries[k] for k in logs)
    stop_epoch = len(list(logs.values())[1].epochs)
    lines = [f"best epoch {full['best_epoch']} of {len(list(logs.values())[0].epochs)} "
             f"(val acc {max(list(logs.values())[0].epoch_values('val_acc')):.3f}); "
             f"patience {patience} stopped at epoch {stop_epoch}, "
             f"{len(list(logs.values())[0].epochs) - stop_epoch} epochs sooner",
             f"test accuracy of the best checkpoint: {full['final'].get('test_acc', float('nan')):.3f} (full run), "
             f"{stopped['final'].get('test_acc', float('nan')):.3f} (stopped run); the last epoch's val acc: "
             f"{list(logs.values())[0].epoch_values('val_acc')[-1]:.3f}"]
    return {"dataset": dataset, "logs": logs, "best_epoch": {k: s["best_epoch"] for k, s in summaries.items()},
            "stop_epoch": stop_epoch, "patience": patience,
            "test_acc": {k: s["final"].get("test_acc") for k, s in summaries.items()}, "lines": lines}


# -- L1 vs L2 -----------------------------------------------------------------------------------------------------
def l1_l2(seed: int = 0, dataset: str = "spirals", l2: float = 1e-2, l1: float = 1e-3, epochs: float = 30,
          width: int = 64, near_zero: float = 1e-3) -> dict:
    """The same MLP without a penalty, with L2 weight decay and with an L1 penalty; its weights afterwards."""
    _points_dataset(dataset)
    _check("l2", l2, 0, 1, "try 1e-2")
    _check("l1", l1, 0, 1, "try 1e-3")
    cases = {"none": {}, f"L2 {l2:g}": {"optim.weight_decay": l2}, f"L1 {l1:g}": {"optim.l1": l1}}
    weights, acc = {}, {}
    with _isolated():
        for label, over in cases.items():
            cfg = _config(**{"data.dataset": dataset, "model.width": width, "model.depth": 2, "optim.name": "nesterov",
                             "optim.lr": 0.1, "schedule.name": "cosine", "train.epochs": epochs, "train.seed": seed,
                             **over})
            run, log = _train(cfg, label)
            weights[label] = torch.cat([p.detach().flatten() for p in run.model.parameters() if p.ndim > 1]).cpu().numpy()
            acc[label] = _val_acc(log)
    zeros = {k: float((np.abs(w) < near_zero).mean()) for k, w in weights.items()}
    lines = [f"{k:>10}: {zeros[k]:.0%} of weights below {near_zero:g} in size, largest {np.abs(w).max():.2f}, "
             f"val acc {acc[k]:.3f}" for k, w in weights.items()]
    return {"dataset": dataset, "weights": weights, "near_zero": near_zero, "zero_fraction": zeros, "val_acc": acc,
            "lines": lines}


# -- dropout and DropConnect: train vs eval -----------------------------------------------------------------------
def _unit_means(model: nn.Module, layer: nn.Module, x: torch.Tensor, train_mode: bool, draws: int) -> torch.Tensor:
    """Per-unit mean over the examples (and `draws` masks in train mode) of what `layer` outputs."""
    outs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda mod, i, o: outs.append(o.detach().mean(0)))
    model.train(train_mode)
    with torch.no_grad():
        for _ in range(draws if train_mode else 1):
            model(x)
    handle.remove()
    model.eval()
    return torch.stack(outs).mean(0)


def dropout(seed: int = 0, dataset: str = "spirals", p: float = 0.5, epochs: float = 10, width: int = 64,
            draws: int = 50, ps: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)) -> dict:
    """Inverted dropout and DropConnect keep each unit's mean input equal in train and eval mode.

    An MLP trained with dropout p: the mean over the training set (and `draws` masks) of every unit after its
    dropout layer, in train mode vs in eval mode. Another trained with DropConnect p: the same for the units its
    second layer computes. Then the first model's hidden activations through torch's dropout at each rate of
    `ps`: the mean in train mode over the mean in eval mode (1 with the 1/(1-p) scaling; 1 - p without it).
    """
    _points_dataset(dataset)
    _check("p", p, 0.0, 0.95, "a drop probability, try 0.5")
    _check("draws", draws, 1, 10000, "try 50")
    out: dict[str, Any] = {"dataset": dataset, "p": p}
    with _isolated():
        base = {"data.dataset": dataset, "model.width": width, "model.depth": 2, "optim.name": "adam",
                "optim.lr": 0.01, "train.epochs": epochs, "train.seed": seed}
        run, log = _train(_config(**base, **{"model.dropout": p}), "dropout")
        model, data = run.model, run.data
        x = data.to_input(data.train_x)
        drop = next(m for m in model.modules() if isinstance(m, nn.Dropout))
        out["dropout"] = {"train": _unit_means(model, drop, x, True, draws).cpu().numpy(),
                          "eval": _unit_means(model, drop, x, False, 1).cpu().numpy(), "val_acc": _val_acc(log)}
        hidden: list[torch.Tensor] = []
        handle = drop.register_forward_hook(lambda mod, i, o: hidden.append(i[0].detach()))
        with torch.no_grad():
            model(x)
        handle.remove()
        h = hidden[0]
        one = h[:, int(h.mean(0).argmax())]  # the unit with the largest mean: its values train vs eval
        with torch.no_grad():
            out["unit"] = {"eval": one.cpu().numpy(), "train": F.dropout(one.repeat(5), p, True).cpu().numpy()}
            ratios = [float(torch.stack([F.dropout(h, q, True) for _ in range(draws)]).mean() / h.mean()) for q in ps]
        out["ps"], out["ratio_inverted"] = list(ps), ratios
        run2, log2 = _train(_config(**base, **{"model.dropconnect": p}), "dropconnect")
        layer = next(m for m in run2.model.modules() if isinstance(m, DropConnectLinear))
        x2 = run2.data.to_input(run2.data.train_x)
        out["dropconnect"] = {"train": _unit_means(run2.model, layer, x2, True, draws).cpu().numpy(),
                              "eval": _unit_means(run2.model, layer, x2, False, 1).cpu().numpy(), "val_acc": _val_acc(log2)}
    for k in ("dropout", "dropconnect"):
        r = out[k]
        # each unit's train-mode mean over its eval-mode value, averaged with weights |eval| (= sum train * sign /
        # sum |eval|): DropConnect's units are signed, and the plain ratio of their means divides by a sum of
        # positive and negative units that nearly cancel (0.85 for seed 1, where every unit keeps its mean)
        r["ratio"] = float((r["train"] * np.sign(r["eval"])).sum() / max(np.abs(r["eval"]).sum(), 1e-12))
    out["lines"] = [f"dropout p={p:g}: unit output in train mode / eval mode = {out['dropout']['ratio']:.3f} "
                    f"(without the 1/(1-p) scaling it would be {1 - p:.2f})",
                    f"DropConnect p={p:g}: unit input in train mode / eval mode = "
                    f"{out['dropconnect']['ratio']:.3f}",
                    "dropout at p = " + ", ".join(f"{q:g}: {r:.3f}" for q, r in zip(ps, ratios))]
    return out


# -- the registry: what the CLI, the lab and run_concept offer --------------------------------------------------------
# each entry: its function, a one-line claim, the plot's name in labkit.plots.concepts, and whether it needs CIFAR
CONCEPTS.add("zigzag", zigzag, "sigmoid's outputs are all positive: one-signed weight gradients, zig-zag paths",
             plot="zigzag", data="points")
CONCEPTS.add("dead-units", dead_units, "ReLU units die at a high learning rate; leaky ReLU, PReLU, ELU, maxout do not",
             plot="dead_units", data="points")
CONCEPTS.add("preprocess", preprocess, "CIFAR pixels raw vs mean-subtracted vs standardized: same model, same steps",
             plot="preprocess", data="cifar10")
CONCEPTS.add("batchnorm", batchnorm,
             "batch norm trains through bad inits and a high LR; train- vs eval-mode statistics",
             plot="batchnorm", data="points")
CONCEPTS.add("crossval", crossval, "k-fold cross-validation vs one held-out split: the spread of the estimate",
             plot="crossval", data="points")
CONCEPTS.add("early-stopping", early_stopping, "the best epoch on the learning curves, and where patience stops",
             plot="early_stopping", data="points")
CONCEPTS.add("l1-l2", l1_l2, "L1 drives weights to zero (sparse); L2 shrinks them all", plot="l1_l2", data="points")
CONCEPTS.add("dropout", dropout, "inverted dropout and DropConnect: the same mean in train and eval mode",
             plot="dropout", data="points")


def run_concept(name: str, **kwargs: Any) -> dict:
    """Compute the concept demo `name` (see CONCEPTS) with its keyword arguments; the result dict has `lines`."""
    return CONCEPTS.get(name)(**kwargs)

