"""The pre-training checks and the LR range test together, against plain training steps, side by side.

1. `run_checks` on the default recipe (a stratified 5,000-image CIFAR-10
   subset, default ConvNet): initial loss, regularization, overfit 20 images
   (stops at 100%), LR range test (100 steps, 1e-7 -> 10) and its 4 short runs
   that pick the suggestion; seconds per part and in total, and the ratio to
   the 20-s target.
2. The baseline: the same number of optimizer steps at the same batch sizes
   through `labkit.train()` (the LR test's and the short runs' steps at the
   config's batch, the overfit's at batch 20), so the overhead of the checks
   machinery shows.

Each arm runs `--repeats` times, interleaved (checks, train, checks, train...).

    LABKIT_DATA=../shared/data python benchmarks/check.py [--threads 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from labkit import Config, train  # noqa: E402
from labkit.babysit.checks import run_checks  # noqa: E402
from labkit.data import load_data  # noqa: E402

TARGET = 20.0


def timed_checks(cfg: Config) -> tuple[float, dict[str, float], object]:
    """Seconds of run_checks, seconds per part (from its progress calls), and the report."""
    marks: list[tuple[str, float]] = []
    t = time.perf_counter()
    report = run_checks(cfg, progress=lambda s: marks.append((s, time.perf_counter())))
    end = time.perf_counter()
    marks.append(("end", end))
    parts = {name: marks[i + 1][1] - at for i, (name, at) in enumerate(marks[:-1])}
    parts["loading data"] = marks[0][1] - t
    return end - t, parts, report


def timed_train(cfg: Config, steps: int, batch: int) -> float:
    """Wall seconds of labkit.train() for `steps` steps at `batch` (no validation, test or probes)."""
    # no validation split: the baseline is the optimizer steps alone (the training subset is the same)
    c = cfg.replace(**{"train.steps": steps, "train.batch_size": batch, "train.test": False, "probe.every": 0,
                       "data.val_size": 0})
    t = time.perf_counter()
    train(c)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the target is for 2 cores)")
    ap.add_argument("--subset", type=int, default=5000, help="training images")
    ap.add_argument("--repeats", type=int, default=2, help="runs per arm (interleaved)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        cfg = Config().replace(**{"data.subset": args.subset, "train.threads": args.threads, "train.out": out})
        load_data(cfg.data, cfg.train.seed)  # the in-process cache, as `labkit check` would have after its first read
        train(cfg.replace(**{"train.steps": 3, "train.test": False, "probe.every": 0}))  # warm-up: kernels, imports
        totals, trains, parts_all = [], [], []
        report = None
        for _ in range(args.repeats):
            total, parts, report = timed_checks(cfg)
            totals.append(total)
            parts_all.append(parts)
            lr_steps = len(report.lr.lrs) + (1 if report.lr.stopped_early and not report.lr.lrs[-1] == report.lr.stop_lr else 0)
            fit = report.checks[2]
            fit_steps = int(fit.values["steps"])
            short = sum(t["steps"] for t in report.lr.trials)  # the short runs that pick the suggestion
            trains.append(timed_train(cfg, lr_steps + short, cfg.train.batch_size)
                          + timed_train(cfg, max(1, fit_steps), 20))
        best, med = min(totals), statistics.median(totals)
        print(f"default recipe (convnet depth {cfg.model.depth} width {cfg.model.width}, batch {cfg.train.batch_size}), "
              f"{args.subset}-image CIFAR-10 subset, {args.threads} thread(s), {args.repeats} interleaved runs per arm")
        print(report.text())
        print()
        names = list(parts_all[0])
        for n in names:
            vals = [p.get(n, 0.0) for p in parts_all]
            print(f"  {n:<32}: {statistics.median(vals):6.2f} s   runs: {', '.join(f'{v:.2f}' for v in vals)}")
        print(f"  checks + LR test, total         : {med:6.2f} s (best {best:.2f})   runs: "
              f"{', '.join(f'{t:.2f}' for t in totals)}")
        print(f"  ratio to the {TARGET:.0f}-s target (median): {med / TARGET:.2f}  ({'met' if med <= TARGET else 'NOT met'})")
        tm = statistics.median(trains)
        print(f"  baseline, labkit.train() for the same steps ({lr_steps} + {short} x batch {cfg.train.batch_size} + "
              f"{fit_steps} x "
              f"batch 20): {tm:.2f} s   runs: {', '.join(f'{t:.2f}' for t in trains)}")
        print(f"  checks / plain training (medians): {med / tm:.2f}x")


if __name__ == "__main__":
    main()
