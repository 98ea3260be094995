"""The in-memory training pipeline: seeded shuffling and whole-batch augmentation.

Order per batch: uint8 flip and crop (one gather), then normalize to float, then cutout
(zero = the mean pixel after normalization), then mixup or cutmix (when both
are on, one of the two per batch, with equal odds, as timm and torchvision do).

Data parallel: every rank draws the same permutation and the same augmentation of each global batch from
the same seed, and keeps its own contiguous shard of it. So N ranks together see exactly the batch one
process would (mixup partners included), and their averaged gradients are that process's gradient.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from . import augment
from ..config import RegConfig
from .sets import Data


class TrainBatches:
    """Yields (inputs, soft targets, hard labels) for each step of an epoch; drops the last short batch."""

    def __init__(self, data: Data, reg: RegConfig, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 order: str = "random"):
        if not 0 <= rank < world or batch_size % world:
            raise ValueError(f"rank {rank} of {world} cannot take an equal shard of batches of {batch_size}")
        self.data, self.reg, self.batch_size = data, reg, batch_size  # batch_size: the global batch
        self.rank, self.world, self.by_class = rank, world, order == "class"
        self.gen = torch.Generator().manual_seed(seed)
        self.images = data.kind == "image"

    def __len__(self) -> int:
        return max(1, len(self.data.train_y) // self.batch_size)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One augmented batch of the training examples at `idx`."""
        x, y = self.data.train_x[idx], self.data.train_y[idx]
        r, g = self.reg, self.gen
        if self.images:
            x = augment.flip_crop(x, r.flip, r.crop, g)
        x = self.data.to_input(x)
        if self.images:
            x = augment.cutout(x, r.cutout, g)
        target = F.one_hot(y, self.data.num_classes).float()
        use_mix, use_cut = r.mixup > 0, r.cutmix > 0 and self.images
        if use_mix and use_cut:
            use_mix = bool(torch.rand(1, generator=g) < 0.5)
            use_cut = not use_mix
        if use_mix:
            x, target = augment.mixup(x, target, augment.sample_lambda(r.mixup, g))
        elif use_cut:
            x, target, _ = augment.cutmix(x, target, augment.sample_lambda(r.cutmix, g), g)
        return x, target, y

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches of one pass over the shuffled training set."""
        n = len(self.data.train_y)
        bs = min(self.batch_size, n)
        perm = torch.randperm(n, generator=self.gen)
        per = bs // self.world
        mine = slice(self.rank * per, (self.rank + 1) * per)
        for i in range(len(self)):
            idx = perm[i * bs:(i + 1) * bs].to(self.data.train_x.device)
            if self.by_class:  # the same examples, grouped by label: each shard / BN group holds a few classes
                idx = idx[torch.sort(self.data.train_y[idx], stable=True).indices]
            if self.world == 1:
                yield self.batch(idx)
            else:  # the whole batch's augmentation (same draws on every rank), then this rank's shard
                x, target, y = self.batch(idx)
                yield x[mine], target[mine], y[mine]


def eval_batches(data: Data, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalized (inputs, labels) batches of the val or test split, in order, without augmentation."""
    x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    for i in range(0, len(y), batch_size):
        yield data.to_input(x[i:i + batch_size]), y[i:i + batch_size]
