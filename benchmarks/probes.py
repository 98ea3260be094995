"""Probe overhead and figure rendering time, measured side by side in one process.

1. Step time of the same CIFAR-10 run with probes at the default interval
   against probes off (runs interleaved off/on/off/on..., same seed and data),
   reported as the ratio of median seconds per training step (target <= 1.05).
2. Time to build and save as PNG every figure of a 10-epoch run
   (what `labkit plot RUN_DIR` does; target <= 3 s), cold (first in the
   process) and warm.

    LABKIT_DATA=../shared/data python benchmarks/probes.py [--steps 100] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import Config, train  # noqa: E402
from labkit.config import ProbeConfig  # noqa: E402
from labkit.training.probes import Probes
from labkit.probe_history import read_probes  # noqa: E402


class TimedProbes(Probes):
    """The probes train() inserts, with the seconds spent in their hooks added up."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.seconds = 0.0

    def _timed(name):  # noqa: N805 - a decorator factory used in the class body
        def method(self, ctx):
            t = time.perf_counter()
            getattr(Probes, name)(self, ctx)
            self.seconds += time.perf_counter() - t
        return method

    before_step, after_backward, after_step = _timed("before_step"), _timed("after_backward"), _timed("after_step")


def step_seconds(cfg: Config, every: int = 0) -> tuple[float, int, float]:
    """Seconds per training step of one run (training loop only: validation excluded), snapshots, probe share.

    With every > 0 the run has the same Probes hook train() would insert (first in
    line), timed, so the share of training time spent probing is measured inside
    the run as well, free of the machine's run-to-run noise.
    """
    hook = TimedProbes(ProbeConfig(every=every, batch=cfg.probe.batch, bins=cfg.probe.bins)) if every else None
    run = train(cfg.replace(**{"probe.every": 0}), hooks=[hook] if hook else [])
    secs = run.summary["train_seconds"]
    return secs / run.summary["steps"], len(read_probes(run.dir)), (hook.seconds / secs if hook else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per arm (interleaved)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--subset", type=int, default=2000, help="training images for the overhead runs")
    ap.add_argument("--render-subset", type=int, default=5000, help="training images of the 10-epoch run")
    ap.add_argument("--render-width", type=int, default=16, help="convnet width of the 10-epoch run")
    args = ap.parse_args()
    every = Config().probe.every
    with tempfile.TemporaryDirectory() as out:
        base = Config().replace(**{"data.subset": args.subset, "data.val_size": 200, "train.steps": args.steps,
                                   "train.threads": args.threads, "train.test": False, "train.out": out})
        step_seconds(base.replace(**{"train.steps": 5}), every)  # warm-up: data cache, kernels
        times: dict[int, list[float]] = {0: [], every: []}
        snaps, shares = 0, []
        for _ in range(args.repeats):
            for e in (0, every):
                s, n, share = step_seconds(base, e)
                times[e].append(s)
                if e:
                    snaps = n
                    shares.append(share)
        off, on = statistics.median(times[0]), statistics.median(times[every])
        print(f"default recipe (convnet width {base.model.width}, batch {base.train.batch_size}), "
              f"{args.steps} steps, {args.threads} thread(s), {args.repeats} interleaved runs per arm")
        print(f"  probes off        : {off * 1000:7.1f} ms/step   runs: {', '.join(f'{t * 1000:.1f}' for t in times[0])}")
        print(f"  probes every {every:<4} : {on * 1000:7.1f} ms/step   runs: {', '.join(f'{t * 1000:.1f}' for t in times[every])}"
              f"   ({snaps} snapshots per run)")
        print(f"  overhead ratio on/off (medians): {on / off:.3f}, (best runs): {min(times[every]) / min(times[0]):.3f}"
              f"  (target <= 1.05)")
        print(f"  time inside the probe hooks: {statistics.median(shares):.1%} of training time "
              f"(runs: {', '.join(f'{s:.1%}' for s in shares)}); {snaps} snapshots in {args.steps} steps include "
              f"the first and last step, so a long run probes {1 / every:.1%} of its steps instead of {snaps / args.steps:.1%}")

        cfg = Config().replace(**{"data.subset": args.render_subset, "data.val_size": 500, "train.epochs": 10,
                                  "model.width": args.render_width, "train.threads": args.threads,
                                  "train.test": False, "train.out": out})
        t = time.perf_counter()
        run = train(cfg)
        train_s = time.perf_counter() - t
        hist = read_probes(run.dir)
        from labkit.cli.plot import save_figures
        from labkit.plots import run_figures

        renders = []
        for i in range(3):
            t = time.perf_counter()
            paths = save_figures(run_figures(run.dir), Path(out) / f"png{i}")
            renders.append(time.perf_counter() - t)
        print(f"10-epoch run: {run.summary['steps']} steps in {train_s:.0f} s, {len(hist)} probe snapshots of "
              f"{len(hist.layers)} layers, probes.jsonl {(run.dir / 'probes.jsonl').stat().st_size / 1024:.0f} KiB, "
              f"metrics.jsonl {(run.dir / 'metrics.jsonl').stat().st_size / 1024:.0f} KiB")
        print(f"  render all {len(paths)} figures to PNG: cold {renders[0]:.2f} s, warm {min(renders[1:]):.2f} s"
              f"  (target <= 3 s)")


if __name__ == "__main__":
    main()
