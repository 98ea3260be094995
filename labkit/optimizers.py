"""Optimizer registry over torch.optim, built from an OptimConfig.

Weight decay goes to weights only (not biases or normalization gains),
the usual practice; AdamW decays decoupled from the gradient, the others
add it to the gradient (L2).

Each parameter group carries a `name` and an `lr_scale`: with `lr_scales={"features": 0.1}` the parameters
under `features.` form group "features" at a tenth of the scheduled rate (a pretrained backbone), the rest
group "model" at the full rate. Schedules and the LR range test multiply the scale (see train.step.set_lr).
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from .config import OptimConfig
from .errors import LabkitError
from .registry import Registry

Groups = list[dict]
OptimFactory = Callable[[Groups, OptimConfig], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimFactory] = Registry("optimizer")

OPTIMIZERS.add("sgd", lambda g, c: torch.optim.SGD(g, lr=c.lr), "plain SGD: slow along ravines", uses=("lr", "weight_decay"))
OPTIMIZERS.add("momentum", lambda g, c: torch.optim.SGD(g, lr=c.lr, momentum=c.momentum), "SGD + momentum: a velocity that averages gradients", uses=("lr", "momentum", "weight_decay"))
OPTIMIZERS.add("nesterov", lambda g, c: torch.optim.SGD(g, lr=c.lr, momentum=c.momentum, nesterov=True), "Nesterov momentum: gradient at the look-ahead point", uses=("lr", "momentum", "weight_decay"))
OPTIMIZERS.add("adagrad", lambda g, c: torch.optim.Adagrad(g, lr=c.lr, eps=c.eps), "per-parameter LR shrinking with the sum of squared gradients", uses=("lr", "weight_decay"))
OPTIMIZERS.add("rmsprop", lambda g, c: torch.optim.RMSprop(g, lr=c.lr, alpha=0.99, eps=c.eps, momentum=c.momentum if c.momentum < 1 else 0.0), "AdaGrad with a leaky (moving) average of squared gradients", uses=("lr", "momentum", "weight_decay"))
OPTIMIZERS.add("adam", lambda g, c: torch.optim.Adam(g, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps), "momentum + RMSProp with bias correction", uses=("lr", "beta1", "beta2", "weight_decay"))
OPTIMIZERS.add("adamw", lambda g, c: torch.optim.AdamW(g, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps), "Adam with decoupled weight decay", uses=("lr", "beta1", "beta2", "weight_decay"))
OPTIMIZERS.add("lbfgs", lambda g, c: torch.optim.LBFGS(g, lr=c.lr, max_iter=4, history_size=10, line_search_fn="strong_wolfe"), "quasi-Newton (L-BFGS), full-batch style: needs a deterministic loss per step", uses=("lr",), closure=True)


def _check_scales(model: nn.Module, lr_scales: Mapping[str, float]) -> None:
    names = [n for n, _ in model.named_parameters()]
    for prefix, scale in lr_scales.items():
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise LabkitError(f"lr_scales names {prefix!r}, which holds no parameter of this model; "
                              f"its top-level parts are: {', '.join(tops)}")
        if not (isinstance(scale, (int, float)) and 0 <= scale <= 10):
            raise LabkitError(f"lr_scales[{prefix!r}]={scale!r} is out of range; give a factor in [0, 10] (0.1 is usual "
                              f"for a pretrained backbone)")


def param_groups(model: nn.Module, weight_decay: float, lr_scales: Mapping[str, float] | None = None) -> Groups:
    """Per LR group (a name prefix in `lr_scales`, else "model"): weights (decayed), biases/norm (not decayed)."""
    lr_scales = dict(lr_scales or {})
    _check_scales(model, lr_scales)
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            group = next((k for k in lr_scales if n == k or n.startswith(k + ".")), "model")
            buckets.setdefault((group, p.ndim > 1), []).append(p)
    groups = []
    for group in ["model", *lr_scales]:
        for decayed in (True, False):
            if (group, decayed) in buckets or group == "model":  # "model" always has both groups, as before
                groups.append({"params": buckets.get((group, decayed), []), "name": group,
                               "lr_scale": float(lr_scales.get(group, 1.0)),
                               "weight_decay": weight_decay if decayed else 0.0})
    return groups


def build_optimizer(params: nn.Module | Iterable, cfg: OptimConfig,
                    lr_scales: Mapping[str, float] | None = None) -> torch.optim.Optimizer:
    """The optimizer `cfg` names, over a model's parameters (or explicit params/groups), groups scaled by `lr_scales`."""
    if isinstance(params, nn.Module):
        if cfg.name == "lbfgs":  # L-BFGS supports a single group and no weight decay
            if lr_scales:
                raise LabkitError("L-BFGS takes one parameter group: it cannot give parts of the model their own "
                                  "learning rate; drop the LR scales or choose another optimizer (e.g. nesterov)")
            groups: Groups = [{"params": [p for p in params.parameters() if p.requires_grad], "name": "model",
                               "lr_scale": 1.0}]
        else:
            groups = param_groups(params, cfg.weight_decay, lr_scales)
    else:
        groups = [{"params": list(params), "weight_decay": cfg.weight_decay}] if cfg.name != "lbfgs" else [{"params": list(params)}]
    return OPTIMIZERS.get(cfg.name)(groups, cfg)


def needs_closure(name: str) -> bool:
    """True when optimizer.step must be given a closure that re-evaluates the loss."""
    return bool(OPTIMIZERS.entry(name).traits.get("closure", False))
