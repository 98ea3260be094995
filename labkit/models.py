"""Model registry: MLP, ConvNet and a small ResNet, built from a ModelConfig.

Every model is a plain nn.Module whose activations are separate modules
(so probes can hook them) and whose last Linear is the classifier.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .activations import expand, make_activation
from .config import ModelConfig
from .initializers import initialize
from .registry import Registry

ModelFactory = Callable[[ModelConfig, Sequence[int], int], nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")
NORMS: Registry[Callable[[int, bool], nn.Module]] = Registry("normalization")


def _group_count(c: int) -> int:
    for g in (8, 4, 2):
        if c % g == 0:
            return g
    return 1


NORMS.add("none", lambda c, conv: nn.Identity(), "no normalization")
NORMS.add("batch", lambda c, conv: nn.BatchNorm2d(c) if conv else nn.BatchNorm1d(c), "batch norm: batch statistics in training, running averages in eval")
NORMS.add("layer", lambda c, conv: nn.GroupNorm(1, c) if conv else nn.LayerNorm(c), "layer norm: statistics over each example's features")
NORMS.add("group", lambda c, conv: nn.GroupNorm(_group_count(c), c), "group norm: statistics over groups of channels")


def make_norm(name: str, channels: int, conv: bool) -> nn.Module:
    """A normalization layer for `channels` features (conv: 4-D input)."""
    return NORMS.get(name)(channels, conv)


class MLP(nn.Module):
    """Flatten, then `depth` x (Linear, norm, activation, dropout), then a Linear classifier."""

    def __init__(self, cfg: ModelConfig, input_shape: Sequence[int], classes: int):
        super().__init__()
        k = expand(cfg.activation)
        d_in = 1
        for s in input_shape:
            d_in *= s
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(cfg.depth):
            layers += [
                nn.Linear(d_in, cfg.width * k, bias=cfg.norm == "none"),
                make_norm(cfg.norm, cfg.width * k, conv=False),
                make_activation(cfg.activation),
            ]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            d_in = cfg.width
        layers.append(nn.Linear(d_in, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_block(c_in: int, c_out: int, cfg: ModelConfig) -> list[nn.Module]:
    k = expand(cfg.activation)
    return [
        nn.Conv2d(c_in, c_out * k, 3, padding=1, bias=cfg.norm == "none"),
        make_norm(cfg.norm, c_out * k, conv=True),
        make_activation(cfg.activation),
    ]


class ConvNet(nn.Module):
    """A stem conv, then `depth` stages of (conv-norm-act, conv-norm-act, max-pool), widths doubling.

    The shape follows the fast CIFAR baselines (airbench, the DAWNBench
    ResNet-9 without its skips): cheap at 32x32 and trains well in few epochs.
    """

    def __init__(self, cfg: ModelConfig, input_shape: Sequence[int], classes: int):
        super().__init__()
        c_in = input_shape[0]
        w = cfg.width
        layers = _conv_block(c_in, w, cfg)
        for i in range(cfg.depth):
            c_out = w * 2**i
            layers += [nn.MaxPool2d(2)] if i else []
            layers += _conv_block(w if i == 0 else c_out // 2, c_out, cfg)
            layers += _conv_block(c_out, c_out, cfg)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = nn.Linear(w * 2 ** (cfg.depth - 1), classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(x))


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs with a skip (1x1 conv when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, cfg: ModelConfig):
        super().__init__()
        k = expand(cfg.activation)
        self.conv1 = nn.Conv2d(c_in, c_out * k, 3, stride, 1, bias=cfg.norm == "none")
        self.norm1 = make_norm(cfg.norm, c_out * k, conv=True)
        self.act1 = make_activation(cfg.activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=cfg.norm == "none")
        self.norm2 = make_norm(cfg.norm, c_out, conv=True)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), make_norm(cfg.norm, c_out, conv=True)
            )
        # maxout halves channels, so the block's output activation cannot be maxout
        self.act2 = make_activation(cfg.activation if k == 1 else "relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.act2(y + self.skip(x))


class ResNet(nn.Module):
    """A small ResNet: stem, `depth` stages of two basic blocks (stride 2 after the first), head."""

    def __init__(self, cfg: ModelConfig, input_shape: Sequence[int], classes: int):
        super().__init__()
        w = cfg.width
        self.stem = nn.Sequential(*_conv_block(input_shape[0], w, cfg))
        blocks: list[nn.Module] = []
        c = w
        for i in range(cfg.depth):
            c_out = w * 2**i
            blocks += [BasicBlock(c, c_out, 1 if i == 0 else 2, cfg), BasicBlock(c_out, c_out, 1, cfg)]
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x)).mean(dim=(2, 3))
        return self.head(self.dropout(x))


MODELS.add("mlp", MLP, "fully connected: depth hidden layers of width units", image_only=False)
MODELS.add("convnet", ConvNet, "conv-norm-act stages with pooling (the fast CIFAR recipe)", image_only=True)
MODELS.add("resnet", ResNet, "small ResNet with basic blocks and skips", image_only=True)


def build_model(cfg: ModelConfig, input_shape: Sequence[int], classes: int, seed: int | None = None) -> nn.Module:
    """Build and initialize the model `cfg` describes for inputs of `input_shape` (no batch dim)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = MODELS.get(cfg.kind)(cfg, tuple(input_shape), classes)
    initialize(model, cfg.init, cfg.activation)
    return model
