"""Time to a good model: labkit's default recipe against a hand-written torchvision loop, side by side.

Each run is a fresh process, timed from its command to its final test number (imports, data loading, the
per-epoch validation and the 10,000-image test set included): `labkit train` with the defaults on the
5,000-image CIFAR-10 subset, for several seeds, and `benchmarks/torchvision_loop.py` (a torchvision Dataset +
transforms.v2 + DataLoader loop as a user writes it) on the same subset size, interleaved. Also printed:
labkit's training seconds (the loop's own clock) and its training FLOP/s (FLOPs of one training step counted
with torch.utils.flop_counter, times the steps, over the training seconds) against a 2048x2048 matmul in the
precision training uses (bf16 where the CPU computes it natively), measured in the same run and threads.

Targets (issue 12): >= 70% test accuracy in <= 30 s wall on 2 threads; >= 2.5x faster to 70% than the
hand-written loop; training at >= 60% of the matmul peak of its precision.

    LABKIT_DATA=../shared/data python benchmarks/train_cifar.py --threads 2 --seeds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from labkit import Config  # noqa: E402
from labkit.models import build_model  # noqa: E402
from labkit.precision import autocast, resolve_precision  # noqa: E402


def matmul_gflops(precision: str, n: int = 2048, seconds: float = 2.0) -> float:
    """Dense n x n matmul throughput in `precision` ('bf16' or 'fp32') on the current thread count."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def train_flops_per_step(cfg: Config, precision: str, classes: int = 10) -> int:
    """FLOPs of one training step (forward + backward) of the config's model on one batch."""
    model = build_model(cfg.model, (3, 32, 32), classes, seed=0).to(memory_format=torch.channels_last)
    x = torch.randn(cfg.train.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (cfg.train.batch_size,))
    with FlopCounterMode(display=False) as fc:
        with autocast(precision):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    return fc.get_total_flops()


def run_labkit(seed: int, threads: int, sets: list[str], out: str) -> dict:
    """`labkit train` in a fresh process; its wall clock from the command to the test number, and its summary."""
    cmd = [sys.executable, "-m", "labkit", "train", "--seed", str(seed), "--threads", str(threads),
           "--runs", out, "--quiet", "--set", "probe.every=0"] + [a for s in sets for a in ("--set", s)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"labkit train failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    newest = max(Path(out).iterdir(), key=lambda d: d.stat().st_mtime)
    s = json.loads((newest / "summary.json").read_text())
    return {"test_acc": s["final"]["test_acc"], "train_seconds": s["train_seconds"], "wall": wall,
            "steps": s["steps"], "precision": s.get("precision")}


def run_baseline(seed: int, threads: int, epochs: int) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "torchvision_loop.py"), "--seed", str(seed),
           "--threads", str(threads), "--epochs", str(epochs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the torchvision loop failed:\n{proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]), wall=wall)


def spread(values: list[float], fmt: str) -> str:
    return (f"mean {format(statistics.mean(values), fmt)}, min {format(min(values), fmt)}, "
            f"max {format(max(values), fmt)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--baseline-epochs", type=int, default=18, help="epochs of the hand-written loop")
    ap.add_argument("--no-baseline", action="store_true", help="time labkit only")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a default (tuning)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Config().replace(**{"train.threads": args.threads})
    for item in args.set:
        cfg.set(*item.split("=", 1))
    assert cfg.data.subset == 5000 and cfg.data.dataset == "cifar10"
    precision = resolve_precision(cfg)
    flops = train_flops_per_step(cfg, precision)
    peak = [matmul_gflops(precision)]
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as out:
        run_labkit(0, args.threads, args.set, out)  # warm the page cache and the decoded-array cache once
        for seed in range(args.seeds):
            ours.append(run_labkit(seed, args.threads, args.set, out))
            print(f"labkit  seed {seed}: {json.dumps(ours[-1])}", flush=True)
            if not args.no_baseline:
                theirs.append(run_baseline(seed, args.threads, args.baseline_epochs))
                print(f"by hand seed {seed}: {json.dumps(theirs[-1])}", flush=True)
    peak.append(matmul_gflops(precision))
    acc = [r["test_acc"] for r in ours]
    achieved = [flops * r["steps"] / r["train_seconds"] / 1e9 for r in ours]
    print(f"\nconfig: {', '.join(args.set) or 'Config() defaults'}; precision {precision}; {args.threads} threads; "
          f"torch {torch.__version__}; {args.seeds} seeds")
    print(f"labkit test accuracy   {spread(acc, '.4f')}")
    print(f"labkit wall (command to test number) {spread([r['wall'] for r in ours], '.1f')} s")
    print(f"labkit training        {spread([r['train_seconds'] for r in ours], '.1f')} s; overhead (wall - training) "
          f"{spread([r['wall'] - r['train_seconds'] for r in ours], '.1f')} s")
    print(f"training GFLOP/s       {spread(achieved, '.1f')} ({flops / 1e9:.2f} GFLOP per step); {precision} matmul "
          f"{peak[0]:.0f} before, {peak[1]:.0f} after -> {statistics.mean(achieved) / statistics.mean(peak):.0%} "
          f"of the matmul peak")
    if theirs:
        b_acc = [r["test_acc"] for r in theirs]
        print(f"by hand test accuracy  {spread(b_acc, '.4f')} ({args.baseline_epochs} epochs, fp32)")
        print(f"by hand wall           {spread([r['wall'] for r in theirs], '.1f')} s; training "
              f"{spread([r['train_seconds'] for r in theirs], '.1f')} s")
        ratio = statistics.mean(r["wall"] for r in theirs) / statistics.mean(r["wall"] for r in ours)
        print(f"wall ratio by hand / labkit: {ratio:.2f}x (both reach their accuracy above)")
    ok = min(acc) >= 0.70 and max(r["wall"] for r in ours) <= 30
    print(f"target >= 70% in <= 30 s wall, every seed: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
