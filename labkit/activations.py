"""Activation registry: each entry builds a module and says how to read and initialize it.

Traits used elsewhere:
- family: "saturating" (sigmoid, tanh: probes count saturated units) or
  "relu" (ReLU family: probes count dead units) or "smooth";
- range: the histogram range probes use so each activation's plot reads well;
- gain: the nonlinearity name torch.nn.init uses for Kaiming/Xavier gains;
- expand: how many inputs per output (maxout takes k pieces per unit).
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import Registry

ACTIVATIONS: Registry = Registry("activation")


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): the max over `pieces` groups of channels (dim 1)."""

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        return x.view(n, self.pieces, c // self.pieces, *x.shape[2:]).amax(dim=1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


ACTIVATIONS.add("relu", nn.ReLU, "max(0, x): fast, not zero-centred, units can die", family="relu", range=(-1.0, 4.0), gain="relu")
ACTIVATIONS.add("leaky_relu", lambda: nn.LeakyReLU(0.01), "max(0.01x, x): never fully dead", family="relu", range=(-1.0, 4.0), gain="leaky_relu", gain_param=0.01)
ACTIVATIONS.add("prelu", nn.PReLU, "leaky ReLU with a learned slope (init 0.25)", family="relu", range=(-1.0, 4.0), gain="leaky_relu", gain_param=0.25)
ACTIVATIONS.add("elu", nn.ELU, "exponential for x<0: closer to zero-centred", family="relu", range=(-1.5, 4.0), gain="relu")
ACTIVATIONS.add("gelu", nn.GELU, "x * Phi(x): smooth ReLU of transformers", family="relu", range=(-1.0, 4.0), gain="relu")
ACTIVATIONS.add("silu", nn.SiLU, "x * sigmoid(x) (swish)", family="relu", range=(-1.0, 4.0), gain="relu")
ACTIVATIONS.add("tanh", nn.Tanh, "zero-centred but saturates at +-1", family="saturating", range=(-1.0, 1.0), gain="tanh", limit=(-1.0, 1.0))
ACTIVATIONS.add("sigmoid", nn.Sigmoid, "saturates at 0 and 1, not zero-centred", family="saturating", range=(0.0, 1.0), gain="sigmoid", limit=(0.0, 1.0))
ACTIVATIONS.add("maxout", lambda: Maxout(2), "max of 2 linear pieces: no saturation, no death, 2x parameters", family="smooth", range=(-2.0, 4.0), gain="linear", expand=2)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for `name`."""
    return ACTIVATIONS.get(name)()


def expand(name: str) -> int:
    """Inputs per output unit (2 for maxout, else 1)."""
    return int(ACTIVATIONS.entry(name).traits.get("expand", 1))


def is_activation(module: nn.Module) -> bool:
    """True for modules built by this registry (probes hook these)."""
    return isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, Maxout))
