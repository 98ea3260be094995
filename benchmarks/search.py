"""Search throughput and overhead, measured side by side in one run.

1. Trials per minute with 2 worker processes (one core and one torch thread each)
   against 1 worker (in-process, all cores), same small trials, same budget.
   Target: >= 1.7x on 2 cores.
2. Overhead of the search machinery per trial: the same trials (the points the
   search sampled) replayed with plain labkit.train(), against the search
   on the journal file store; plus a worker process's start-up cost shared over
   its trials. Target: <= 5% of a 20-second trial (<= 1 s).

    .venv/bin/python benchmarks/search.py [--trials 12] [--points 40000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import Config  # noqa: E402
from labkit.search import Space, run_search, trial_rows  # noqa: E402
from labkit.training import train  # noqa: E402


def base_config(points: int, out: str) -> Config:
    # a small trial: an MLP on a 2-D set, no probes, no test pass; a few seconds on one core
    return Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "model.width": 128,
                               "data.points": points, "train.batch_size": 32, "train.epochs": 2,
                               "reg.label_smoothing": 0.0, "probe.every": 0, "train.test": False,
                               "train.out": out})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--points", type=int, default=40000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labkit-search-bench-"))
    space = Space.parse(["optim.lr=log:1e-3:1e-1", "model.dropout=0:0.3"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; {args.trials} trials per search; trial = spirals MLP-128, {args.points} points, 2 epochs")
    try:
        # warm the data cache and the allocator once, outside the timings
        train(base_config(args.points, str(tmp / "warm")).replace(**{"train.epochs": 0.2}))

        # -- 1. throughput: 1 worker vs 2 worker processes (one core, one torch thread each) ---------------------
        # the 1-worker baseline runs at its best thread count: for trials this small, 1 torch thread beats 2
        b1 = base_config(args.points, str(tmp / "w1")).replace(**{"train.threads": 1})
        t = time.perf_counter()
        s1 = run_search(b1, space, trials=args.trials, workers=1, storage=str(tmp / "w1.journal"), study="w1",
                        out=str(tmp / "w1"))
        one = time.perf_counter() - t
        t = time.perf_counter()
        s2 = run_search(base_config(args.points, str(tmp / "w2")), space, trials=args.trials, workers=2,
                        storage=str(tmp / "w2.journal"), study="w2", out=str(tmp / "w2"))
        two = time.perf_counter() - t
        k = max(2, args.trials // 4)
        t = time.perf_counter()
        run_search(base_config(args.points, str(tmp / "w1all")), space, trials=k, workers=1,
                   storage=str(tmp / "w1all.journal"), study="w1all", out=str(tmp / "w1all"))
        one_all = time.perf_counter() - t
        assert len(s1.trials) == len(s2.trials) == args.trials
        tpm1, tpm2, tpm1a = 60 * args.trials / one, 60 * args.trials / two, 60 * k / one_all
        print(f"1 worker, 1 thread      : {one:6.1f} s, {tpm1:5.1f} trials/min")
        print(f"1 worker, all {cores} threads : {one_all:6.1f} s for {k} trials, {tpm1a:5.1f} trials/min")
        print(f"2 workers, 1 core each  : {two:6.1f} s, {tpm2:5.1f} trials/min (this process is worker 0; incl. starting the other)")
        print(f"speed-up 2 workers vs the best 1-worker setting: {tpm2 / max(tpm1, tpm1a):.2f}x (target >= 1.7x); "
              f"vs 1 worker on all cores: {tpm2 / tpm1a:.2f}x")

        # -- 2. overhead: the 1-worker search's trials replayed with plain train(), same thread count ---------------
        searched = one
        points = [r["params"] for r in trial_rows(s1)]
        t = time.perf_counter()
        for p in points:
            train(space.apply(b1.replace(**{"train.out": str(tmp / "plain")}), p))
        plain = time.perf_counter() - t
        per_trial = (searched - plain) / len(points)
        # a worker process's start: interpreter, torch, optuna, labkit, opening the journal
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, optuna, labkit.search.run as s, labkit.training.loop; "
                        f"s.open_storage({str(tmp / 'w1.journal')!r})"], check=True,
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
        start = time.perf_counter() - t
        trial_s = plain / len(points)
        print(f"plain train(): {plain:6.1f} s for {len(points)} trials ({trial_s:.2f} s each)")
        print(f"search       : {searched:6.1f} s -> overhead {per_trial * 1000:+.0f} ms per trial "
              f"({100 * per_trial / trial_s:+.1f}% of these trials)")
        print(f"worker start : {start:.2f} s once per extra worker process; over {args.trials // 2} trials per worker "
              f"{1000 * start / max(1, args.trials // 2):.0f} ms per trial")
        total = per_trial + start / max(1, args.trials // 2)
        print(f"overhead per trial (storage + process start): {total * 1000:.0f} ms = "
              f"{100 * total / 20:.2f}% of a 20-second trial (target <= 5%)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
