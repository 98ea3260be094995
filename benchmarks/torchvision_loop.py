"""The baseline a user writes by hand: a torchvision Dataset + transforms.v2 + DataLoader training loop.

No labkit inside: the CIFAR-10 pickles are read the way the official layout's loaders read them (this
machine's copy has other md5 sums than the official archive, so `torchvision.datasets.CIFAR10` would refuse
it), a stratified 5,000-image training subset is drawn, and a plain PyTorch loop trains a 5-conv GELU/BN
network in fp32 with Nesterov SGD, one-cycle and label smoothing; the full 10,000-image test set scores it.

    LABKIT_DATA=../shared/data python benchmarks/torchvision_loop.py --threads 2 --seed 0

Prints one JSON line: test accuracy, training seconds, wall seconds from the start of this script (imports
included) to the test number. `benchmarks/train_cifar.py` runs it beside labkit's recipe.
"""
from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # the usual CIFAR-10 statistics


def read_cifar(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def read(names):
        xs, ys = [], []
        for n in names:
            with open(folder / n, "rb") as f:
                b = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(b["labels"]))
        return np.concatenate(xs), np.concatenate(ys)

    tx, ty = read([f"data_batch_{i}" for i in range(1, 6)])
    vx, vy = read(["test_batch"])
    return tx, ty, vx, vy


class CIFARSubset(Dataset):
    """Images as uint8 CHW tensors through a transforms.v2 pipeline."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = torch.from_numpy(x), torch.from_numpy(y), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def net() -> nn.Module:
    def block(c_in, c_out, pool):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()] + \
            ([nn.MaxPool2d(2)] if pool else [])

    return nn.Sequential(*block(3, 32, False), *block(32, 64, True), *block(64, 128, True), *block(128, 256, True),
                         *block(256, 256, False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--subset", type=int, default=5000)
    ap.add_argument("--data", default=os.environ.get("LABKIT_DATA", "data"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tx, ty, vx, vy = read_cifar(Path(args.data) / "cifar-10-batches-py")
    rng = np.random.default_rng(args.seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(ty == c), args.subset // 10, replace=False) for c in range(10)])
    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    train_tf = v2.Compose([v2.RandomCrop(32, padding=4, padding_mode="reflect"), v2.RandomHorizontalFlip(), *norm])
    train = DataLoader(CIFARSubset(tx[idx], ty[idx], train_tf), batch_size=128, shuffle=True, drop_last=True,
                       num_workers=0)
    test = DataLoader(CIFARSubset(vx, vy, v2.Compose(norm)), batch_size=500)
    model = net().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=args.epochs * len(train))
    t_train = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_seconds = time.perf_counter() - t_train
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((model(x.contiguous(memory_format=torch.channels_last)).argmax(1) == y).sum())
    print(json.dumps({"test_acc": correct / len(vy), "train_seconds": round(train_seconds, 2),
                      "wall": round(time.perf_counter() - T0, 2), "epochs": args.epochs, "seed": args.seed}))


if __name__ == "__main__":
    main()
