"""The lab's live views against the same run headless, side by side in one process (the real widget code path).

1. Throughput: images/s of a CIFAR-10 run started from `Lab.train()` (live
   curves, LR, probe views and progress bar rendering on their thread) against
   `labkit.train(config, background=True)` with no subscribers but the
   run store; runs interleaved headless/lab x repeats; ratio of medians
   (target >= 0.9). Both train on a background thread: alternating torch work
   between the main thread and another one leaves two OpenMP pools competing
   for the cores (measured here: up to 20% slower), which would blur the ratio.
2. Time from pressing Train (`Lab.train()`) to the first curve point drawn
   (PNG in the Image widget): spirals (target <= 2 s) and a 5,000-image
   CIFAR-10 subset with the data already cached in memory (target <= 5 s).
3. Stop latency: steps taken after Stop is pressed (target <= 1) and seconds
   until the run has ended.

    LABKIT_DATA=../shared/data python benchmarks/lab.py [--repeats 3] [--steps 80]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import Config  # noqa: E402
from labkit.training import train  # noqa: E402
from labkit.widgets import Lab  # noqa: E402


def cifar(out: str, steps: int) -> Config:
    return Config().replace(**{"data.subset": 5000, "data.val_size": 500, "model.width": 16, "train.steps": steps,
                               "train.test": False, "train.out": out})


def spirals(out: str) -> Config:
    return Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "train.epochs": 5,
                               "reg.label_smoothing": 0.0, "optim.weight_decay": 0.0, "train.out": out})


def lab_run(lab: Lab, cfg: Config) -> tuple[dict, float | None]:
    lab.controls.set_config(cfg)
    run = lab.train()
    assert run is not None, lab.message.value
    lab.wait(600)
    RENDERS.append((lab.live.renders, lab.live.render_cpu, run.summary.get("train_seconds") or 0.0))
    return run.summary, lab.live.first_point_s


RENDERS: list[tuple[int, float, float]] = []  # (curve redraws, render CPU seconds, training seconds) per lab run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=80, help="steps per throughput run")
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="labkit-bench-lab-")
    lab = Lab(out=out, query="")
    time.sleep(1.0)  # the Lab's warm-up import thread, as a learner's first seconds on the page

    # 2a. spirals, first press (fresh process) and warm presses
    firsts_sp = [lab_run(lab, spirals(out))[1] for _ in range(args.repeats)]
    # load the CIFAR subset once (cache), then interleave headless / lab
    train(cifar(out, 5), background=True).wait()
    head_ips, lab_ips, firsts_c = [], [], []
    for _ in range(args.repeats):
        s = train(cifar(out, args.steps), background=True).wait().summary
        head_ips.append(s["images_per_second"])
        s, first = lab_run(lab, cifar(out, args.steps))
        lab_ips.append(s["images_per_second"])
        firsts_c.append(first)
    ratio = statistics.median(lab_ips) / statistics.median(head_ips)

    # 3. stop latency: press Stop after 20 steps of a long run
    stops = []
    for _ in range(args.repeats):
        lab.controls.set_config(cifar(out, 100000))
        run = lab.train()
        while len(lab.live.steps) < 20 and not run.done:
            time.sleep(0.01)
        n0, t0 = len(lab.live.steps), time.perf_counter()
        lab.stop()
        run.wait(60)
        stops.append((len(lab.live.steps) - n0, time.perf_counter() - t0, run.status))
        lab.live.wait(10)

    print(f"throughput, CIFAR-10 5,000-image subset, width 16, {args.steps} steps, images/s:")
    print(f"  headless: {', '.join(f'{v:.0f}' for v in head_ips)}  (median {statistics.median(head_ips):.0f})")
    print(f"  lab live: {', '.join(f'{v:.0f}' for v in lab_ips)}  (median {statistics.median(lab_ips):.0f})")
    print(f"  ratio lab/headless: {ratio:.3f}  (target >= 0.9)")
    tput = RENDERS[args.repeats:2 * args.repeats]
    print("  lab runs: curve redraws / render CPU s / training s: "
          + "; ".join(f"{n} / {c:.2f} / {t:.1f}" for n, c, t in tput))
    print(f"Train -> first curve point, spirals: {', '.join(f'{v:.2f}' for v in firsts_sp)} s (target <= 2 s; "
          "the first is the process's first run)")
    print(f"Train -> first curve point, CIFAR-10 5,000 cached: {', '.join(f'{v:.2f}' for v in firsts_c)} s "
          "(target <= 5 s)")
    print("Stop: steps after pressing Stop / seconds to the end / status: "
          + "; ".join(f"{n} / {s:.2f} s / {st}" for n, s, st in stops) + " (target: <= 1 step)")


if __name__ == "__main__":
    main()
