"""How close can the default model's convolutions get to the CPU's matmul peak? (issue 12's FLOP/s target)

Times each convolution of the default recipe's model alone (forward + backward, bf16 autocast, channels_last,
the recipe's batch and spatial sizes) and a 2048 x 2048 bf16 matmul, in one run on the same threads, and
prints each layer's GFLOP/s as a fraction of the matmul. The FLOP-weighted fraction over all convolutions is a
ceiling for the whole training step, which also runs batch norm, pooling, ReLU and the optimizer (memory-bound,
no matmul FLOPs): if the convolutions alone cannot reach 60% of the peak, no step built from them can. The same
layers at 4x the width show where the hardware's efficiency comes from (larger GEMMs).

    python benchmarks/conv_ceiling.py --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import Config  # noqa: E402
from labkit.models import build_model  # noqa: E402
from train_cifar import matmul_gflops  # noqa: E402  (benchmarks/ is the script's folder: the same peak measure)


def conv_shapes(cfg: Config, batch: int) -> list[tuple[int, int, int]]:
    """(in channels, out channels, input size) of each 3x3 convolution, traced through the real model."""
    model = build_model(cfg.model, (3, 32, 32), 10, seed=0)
    shapes: list[tuple[int, int, int]] = []
    hooks = [m.register_forward_pre_hook(lambda m, inp: shapes.append((m.in_channels, m.out_channels, inp[0].shape[-1])))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    model(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    return shapes


def conv_seconds(cin: int, cout: int, size: int, batch: int, reps: int) -> float:
    """Seconds of one forward + backward of a 3x3 'same' convolution (bf16 autocast, channels_last)."""
    x = torch.randn(batch, cin, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = F.conv2d(x, w, padding=1)
        y.float().sum().backward()
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Config()
    batch = cfg.train.batch_size
    peak = matmul_gflops("bf16")
    print(f"bf16 matmul 2048^3: {peak:,.0f} GFLOP/s on {args.threads} threads; batch {batch}")
    for scale in (1, 4):
        total_flops = total_s = 0.0
        print(f"\nwidth x{scale}:  conv (in -> out @ size)   GFLOP/s   of peak")
        for i, (cin, cout, size) in enumerate(conv_shapes(cfg, batch)):
            cin_s, cout_s = cin if i == 0 else cin * scale, cout * scale  # the first reads the fixed whitening
            flops = 3 * 2 * batch * size * size * cout_s * cin_s * 9  # forward + input grad + weight grad
            s = conv_seconds(cin_s, cout_s, size, batch, args.reps)
            total_flops, total_s = total_flops + flops, total_s + s
            print(f"          {cin_s:4d} -> {cout_s:4d} @ {size:2d}x{size:<2d}       {flops / s / 1e9:7.0f}   {flops / s / 1e9 / peak:5.0%}")
        print(f"  all convolutions, FLOP-weighted: {total_flops / total_s / 1e9:,.0f} GFLOP/s = "
              f"{total_flops / total_s / 1e9 / peak:.0%} of the matmul peak")


if __name__ == "__main__":
    main()
