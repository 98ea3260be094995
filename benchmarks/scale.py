"""Training at scale, measured on this machine: processes vs threads, large batches, per-replica batch norm.

1. Throughput: the same CIFAR-10 run as 1 process x 1 thread, 1 process x 2 threads and 2 processes x 1 thread
   (`--nproc 2`: torchrun, gloo, DistributedDataParallel). Training images per second from each run's summary
   (the loop alone), and the wall time of the whole call (with the processes' start-up for --nproc 2).
2. Large batches: labkit.demos.large_batch_demo (`labkit demo large-batch`): batch 128 vs 1,024 at equal epochs,
   the large one at the same rate, with the linear scaling rule, and with the rule plus warmup.
3. Per-replica batch norm: ghost batch norm (`--bn-group N`) at a global batch of 128, each N-image chunk
   normalised on its own as replicas of N images each would; and the same with each batch sorted by class
   (`--batch-order class`), so that each chunk sees a few classes.

    LABKIT_DATA=../shared/data python benchmarks/scale.py --parts throughput,large-batch,ghost-bn
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from labkit import Config  # noqa: E402
from labkit.demos import large_batch_demo, large_batch_rows  # noqa: E402
from labkit.training import train  # noqa: E402


def throughput(store: Path, subset: int, epochs: float, batch: int) -> None:
    base = Config().replace(**{"data.subset": subset, "data.val_size": 500, "train.epochs": epochs,
                               "train.batch_size": batch, "probe.every": 0, "train.test": False, "train.out": str(store)})
    print(f"\n### Throughput: CIFAR-10, {subset} images, {epochs:g} epochs, batch {batch}, the recipe's convnet\n")
    print("| processes x threads | train images/s | training s | wall s (whole call) | val acc |")
    print("|---|---|---|---|---|")
    for nproc, threads in ((1, 1), (1, 2), (2, 2)):
        t0 = time.perf_counter()
        run = train(base.replace(**{"train.nproc": nproc, "train.threads": threads}))
        wall = time.perf_counter() - t0
        s = run.summary
        per = max(1, threads // nproc)
        print(f"| {nproc} x {per} | {s.get('images_per_second')} | {s.get('train_seconds')} | {wall:.1f} | "
              f"{s['final'].get('val_acc'):.3f} |", flush=True)


def large_batch(store: Path, subset: int, epochs: float, threads: int) -> None:
    r = large_batch_demo(str(store), subset=subset, epochs=epochs, threads=threads,
                         progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    print(f"\n### Large batches: CIFAR-10, {r['subset']} images, {r['epochs']:g} epochs each, cosine, recipe convnet\n")
    print("```")
    print("\n".join(large_batch_rows(r)))
    print("```")
    print(f"{r['seconds']:.0f} s; training seconds per run: " + ", ".join(f"{a['seconds']}" for a in r["arms"]))


def ghost_bn(store: Path, subset: int, epochs: float, threads: int) -> None:
    base = Config().replace(**{"data.subset": subset, "data.val_size": 1000, "train.epochs": epochs,
                               "train.batch_size": 128, "probe.every": 0, "train.tta": False,
                               "train.threads": threads, "train.out": str(store)})
    print(f"\n### Per-replica batch norm: CIFAR-10, {subset} images, {epochs:g} epochs, global batch 128\n")
    print("| per-replica batch (--bn-group) | order in the batch | classes per chunk (mean) | val acc | test acc |")
    print("|---|---|---|---|---|")
    for group, order in ((0, "random"), (32, "random"), (8, "random"), (2, "random"), (32, "class"),
                         (8, "class")):
        run = train(base.replace(**{"model.bn_group": group, "train.batch_order": order}))
        f = run.summary["final"]
        n = group or 128
        print(f"| {n}{' (plain BN)' if not group else ''} | {order} | {_classes_per_chunk(run, n, order):.1f} | "
              f"{f['val_acc']:.3f} | {f.get('test_acc', float('nan')):.3f} |", flush=True)


def _classes_per_chunk(run, n: int, order: str) -> float:
    """Distinct labels in an n-image chunk of the run's first epoch, averaged (what each replica's BN sees)."""
    from labkit.data.pipeline import TrainBatches

    data = run.data
    counts = []
    for _, _, y in TrainBatches(data, run.config.reg, 128, run.config.train.seed + 1, order=order).epoch():
        counts += [len(c.unique()) for c in y.split(n)]
    return sum(counts) / len(counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="throughput,large-batch,ghost-bn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--subset", type=int, default=5000, help="images of the throughput and ghost-BN runs")
    ap.add_argument("--epochs", type=float, default=8.0, help="epochs of the ghost-BN runs")
    ap.add_argument("--lb-subset", type=int, default=10240, help="images of the large-batch runs")
    ap.add_argument("--lb-epochs", type=float, default=8.0, help="epochs of the large-batch runs")
    ap.add_argument("--runs", default=None, help="run store to use and keep (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA: {torch.cuda.is_available()}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.runs or tmp)
        if "throughput" in parts:
            throughput(store / "throughput", min(args.subset, 2048), 2.0, 128)
        if "large-batch" in parts:
            large_batch(store, args.lb_subset, args.lb_epochs, args.threads)
        if "ghost-bn" in parts:
            ghost_bn(store / "ghost-bn", args.subset, args.epochs, args.threads)


if __name__ == "__main__":
    main()
