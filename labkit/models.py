"""Model registry: MLP, ConvNet and a small ResNet, built from a ModelConfig.

Every model is a plain nn.Module whose activations are separate modules
(so probes can hook them) and whose last Linear is the classifier.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import expand, make_activation
from .config import ModelConfig
from .errors import LabkitError
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


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics come from each chunk of `group` examples of the batch on its own.

    This is what data-parallel replicas of `group` examples each compute without synchronised batch norm (and
    what "ghost batch norm", Hoffer et al. 2017, does on purpose), shown in one process. In eval mode it is plain
    batch norm. The running statistics move by the average of the chunks' statistics; with group = batch the
    layer equals nn.BatchNorm (tests/test_scale.py). A batch that `group` does not divide (a probe batch, the
    LR test's) puts its remainder into its last chunk.
    """

    def __init__(self, num_features: int, group: int, conv: bool = True, **kw):
        super().__init__(num_features, **kw)
        self.group, self.conv = int(group), conv

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != (4 if self.conv else 2):
            raise ValueError(f"expected {4 if self.conv else 2}D input (got {x.dim()}D input)")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group={self.group}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training or not self.track_running_stats) or x.shape[0] < self.group:
            return super().forward(x)
        n, g = x.shape[0], max(1, x.shape[0] // self.group)
        shape = (1, -1) + (1,) * (x.dim() - 2)  # per channel, broadcast over (N, C, ...)
        xf = x.float()
        if n == g * self.group:  # one reshape: (g, group, C, ...) and statistics over all but (g, C)
            chunks = [xf.view(g, self.group, *x.shape[1:])]
        else:  # the remainder joins the last chunk
            cut = (g - 1) * self.group
            chunks = [xf[:cut].view(g - 1, self.group, *x.shape[1:]), xf[cut:].unsqueeze(0)]
        outs, means, vars_ = [], [], []
        for c in chunks:
            dims = (1,) + tuple(range(3, c.dim()))
            var, mean = torch.var_mean(c, dim=dims, keepdim=True, correction=0)
            outs.append(((c - mean) * torch.rsqrt(var + self.eps)).flatten(0, 1))
            count = c[0].numel() // c.shape[2]  # values per channel in one chunk
            means.append(mean.reshape(-1, c.shape[2]))
            vars_.append(var.reshape(-1, c.shape[2]) * count / max(1, count - 1))  # unbiased, as BatchNorm keeps
        y = torch.cat(outs) if len(outs) > 1 else outs[0]
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(torch.cat(means).mean(0), m)
                self.running_var.lerp_(torch.cat(vars_).mean(0), m)
        y = y.to(x.dtype)
        return y.contiguous(memory_format=torch.channels_last) if x.dim() == 4 and x.is_contiguous(
            memory_format=torch.channels_last) else y


def make_norm(name: str, channels: int, conv: bool, group: int = 0) -> nn.Module:
    """A normalization layer for `channels` features (conv: 4-D input); batch norm over chunks of `group` if > 0."""
    if group > 0 and name == "batch":
        return GhostBatchNorm(channels, group, conv)
    return NORMS.get(name)(channels, conv)


class DropConnectLinear(nn.Linear):
    """A Linear layer with DropConnect (Wan et al. 2013): while training, each weight is zeroed with probability
    `p` and the rest scaled by 1/(1-p), one mask per batch; in eval the weights are used as they are.

    Dropout drops a unit's output (a whole column of the next weight matrix); DropConnect drops single weights.
    The inverted scaling is dropout's, so a unit's expected input in training equals its input in eval (the
    paper's Gaussian moment matching at test time is left out). A subclass of nn.Linear with its state dict,
    so checkpoints, the head and transfer learning see an ordinary Linear layer.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.0):
        super().__init__(in_features, out_features, bias)
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, F.dropout(self.weight, self.p, self.training), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dropconnect={self.p:g}"


def linear(in_features: int, out_features: int, bias: bool = True, dropconnect: float = 0.0) -> nn.Linear:
    """nn.Linear, or DropConnectLinear when `dropconnect` > 0."""
    if dropconnect > 0:
        return DropConnectLinear(in_features, out_features, bias, dropconnect)
    return nn.Linear(in_features, out_features, bias)


class MLP(nn.Module):
    """Flatten, then `depth` x (Linear, norm, activation, dropout), then a Linear classifier.

    DropConnect (model.dropconnect) acts on the layers that read hidden units: every Linear after the first.
    """

    def __init__(self, cfg: ModelConfig, input_shape: Sequence[int], classes: int):
        super().__init__()
        k = expand(cfg.activation)
        d_in = 1
        for s in input_shape:
            d_in *= s
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(cfg.depth):
            layers += [
                linear(d_in, cfg.width * k, cfg.norm == "none", cfg.dropconnect if i > 0 else 0.0),
                make_norm(cfg.norm, cfg.width * k, conv=False, group=cfg.bn_group),
                make_activation(cfg.activation),
            ]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            d_in = cfg.width
        layers.append(linear(d_in, classes, True, cfg.dropconnect))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_block(c_in: int, c_out: int, cfg: ModelConfig) -> list[nn.Module]:
    """conv-norm-act at full resolution (the ResNet's stem)."""
    k = expand(cfg.activation)
    return [
        nn.Conv2d(c_in, c_out * k, 3, padding=1, bias=cfg.norm == "none"),
        make_norm(cfg.norm, c_out * k, conv=True, group=cfg.bn_group),
        make_activation(cfg.activation),
    ]


class PatchWhitening(nn.Conv2d):
    """A 2x2 convolution whose filters whiten the training images' 2x2 patches, frozen (as airbench does).

    `fit_to_data` sets the filters to the eigenvectors of the patches' covariance, each divided by the square
    root of its eigenvalue (and their negatives, so a ReLU after it loses nothing): the lectures' PCA/whitening
    preprocessing, done per patch. Until it is fitted it is an ordinary (initialized) convolution.
    """

    def __init__(self, c_in: int, kernel: int = 2, eps: float = 5e-4):
        super().__init__(c_in, 2 * c_in * kernel * kernel, kernel, padding=0, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def fit_to_data(self, x: torch.Tensor, max_patches: int = 200_000) -> None:
        """Set the filters from images `x` (N, C, H, W; preprocessed as the model sees them)."""
        k, c = self.kernel_size[0], self.in_channels
        patches = x.float().unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        if len(patches) > max_patches:
            g = torch.Generator().manual_seed(0)
            patches = patches[torch.randperm(len(patches), generator=g)[:max_patches].to(patches.device)]
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.T))
        w = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + self.eps)[:, None]).reshape(-1, c, k, k)
        self.weight.copy_(torch.cat([w, -w]))
        self.bias.zero_()


class ConvNet(nn.Module):
    """The fast CIFAR recipe's convnet (airbench's shape), small enough to read in one screen:

    a patch-whitening 2x2 conv (model.whiten; else a plain 3x3 conv-norm-act stem), then `depth` stages of
    conv -> max-pool -> norm -> act -> conv -> norm -> act, widths doubling from `width`; a global max-pool and
    a linear head whose logits are scaled by 1/9, so training starts near the chance loss ln C. Batch norm's
    gains stay at 1 (only its shifts train) and its running statistics follow the weights closely. Pooling right
    after the first conv of a stage halves the resolution before the norm, activation and second conv: most
    of the work runs on small maps with many channels, which CPUs (and GPUs) do at a high rate.
    """

    LOGIT_SCALE = 1 / 9
    BN_MOMENTUM = 0.4  # torch's convention: the weight of the new batch in the running statistics (default 0.1)

    def __init__(self, cfg: ModelConfig, input_shape: Sequence[int], classes: int):
        super().__init__()
        c_in = input_shape[0]
        if cfg.whiten:
            stem: list[nn.Module] = [PatchWhitening(c_in)]
            c = stem[0].out_channels
        else:
            stem, c = _conv_block(c_in, cfg.width, cfg), cfg.width
        layers = list(stem)
        k = expand(cfg.activation)
        size = min(input_shape[1:]) - (1 if cfg.whiten else 0)
        for i in range(cfg.depth):
            w = cfg.width * 2**i
            pool = [nn.MaxPool2d(2)] if size >= 2 else []  # 31 -> 15 -> 7 -> 3 -> 1: deeper stages keep 1x1
            size //= 2 if pool else 1
            layers += [nn.Conv2d(c, w * k, 3, padding=1, bias=cfg.norm == "none"), *pool,
                       make_norm(cfg.norm, w * k, conv=True, group=cfg.bn_group), make_activation(cfg.activation),
                       nn.Conv2d(w, w * k, 3, padding=1, bias=cfg.norm == "none"),
                       make_norm(cfg.norm, w * k, conv=True, group=cfg.bn_group), make_activation(cfg.activation)]
            c = w
        self.features = nn.Sequential(*layers)
        for m in self.features.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):  # as airbench: running statistics follow a short run, gains at 1
                m.momentum = self.BN_MOMENTUM
                m.weight.requires_grad_(False)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = linear(c, classes, False, cfg.dropconnect)

    def fit_to_data(self, x: torch.Tensor) -> None:
        """Fit the whitening stem (if any) to training images `x`; build_run_model calls this once."""
        if isinstance(self.features[0], PatchWhitening):
            self.features[0].fit_to_data(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(x)) * self.LOGIT_SCALE


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs with a skip (1x1 conv when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, cfg: ModelConfig):
        super().__init__()
        k = expand(cfg.activation)
        self.conv1 = nn.Conv2d(c_in, c_out * k, 3, stride, 1, bias=cfg.norm == "none")
        self.norm1 = make_norm(cfg.norm, c_out * k, conv=True, group=cfg.bn_group)
        self.act1 = make_activation(cfg.activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=cfg.norm == "none")
        self.norm2 = make_norm(cfg.norm, c_out, conv=True, group=cfg.bn_group)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), make_norm(cfg.norm, c_out, conv=True, group=cfg.bn_group)
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
        self.head = linear(c, classes, True, cfg.dropconnect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x)).mean(dim=(2, 3))
        return self.head(self.dropout(x))


MODELS.add("mlp", MLP, "fully connected: depth hidden layers of width units", image_only=False)
MODELS.add("convnet", ConvNet, "whitening stem, then conv-pool-norm-act stages (the fast CIFAR recipe, airbench's shape)",
           image_only=True)
MODELS.add("resnet", ResNet, "small ResNet with basic blocks and skips", image_only=True)


def build_model(cfg: ModelConfig, input_shape: Sequence[int], classes: int, seed: int | None = None) -> nn.Module:
    """Build and initialize the model `cfg` describes for inputs of `input_shape` (no batch dim)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = MODELS.get(cfg.kind)(cfg, tuple(input_shape), classes)
    initialize(model, cfg.init, cfg.activation)
    return model


# -- the parts transfer learning names: the head and the blocks below it ------------------------------------------
def head_of(model: nn.Module) -> str:
    """The name of the model's classifier head: its last nn.Linear (every model here ends in one)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise LabkitError(f"model {type(model).__name__} has no nn.Linear layer to serve as its classifier head; "
                          "transfer learning (init_from, freeze, backbone_lr_scale) needs one: end the model in one")
    return names[-1]


def blocks_of(model: nn.Module) -> list[list[str]]:
    """The model's blocks below the head, in order, each the names of its modules.

    Read off the module tree, not a layer list, so a changed model needs no change here: containers
    (Sequential, ModuleList) are opened, and a module holding a weight matrix or kernel starts a block
    (a conv or linear layer, or a whole residual block), while one holding only vectors (a norm's gain and
    bias, PReLU's slopes) joins the block before it. Parameter-free modules (activations, pooling, dropout)
    belong to no block. The convnet's blocks are its conv-norm pairs, the MLP's its linear-norm layers, the
    ResNet's its stem and basic blocks.
    """
    head = head_of(model)
    blocks: list[list[str]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if full == head or not any(True for _ in child.parameters()):
                continue
            if isinstance(child, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) or head.startswith(full + "."):
                visit(full + ".", child)
            elif any(p.ndim > 1 for p in child.parameters()) or not blocks:
                blocks.append([full])
            else:
                blocks[-1].append(full)

    visit("", model)
    return blocks
