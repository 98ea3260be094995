"""The LR range test's suggestion, trained with, against each config's tuned rate, side by side.

For each config and seed: `lr_range_test` (100 steps, 1e-7 -> 10) with its short confirming runs picks the
suggestion; the curve's own reading (the floor's end / 2, what `confirm=0` gives) is shown beside it. Then the
whole run trains at the suggestion and at the config's tuned rate (measured by grids in benchmarks/RESULTS.md,
"LR range test"), and the script prints the ratio suggestion / tuned rate and the accuracy difference (test
accuracy of the best checkpoint: 10,000 CIFAR test images, or the 2-D set's test split).

Configs (the three the suggestion was tuned against, plus none other):
  recipe   the default recipe (convnet, one-cycle, 11 epochs): tuned 0.5 (0.3-0.7 one plateau)
  spirals  a 3 x 32 MLP with batch norm on 2-D spirals, 4 epochs: tuned 0.3
  adam     a 2 x 256 MLP on CIFAR without normalization, Adam, 8 epochs: tuned 1e-3

Jobs run in `--jobs` processes of `--threads` torch threads each (2 x 1 on a 2-core machine).

    LABKIT_DATA=../shared/data python benchmarks/lr_suggestion.py [--configs recipe,spirals,adam] [--seeds 0,1,2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "recipe": ({}, 0.5),
    "spirals": ({"data.dataset": "spirals", "model.kind": "mlp", "model.width": 32, "model.depth": 3,
                 "data.noise": 0.1, "train.epochs": 4}, 0.3),
    "adam": ({"model.kind": "mlp", "model.width": 256, "model.depth": 2, "model.norm": "none",
              "optim.name": "adam", "optim.weight_decay": 0.0, "train.epochs": 8}, 1e-3),
}


def one(name: str, seed: int, threads: int) -> dict:
    """The LR test with its short runs on one config and seed; the run trained at the suggestion and the tuned rate."""
    from labkit import Config, train
    from labkit.babysit.lr_finder import lr_range_test

    over, tuned = CONFIGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config().replace(**over, **{"train.threads": threads, "train.seed": seed, "probe.every": 0,
                                          "train.out": tmp})
        t = time.perf_counter()
        r = lr_range_test(cfg)
        seconds = time.perf_counter() - t
        s = r.suggestion()
        acc = {}
        for lr in ([float(f"{s:.3g}")] if s is not None else []) + [tuned]:
            final = train(cfg.replace(**{"optim.lr": lr})).summary["final"]
            acc[lr] = final.get("test_acc", final.get("val_acc"))
    return {"config": name, "seed": seed, "edge": r.edge_lr, "curve_reading": r.edge_lr / 2 if r.edge_lr else None,
            "suggestion": s, "tuned": tuned, "trials": r.trials, "test_seconds": round(seconds, 1),
            "acc_suggestion": acc.get(float(f"{s:.3g}")) if s is not None else None, "acc_tuned": acc[tuned],
            "why_none": r.why_none}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="recipe,spirals,adam", help="comma-separated: recipe, spirals, adam")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job")
    ap.add_argument("--jobs", type=int, default=2, help="jobs at once (jobs x threads <= cores)")
    ap.add_argument("--one", nargs=2, metavar=("CONFIG", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.threads)))
        return
    names = [c for c in args.configs.split(",") if c]
    bad = [c for c in names if c not in CONFIGS]
    if bad:
        ap.error(f"unknown config(s) {bad}; choose from {', '.join(CONFIGS)}")
    jobs = [(c, int(s)) for c in names for s in args.seeds.split(",")]

    def run(job: tuple[str, int]) -> dict:
        out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--one", job[0], str(job[1])],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, jobs))
    print(f"{'config':8} {'seed':>4} {'edge':>8} {'edge/2':>8} {'suggested':>9} {'tuned':>7} {'ratio':>6} "
          f"{'acc sugg':>8} {'acc tuned':>9} {'diff':>6} {'LR test s':>9}")
    for r in rows:
        if r["suggestion"] is None:
            print(f"{r['config']:8} {r['seed']:>4} no suggestion: {r['why_none']}")
            continue
        ratio = max(r["suggestion"] / r["tuned"], r["tuned"] / r["suggestion"])
        print(f"{r['config']:8} {r['seed']:>4} {r['edge']:>8.3g} {r['curve_reading']:>8.3g} {r['suggestion']:>9.3g} "
              f"{r['tuned']:>7.3g} {ratio:>5.2f}x {r['acc_suggestion']:>8.4f} {r['acc_tuned']:>9.4f} "
              f"{100 * (r['acc_suggestion'] - r['acc_tuned']):>+6.2f} {r['test_seconds']:>9.1f}")
    worst = max(max(r["suggestion"] / r["tuned"], r["tuned"] / r["suggestion"]) for r in rows if r["suggestion"])
    print(f"worst ratio to the tuned rate: {worst:.2f}x (target: within 3x); {time.perf_counter() - t0:.0f} s wall")
    for r in rows:
        print(json.dumps({k: r[k] for k in ("config", "seed", "trials")}))


if __name__ == "__main__":
    main()
