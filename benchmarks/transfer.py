"""Transfer learning measured: a pretrained source against training from scratch on small targets, at equal steps.

The source is labkit.transfer's (the default recipe on CIFAR-10's six animal classes). On each small target
(50 images per class of CIFAR-10's four vehicle classes: similar; of the five generated shapes: different)
three runs of equal steps are scored on the target's test set, for each seed (the seed draws the target's
images and the new head): from scratch, a linear probe (source frozen, new head, the features computed
once) and fine-tuning (new head, the source at a tenth of the rate). Prints mean and spread over the seeds and
the paired gain over scratch, and times `labkit demo transfer` (the four quadrants) with the source trained
fresh, then reused, then with every run reused.

    LABKIT_DATA=../shared/data python benchmarks/transfer.py --threads 2 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from labkit.transfer import DEFAULTS, DEMO_FOLDER, METHODS, cached_train, source_config, target_config  # noqa: E402
from labkit.transfer import transfer_demo  # noqa: E402


def spread(values: list[float]) -> str:
    """mean +- sample standard deviation, in percent."""
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:5.1f} +- {100 * sd:4.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated target seeds (3 or more for a spread)")
    ap.add_argument("--runs", default=None, help="run store to use and keep (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.runs or tmp)
        t0 = time.perf_counter()
        src, cached = cached_train(source_config().replace(**{"train.threads": args.threads}), store)
        t_source = time.perf_counter() - t0 if not cached else None
        print(f"source {src.id}: CIFAR-10 {src.config.data.classes}, {src.config.data.subset} images, "
              f"{src.config.train.epochs:g} epochs, width {src.config.model.width}: test accuracy "
              f"{src.summary['final']['test_acc']:.4f}; "
              + (f"{t_source:.0f} s" if t_source else f"reused (its loop took {src.summary.get('seconds', 0):.0f} s)"))
        demo = transfer_demo(store, threads=args.threads, seed=seeds[0])
        # each run's own wall time (reused runs cost ~0): what the demo takes with the source reused
        trained = [(c["seconds"][m], c["cached"][m]) for c in demo["cells"].values() for m in c["seconds"]]
        t_runs = sum(t for t, hit in trained if not hit)
        t0 = time.perf_counter()
        transfer_demo(store, threads=args.threads, seed=seeds[0])
        t_cached = time.perf_counter() - t0
        fresh = sum(1 for _, hit in trained if not hit)
        print(f"labkit demo transfer: {fresh} of {len(trained)} target runs trained now, in {t_runs:.0f} s"
              + (f" (the source: {t_source:.0f} s more when it is not in the store)" if t_source else "")
              + f"; {t_cached:.1f} s with every run reused ({args.threads} threads)")
        print()
        print("four quadrants (seed %d), test accuracy:" % seeds[0])
        for (size, target), cell in demo["cells"].items():
            accs = ", ".join(f"{m} {a:.3f}" for m, a in cell["accuracy"].items())
            print(f"  {size:>5} ({cell['per_class']}/class, {cell['steps']} steps) x {target:<9}: {accs}")
        print()
        print(f"small targets ({DEFAULTS['small']} images per class, {DEFAULTS['small_steps']} steps each), "
              f"test accuracy over seeds {args.seeds}:")
        print(f"  {'target':<10} {'method':<13} {'mean +- sd (%)':<16} {'gain over scratch (pp)':<24} per seed")
        for target in ("similar", "different"):
            accs: dict[str, list[float]] = {m: [] for m in METHODS}
            for seed in seeds:
                for method in METHODS:
                    cfg = target_config(src, target, DEFAULTS["small"], DEFAULTS["small_steps"], method, seed)
                    run, _ = cached_train(cfg.replace(**{"train.threads": args.threads}), store / DEMO_FOLDER)
                    accs[method].append(run.summary["final"]["test_acc"])
            for method, vals in accs.items():
                gains = [a - b for a, b in zip(vals, accs["scratch"])]
                gain = "" if method == "scratch" else spread(gains).replace("  ", " ")
                print(f"  {target:<10} {method:<13} {spread(vals):<16} {gain:<24} "
                      + " ".join(f"{100 * v:.1f}" for v in vals))
    print(f"torch {torch.__version__}, {args.threads} threads")


if __name__ == "__main__":
    main()
