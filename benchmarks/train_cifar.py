"""The default recipe (Config() defaults) on a stratified 5,000-image CIFAR-10 subset, scored on the 10,000-image test set.

Prints test accuracy, training seconds (the loop's own clock, validation excluded), and the achieved GFLOP/s of
training (FLOPs of one forward+backward batch counted with torch.utils.flop_counter.FlopCounterMode, times the
steps, over the training seconds) against a dense float32 matmul's GFLOP/s measured in the same run and threads.
Targets: >= 65% test accuracy in <= 45 s of training on 2 threads.

    LABKIT_DATA=../shared/data python benchmarks/train_cifar.py --threads 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from labkit import Config, train  # noqa: E402
from labkit.models import build_model  # noqa: E402


def matmul_gflops(n: int = 2048, seconds: float = 2.0) -> float:
    """Dense float32 matmul throughput on the current thread count (the machine's practical peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def train_flops_per_step(cfg: Config, classes: int = 10) -> int:
    """FLOPs of one training step (forward + backward) of the config's model on one batch."""
    model = build_model(cfg.model, (3, 32, 32), classes, seed=0).to(memory_format=torch.channels_last)
    x = torch.randn(cfg.train.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (cfg.train.batch_size,))
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    return fc.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a default (for tuning)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        cfg = Config().replace(**{"train.threads": args.threads, "train.out": out, "probe.every": 0})
        for item in args.set:
            k, v = item.split("=", 1)
            cfg.set(k, v)
        assert cfg.data.subset == 5000 and cfg.data.dataset == "cifar10"
        mm = matmul_gflops()
        flops = train_flops_per_step(cfg)
        t0 = time.perf_counter()
        run = train(cfg)
        wall = time.perf_counter() - t0
        s = run.summary
        achieved = flops * s["steps"] / s["train_seconds"] / 1e9
        mm_after = matmul_gflops()
    f = s["final"]
    print(f"config: {', '.join(args.set) or 'Config() defaults'}; precision {s.get('precision')}; {args.threads} threads; torch {torch.__version__}")
    print(f"test accuracy        {f['test_acc']:.4f} on {len(run.data.test_y)} test images (val {f['val_acc']:.4f})")
    print(f"training seconds     {s['train_seconds']:.1f} ({s['steps']} steps, {s['images_per_second']:.0f} img/s); "
          f"wall incl. data, validation and test {wall:.1f}")
    print(f"training GFLOP/s     {achieved:.1f} ({flops / 1e9:.2f} GFLOP per step)")
    print(f"matmul GFLOP/s       {mm:.1f} before, {mm_after:.1f} after -> training at "
          f"{achieved / ((mm + mm_after) / 2):.0%} of matmul")
    ok = f["test_acc"] >= 0.65 and s["train_seconds"] <= 45
    print(f"target >= 65% in <= 45 s: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
