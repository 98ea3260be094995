"""Whole-batch augmentation with tensor ops: flip, reflect-pad crop, cutout, mixup, cutmix.

Every function takes a batch and a seeded generator, so a run is repeatable. The generator stays on the
CPU wherever the batch lives (a GPU run draws the same numbers as a CPU run); the index tensors built from
its draws are moved to the batch's device.
mixup and cutmix follow torchvision.transforms.v2.MixUp/CutMix: one
lambda ~ Beta(alpha, alpha) per batch, partners are the batch rolled by one,
targets are soft (probabilities), and cutmix's lambda is corrected to the
area of the box actually pasted after clipping at the border.
"""
from __future__ import annotations

import numpy as np
import torch


def flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = (torch.rand(len(x), generator=gen) < 0.5).to(x.device)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def _reflect_index(n: int, pad: int) -> torch.Tensor:
    """Source index of each position of a reflect-padded axis of length n + 2 pad."""
    i = torch.arange(-pad, n + pad).abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Reflect-pad by `pad` pixels and cut a random window of the original size from each image."""
    return flip_crop(x, False, pad, gen)


def flip_crop(x: torch.Tensor, flip: bool, pad: int, gen: torch.Generator) -> torch.Tensor:
    """`crop(flip(x))` as one gather from the unpadded images: the same random draws and the same pixels.

    A mirrored image's reflect-padded window is the unmirrored window's columns read backwards, so the flip is
    folded into the column index instead of costing a pass over the batch (8x faster than padding then
    fancy-indexing the window, and the flip comes free).
    """
    n, c, h, w = x.shape
    mask = (torch.rand(n, generator=gen) < 0.5).to(x.device) if flip else None
    if pad <= 0:
        return x if mask is None else torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = _reflect_index(h, pad)[dy.view(n, 1) + torch.arange(h)].to(x.device)
    cols = _reflect_index(w, pad)[dx.view(n, 1) + torch.arange(w)].to(x.device)
    if mask is not None:  # column j of a mirrored image is column w-1-j of the original
        cols = torch.where(mask.view(n, 1), (w - 1) - cols, cols)
    idx = (rows.view(n, h, 1) * w + cols.view(n, 1, w)).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, idx).view(n, c, h, w)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a size x size square at a random centre of each image (clipped at the border; DeVries & Taylor 2017)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=gen)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    inside = (ys >= cy - size // 2) & (ys < cy - size // 2 + size) & (xs >= cx - size // 2) & (xs < cx - size // 2 + size)
    return x.masked_fill(inside.unsqueeze(1).to(x.device), 0)


def sample_lambda(alpha: float, gen: torch.Generator) -> float:
    """lambda ~ Beta(alpha, alpha), repeatable from the run's generator.

    torch's Beta/Gamma samplers take no generator, so numpy draws it from a seed taken from ours.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(x: torch.Tensor, target: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each example with its neighbour in the batch: lam * a + (1 - lam) * b, inputs and targets."""
    return x.mul(lam).add_(x.roll(1, 0), alpha=1 - lam), target.mul(lam).add_(target.roll(1, 0), alpha=1 - lam)


def cutmix(x: torch.Tensor, target: torch.Tensor, lam: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste a box of area ~(1 - lam) from the neighbour; returns the corrected lambda too."""
    _, _, h, w = x.shape
    r = (1.0 - lam) ** 0.5
    bh, bw = int(h * r), int(w * r)
    cy = int(torch.randint(0, h, (1,), generator=gen))
    cx = int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh - bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw - bw // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x.roll(1, 0)[:, :, y0:y1, x0:x1]
    lam_true = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return out, target.mul(lam_true).add_(target.roll(1, 0), alpha=1 - lam_true), lam_true
