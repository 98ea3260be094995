"""Optimizer registry over torch.optim, built from an OptimConfig.

Weight decay goes to weights only (not biases or normalization gains),
the usual practice; AdamW decays decoupled from the gradient, the others
add it to the gradient (L2).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from .config import OptimConfig
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


def param_groups(model: nn.Module, weight_decay: float) -> Groups:
    """Two groups: weights (decayed) and biases/norm parameters (not decayed)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(params: nn.Module | Iterable, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer `cfg` names, over a model's parameters (or explicit params/groups)."""
    if isinstance(params, nn.Module):
        if cfg.name == "lbfgs":  # L-BFGS supports a single group and no weight decay
            groups: Groups = [{"params": [p for p in params.parameters() if p.requires_grad]}]
        else:
            groups = param_groups(params, cfg.weight_decay)
    else:
        groups = [{"params": list(params), "weight_decay": cfg.weight_decay}] if cfg.name != "lbfgs" else [{"params": list(params)}]
    return OPTIMIZERS.get(cfg.name)(groups, cfg)


def needs_closure(name: str) -> bool:
    """True when optimizer.step must be given a closure that re-evaluates the loss."""
    return bool(OPTIMIZERS.entry(name).traits.get("closure", False))
