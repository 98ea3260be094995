"""Shapes: a generated image set that is not like CIFAR, for transfer learning offline.

32x32 colour drawings of five shapes (circle, square, triangle, cross, star), each filled or drawn as an
outline, at a random place, size, rotation and colour, on a background with a colour gradient and pixel noise.
CIFAR holds photographs of objects; these are flat synthetic drawings whose class is their outline alone, the
"different" target of the lectures' transfer table. Generating it needs no download and no extra package
(a few torch ops on a coordinate grid: about 0.1 s per 1,000 images on one core), and the images are the same on
every machine: the pool is drawn from fixed seeds, and a run's seed only picks its subset from the pool.
"""
from __future__ import annotations

import functools
import math

import torch

CLASSES = ("circle", "square", "triangle", "cross", "star")
SIZE = 32
TRAIN_PER_CLASS = 2000  # the training pool (subsets and the validation split are carved from it)
TEST_PER_CLASS = 200  # 1,000 test images: accuracy to about a percent, and a run's test pass stays short
CHUNK = 500  # images are generated in chunks of this many, each from its own seed: a small subset draws few
RADIUS = (7.0, 13.0)  # a shape's radius in pixels, uniform (from 5 px up, a convnet from scratch learned far less)
_SEED = 20240614  # fixed: the pool is part of the dataset, not of a run


def _distance(kind: int, u: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """A signed distance-like value per pixel (negative inside) of shape CLASSES[kind], in pixels.

    u, v: pixel coordinates in each shape's own rotated frame (N, H, W); s: each shape's radius (N, 1, 1).
    """
    name = CLASSES[kind]
    if name == "circle":
        return torch.sqrt(u * u + v * v) - s
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) - 0.8 * s
    if name == "triangle":  # equilateral: the largest of three half-plane distances
        angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return torch.stack([u * math.cos(a) + v * math.sin(a) for a in angles]).amax(0) - 0.55 * s
    if name == "cross":
        arm = 0.32 * s
        return torch.minimum(torch.maximum(u.abs() - arm, v.abs() - s), torch.maximum(v.abs() - arm, u.abs() - s))
    return torch.sqrt(u * u + v * v) - s * (0.62 + 0.38 * torch.cos(5 * torch.atan2(v, u)))  # a five-pointed star


def draw(labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Images (N, 3, 32, 32) uint8 of the shapes `labels` names (indices into CLASSES), drawn at random from `gen`."""
    n = len(labels)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    s = (RADIUS[0] + (RADIUS[1] - RADIUS[0]) * rand(n)).view(n, 1, 1)
    margin = s.view(n) + 1.0
    cx = (margin + (SIZE - 1 - 2 * margin) * rand(n)).view(n, 1, 1)
    cy = (margin + (SIZE - 1 - 2 * margin) * rand(n)).view(n, 1, 1)
    theta = (2 * math.pi * rand(n)).view(n, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32),
                            indexing="ij")
    dx, dy = xs - cx, ys - cy
    u = dx * torch.cos(theta) + dy * torch.sin(theta)
    v = -dx * torch.sin(theta) + dy * torch.cos(theta)
    d = torch.empty_like(u)
    for k in range(len(CLASSES)):
        i = labels == k
        d[i] = _distance(k, u[i], v[i], s[i])
    outline = (rand(n) < 0.5).view(n, 1, 1)
    width = (0.8 + 1.2 * rand(n)).view(n, 1, 1)
    d = torch.where(outline, d.abs() - width, d)
    mask = torch.sigmoid(-2.5 * d).unsqueeze(1)  # anti-aliased edge, about a pixel wide
    # background: a colour with a linear gradient across the image; foreground: a colour far enough from it
    bg = rand(n, 3, 1, 1)
    angle = 2 * math.pi * rand(n, 1, 1, 1)
    ramp = (torch.cos(angle) * (xs - 15.5) + torch.sin(angle) * (ys - 15.5)) / SIZE  # (N, 1, H, W), in [-0.7, 0.7]
    bg = bg + (0.6 * rand(n, 3, 1, 1) - 0.3) * ramp
    fg = rand(n, 3, 1, 1)
    close = (fg - bg.mean((2, 3), keepdim=True)).abs().amax(1, keepdim=True) < 0.35
    fg = torch.where(close, 1.0 - fg, fg)
    img = bg * (1 - mask) + fg * mask
    img = img + (0.08 * rand(n, 1, 1, 1)) * torch.randn(n, 3, SIZE, SIZE, generator=gen)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


@functools.lru_cache(maxsize=None)
def _chunk(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool's `index`-th chunk of CHUNK images, CHUNK // 5 of each class in a shuffled order, from its own seed."""
    gen = torch.Generator().manual_seed(_SEED + index)
    y = torch.arange(len(CLASSES)).repeat_interleave(CHUNK // len(CLASSES))
    y = y[torch.randperm(len(y), generator=gen)]
    return draw(y, gen), y


def shapes_pool(split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the fixed pool's `split` ("train" or "test"): all of it, or its first `n` images rounded
    up to whole chunks (each chunk is class-balanced, so any prefix of chunks is too); each chunk is generated once
    per process.
    """
    size = (TRAIN_PER_CLASS if split == "train" else TEST_PER_CLASS) * len(CLASSES)
    first = 0 if split == "train" else TRAIN_PER_CLASS * len(CLASSES) // CHUNK  # test chunks follow: none in both
    count = -(-min(size, n if n else size) // CHUNK)
    parts = [_chunk(first + i) for i in range(count)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
