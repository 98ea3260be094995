"""Weight initializer registry, applied to every Linear and Conv layer of a model.

The lecture's cases: zeros (every unit identical: symmetry never breaks),
N(0, 0.01^2) (activations shrink to zero with depth), N(0, 1) (saturation or
explosion), Xavier (variance kept for tanh), Kaiming/He (variance kept for ReLU).

`xavier` is the lecture's Xavier/Glorot, with no activation gain: std sqrt(2/(fan_in+fan_out)),
which is 1/sqrt(fan_in) for square layers. It keeps tanh's scale and halves the variance at every
ReLU, so a deep ReLU net collapses with it; He (`kaiming`, gain sqrt 2) is the fix. `xavier_gain`
multiplies Xavier by the activation's gain (torch.nn.init.calculate_gain), which for ReLU equals He
on square layers.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .activations import ACTIVATIONS
from .registry import Registry

Init = Callable[[torch.Tensor, float], None]  # (weight, gain) -> None, in place

INITIALIZERS: Registry[Init] = Registry("initializer")

INITIALIZERS.add("default", lambda w, g: None, "torch's own default (Kaiming-uniform with a=sqrt(5))")
INITIALIZERS.add("zeros", lambda w, g: nn.init.zeros_(w), "all weights 0: symmetry is never broken")
INITIALIZERS.add("small", lambda w, g: nn.init.normal_(w, 0.0, 0.01), "N(0, 0.01^2): activations collapse to 0 in deep nets")
INITIALIZERS.add("large", lambda w, g: nn.init.normal_(w, 0.0, 1.0), "N(0, 1): activations saturate or explode")
# the gain argument is ignored by the lecture's Xavier: its point is what happens without one
INITIALIZERS.add("xavier", lambda w, g: nn.init.xavier_normal_(w), "Xavier/Glorot normal, std = sqrt(2/(fan_in+fan_out)), "
                 "no activation gain (the lecture's: keeps tanh's scale, collapses a deep ReLU net)")
INITIALIZERS.add("xavier_uniform", lambda w, g: nn.init.xavier_uniform_(w), "Xavier/Glorot uniform, "
                 "bound = sqrt(6/(fan_in+fan_out)), no activation gain")
INITIALIZERS.add("xavier_gain", lambda w, g: nn.init.xavier_normal_(w, gain=g), "Xavier normal times the activation's "
                 "gain (relu: sqrt 2, tanh: 5/3), std = gain*sqrt(2/(fan_in+fan_out)); for ReLU this is He")


def _fan_in(w: torch.Tensor) -> int:
    return max(1, nn.init._calculate_correct_fan(w, "fan_in"))


def _kaiming_normal(w: torch.Tensor, gain: float) -> None:
    nn.init.normal_(w, 0.0, gain / _fan_in(w) ** 0.5)


def _kaiming_uniform(w: torch.Tensor, gain: float) -> None:
    bound = gain * (3.0 / _fan_in(w)) ** 0.5
    nn.init.uniform_(w, -bound, bound)


# torch's kaiming_* take a nonlinearity name; ours take the gain computed from our
# activation registry so GELU/SiLU/ELU/maxout get a sensible one too.
INITIALIZERS.add("kaiming", _kaiming_normal, "Kaiming/He normal, std = gain/sqrt(fan_in)")
INITIALIZERS.add("kaiming_uniform", _kaiming_uniform, "Kaiming/He uniform, bound = gain*sqrt(3/fan_in)")
INITIALIZERS.add("orthogonal", lambda w, g: nn.init.orthogonal_(w, gain=g), "orthogonal rows scaled by the gain (Saxe et al.)")


def gain_for(activation: str) -> float:
    """torch.nn.init's recommended gain for an activation (relu: sqrt 2, tanh: 5/3, ...)."""
    t = ACTIVATIONS.entry(activation).traits
    return nn.init.calculate_gain(t.get("gain", "linear"), t.get("gain_param"))


def initialize(model: nn.Module, init: str, activation: str) -> None:
    """Re-initialize every Linear/Conv weight with `init` (biases to 0 unless 'default').

    The classifier (the last Linear) gets gain 1: it feeds the softmax, not an activation.
    """
    fn = INITIALIZERS.get(init)
    if init == "default":
        return
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    g = gain_for(activation)
    with torch.no_grad():
        for i, m in enumerate(layers):
            fn(m.weight, 1.0 if i == len(layers) - 1 else g)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
