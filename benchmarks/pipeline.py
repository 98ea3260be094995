"""Our in-memory TrainBatches pipeline vs a torchvision Dataset + transforms.v2 + DataLoader doing the same work.

Two torchvision baselines: the same uint8 tensors one image at a time (the strongest per-image pipeline), and
PIL images as torchvision.datasets.CIFAR10 serves them (`Image.fromarray` of an HWC array per item, the usual
`transforms.v2` recipe starting from PIL: what a learner following torchvision's tutorials runs).
Same augmentation on every side: random horizontal flip, reflect-pad-4 random crop, 8x8 cutout (v2.RandomErasing
with a fixed square, value 0 after normalization), normalize, and per batch one of MixUp/CutMix (alpha 1.0) with
soft targets. Measured side by side in one process, same torch thread count for both:
images/s of the data alone for one epoch, and of one end-to-end training epoch with the reference ConvNet
(the default ModelConfig), with the DataLoader at num_workers=0 and num_workers=1.

    LABKIT_DATA=../shared/data python benchmarks/pipeline.py --subset 5000 --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from labkit.config import Config, DataConfig, ModelConfig, OptimConfig, RegConfig
from labkit.data import load_data
from labkit.models import build_model
from labkit.optimizers import build_optimizer
from labkit.data.pipeline import TrainBatches
from labkit.precision import autocast, resolve_precision

PRECISION = resolve_precision(Config())
REG = RegConfig(flip=True, crop=4, cutout=8, mixup=1.0, cutmix=1.0, label_smoothing=0.0)


class CifarTensors(Dataset):
    """The same uint8 images, one at a time, through per-image transforms.v2."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        self.x, self.y = x, y
        self.tf = v2.Compose([
            v2.RandomHorizontalFlip(),
            v2.RandomCrop(32, padding=4, padding_mode="reflect"),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean.tolist(), std.tolist()),
            v2.RandomErasing(p=1.0, scale=(64 / 1024, 64 / 1024), ratio=(1.0, 1.0), value=0),
        ])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.tf(self.x[i]), int(self.y[i])


class CifarPIL(Dataset):
    """What torchvision.datasets.CIFAR10 does per item (HWC uint8 array -> PIL image), then v2 from PIL.

    (torchvision's CIFAR10 class itself md5-checks the archive's files on construction, which a re-packed local
    copy fails; its __getitem__ is exactly this.)
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        self.data = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
        self.targets = y.tolist()
        self.transform = v2.Compose([
            v2.RandomHorizontalFlip(),
            v2.RandomCrop(32, padding=4, padding_mode="reflect"),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean.tolist(), std.tolist()),
            v2.RandomErasing(p=1.0, scale=(64 / 1024, 64 / 1024), ratio=(1.0, 1.0), value=0),
        ])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def torchvision_loader(data, batch_size: int, workers: int, dataset: type = CifarTensors) -> DataLoader:
    """The reference pipeline: Dataset + v2 per image, DataLoader batching, MixUp/CutMix per batch."""
    mix = v2.RandomChoice([v2.MixUp(alpha=1.0, num_classes=data.num_classes),
                           v2.CutMix(alpha=1.0, num_classes=data.num_classes)])

    def collate(batch):
        x, y = torch.utils.data.default_collate(batch)
        return mix(x, y)

    return DataLoader(dataset(data.train_x, data.train_y, data.mean, data.std), batch_size=batch_size,
                      shuffle=True, drop_last=True, num_workers=workers, collate_fn=collate,
                      persistent_workers=False)


def ours(data, batch_size: int):
    tb = TrainBatches(data, REG, batch_size, seed=0)
    for x, t, _ in tb.epoch():
        yield x, t


def theirs(data, batch_size: int, workers: int, dataset: type = CifarTensors):
    for x, t in torchvision_loader(data, batch_size, workers, dataset):
        yield x.contiguous(memory_format=torch.channels_last), t


def data_only(batches) -> float:
    t0, n = time.perf_counter(), 0
    for x, _ in batches:
        n += len(x)
    return n / (time.perf_counter() - t0)


def end_to_end(batches, data) -> float:
    model = build_model(ModelConfig(), data.input_shape, data.num_classes, seed=0).to(memory_format=torch.channels_last)
    opt = build_optimizer(model, OptimConfig())
    model.train()
    t0, n = time.perf_counter(), 0
    for x, t in batches:
        with autocast(PRECISION):  # the precision the default recipe trains in on this machine
            loss = F.cross_entropy(model(x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=5000)
    ap.add_argument("--e2e-subset", type=int, default=2000, help="images in the end-to-end epoch (keeps it short)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2: what training uses here)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(DataConfig(subset=args.subset, val_size=1000), 0)
    small = load_data(DataConfig(subset=args.e2e_subset, val_size=1000), 0)
    bs = args.batch_size
    print(f"torch {torch.__version__}, {args.threads} thread(s), {PRECISION}, batch {bs}; data-only epoch of {args.subset} images, "
          f"end-to-end epoch of {args.e2e_subset} images (ConvNet width {ModelConfig().width}, depth {ModelConfig().depth})")
    data_only(ours(data, bs))  # warm caches once
    rows = {}
    for name, ds in (("tensors", CifarTensors), ("PIL", CifarPIL)):
        for workers in (0, 1):
            rows[f"data-only, {name}, workers={workers}"] = (data_only(ours(data, bs)),
                                                             data_only(theirs(data, bs, workers, ds)))
    for name, ds in (("tensors", CifarTensors), ("PIL", CifarPIL)):
        for workers in (0, 1):
            rows[f"end-to-end, {name}, workers={workers}"] = (end_to_end(ours(small, bs), small),
                                                              end_to_end(theirs(small, bs, workers, ds), small))
    print(f"{'':36s}{'labkit img/s':>14s}{'torchvision img/s':>19s}{'ratio':>8s}")
    for k, (a, b) in rows.items():
        print(f"{k:36s}{a:14.0f}{b:19.0f}{a / b:7.2f}x")
    print("targets: >= 10x data-only, >= 1.3x end-to-end (workers=1 gives the DataLoader a second process "
          "beside the training thread(s), so it is not the same CPU budget)")


if __name__ == "__main__":
    main()
