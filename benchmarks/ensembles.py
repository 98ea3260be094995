"""Ensembles and weight averaging on the default recipe (Config() defaults, read at run time), 5,000 CIFAR-10 images.

At equal epochs per model, over R replicates (--replicates, 3 by default; replicate r uses seeds 3r, 3r+1, 3r+2):

- single run: the raw weights (best.pt) of each of the 3R independent runs;
- EMA: the same runs' exponential moving average (train.ema 0.999 with the default warm-up power), batch-norm
  statistics recomputed (update_bn); beside it, on the same trajectories (averaging never changes training),
  an EMA whose BN buffers are averaged instead (the other BN choice) and one with warm-up power 0.5;
- SWA: from 75% of the epochs, at half the peak rate (SWALR), averaged at each epoch's end;
- 3-snapshot ensemble: 3 cosine cycles over the same epochs after a one-epoch warmup (the default's own, if it
  has one), the softmax of the 3 snapshots averaged. Without a warmup the first steps at the peak rate blew the
  loss from 3.6 to 14 (old default recipe, seed 0) and the run ended at 30.7%;
- 3-model ensemble: the averaged softmax of replicate r's 3 independent runs (3x the compute of one run);
- 3 models at equal compute: 3 independent runs of a third of the epochs each, ensembled.

Prints one row per method: mean and sample standard deviation (single run and EMAs: over all 3R runs, with the
per-replicate means in the note; the others: over the R replicates), the gain over the single run's mean, and
the training seconds (the loop's clock) per replicate; the single runs carry the three EMAs, so theirs include
the EMAs' updates and update_bn passes, whose cost is printed last.

    LABKIT_DATA=../shared/data python benchmarks/ensembles.py --replicates 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from labkit import Config, list_runs, train  # noqa: E402
from labkit.ensemble import ensemble  # noqa: E402
from labkit.training import EMAHook  # noqa: E402
import labkit.training.averaging as averaging  # noqa: E402


def mean_sd(values: list[float]) -> str:
    """'65.12 ± 0.40' in percent (sample standard deviation; ± 0 for one value)."""
    m = 100 * statistics.fmean(values)
    sd = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.2f} ± {sd:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--figs", metavar="DIR", help="write replicate 0's ensemble and snapshot figures here")
    ap.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    ap.add_argument("--store", metavar="DIR", help="keep the runs here, and reuse those a previous call finished "
                    "(default: a temporary directory)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="override a default (a quick smoke run: --set data.subset=1000 --set train.epochs=3)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = Config()
    for item in args.set:
        base.set(*item.split("=", 1))
    epochs, lr = base.train.epochs, base.optim.lr
    warmup = base.schedule.warmup_epochs or 1.0  # snapshot runs: the cycles start after it
    print(f"defaults: {base.data.dataset} subset {base.data.subset}, {base.model.kind} width {base.model.width} "
          f"depth {base.model.depth}, "
          f"{base.optim.name} lr {lr:g}, {base.schedule.name}, {epochs:g} epochs, batch {base.train.batch_size}; "
          f"{args.threads} threads, torch {torch.__version__}", flush=True)
    bn_time = {"seconds": 0.0, "calls": 0}
    ema_time = {"seconds": 0.0, "calls": 0}
    recompute, update = averaging.recompute_bn, averaging.AveragedWeights.update

    def timed(fn, into):  # the cost of update_bn and of an EMA update, measured where the hooks call them
        def call(*a, **kw):
            t0 = time.perf_counter()
            fn(*a, **kw)
            into["seconds"] += time.perf_counter() - t0
            into["calls"] += 1
        return call

    averaging.recompute_bn = timed(recompute, bn_time)
    averaging.AveragedWeights.update = timed(update, ema_time)
    res: dict[str, list] = {k: [] for k in ("single", "ema", "ema_avg_bn", "ema_p05", "swa", "snapshots", "snap_members", "snap_last", "swa_raw",
                                            "ens3", "ens3_members", "ens3_equal", "ens3_equal_members")}
    secs: dict[str, list[float]] = {k: [] for k in ("single", "swa", "snapshots", "ens3", "ens3_equal")}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.store or tmp
        cfg = base.replace(**{"train.threads": args.threads, "train.out": out, "probe.every": 0,
                              "train.ema": args.ema})
        done = {r.id: r for r in list_runs(out) if r.status == "completed"}

        def run(name: str, c: Config, hooks=()):
            c = c.replace(**{"train.name": name})
            again = next((r for r in done.values() if r.config == c), None)  # --store: a finished run is reused
            if again is not None:
                print(f"  {name}: test {again.summary['final']['test_acc']:.4f} (reused {again.id})", flush=True)
                return again
            t0 = time.perf_counter()
            r = train(c, hooks=list(hooks))
            if r.status != "completed":
                raise SystemExit(f"{name}: {r.status}: {r.message}")
            print(f"  {name}: test {r.summary['final']['test_acc']:.4f} in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            return r

        for rep in range(args.replicates):
            seeds = [3 * rep + k for k in range(3)]
            print(f"replicate {rep} (seeds {seeds})", flush=True)
            members, train_s = [], 0.0
            for s in seeds:
                r = run(f"single-s{s}", cfg.replace(**{"train.seed": s}),
                        hooks=[EMAHook(args.ema, cfg.train.ema_warmup, bn="average", name="ema_avgbn"),
                               EMAHook(args.ema, 0.5, bn="recompute", name="ema_p05")])
                f = r.summary["final"]
                res["single"].append(f["test_acc"])
                res["ema"].append(f["ema_test_acc"])
                res["ema_avg_bn"].append(f["ema_avgbn_test_acc"])
                res["ema_p05"].append(f["ema_p05_test_acc"])
                members.append(r.dir)
                train_s += r.summary["train_seconds"]
                secs["single"].append(r.summary["train_seconds"])
            e = ensemble(members)
            res["ens3"].append(e.acc)
            res["ens3_members"].append(e.mean_acc)
            secs["ens3"].append(train_s)
            plain = cfg.replace(**{"train.seed": seeds[0], "train.ema": 0.0})
            r = run(f"swa-s{seeds[0]}", plain.replace(**{"train.swa_start": 0.75 * epochs, "train.swa_lr": lr / 2}))
            res["swa"].append(r.summary["final"]["swa_test_acc"])
            res["swa_raw"].append(r.summary["final"]["test_acc"])
            secs["swa"].append(r.summary["train_seconds"])
            snap = run(f"snapshots-s{seeds[0]}", plain.replace(**{"train.snapshots": 3,
                                                                  "schedule.warmup_epochs": warmup}))
            sn = snap.summary["snapshots"]
            res["snapshots"].append(sn["ensemble_test_acc"])
            res["snap_members"].append(sn["mean_test_acc"])
            res["snap_last"].append(sn["members"][-1]["test_acc"])
            secs["snapshots"].append(snap.summary["train_seconds"])
            short, short_s = [], 0.0
            for s in seeds:
                r = run(f"third-s{s}", plain.replace(**{"train.seed": s, "train.epochs": epochs / 3}))
                short.append(r.dir)
                short_s += r.summary["train_seconds"]
            e3 = ensemble(short)
            res["ens3_equal"].append(e3.acc)
            res["ens3_equal_members"].append(e3.mean_acc)
            secs["ens3_equal"].append(short_s)
            if rep == 0 and args.figs:
                from labkit import RunLog
                from labkit.plots import averaging_figure, ensemble_figure, snapshot_schedule

                figs = Path(args.figs)
                figs.mkdir(parents=True, exist_ok=True)
                ensemble_figure(e).savefig(figs / "ensemble.png")
                log = RunLog.load(snap.dir)
                averaging_figure(log).savefig(figs / "snapshots_averaging.png")
                snapshot_schedule(log).savefig(figs / "snapshot_schedule.png")
                averaging_figure(RunLog.load(members[0])).savefig(figs / "ema_averaging.png")

    r = args.replicates
    per_rep = {k: [statistics.fmean(v[3 * i:3 * i + 3]) for i in range(r)] for k, v in res.items()
               if k in ("single", "ema", "ema_avg_bn", "ema_p05")}
    single = statistics.fmean(res["single"])

    def paired(key: str) -> str:
        """The per-run difference to the same run's raw weights, in points: mean ± sd."""
        return mean_sd([a - b for a, b in zip(res[key], res["single"])]).replace(" ±", " points ±", 1)

    def row(name: str, values: list[float], note: str, seconds: list[float] | None) -> str:
        gain = 100 * (statistics.fmean(values) - single)
        sec = f"{statistics.median(seconds):.0f}" if seconds else "same runs"
        return f"| {name} | {mean_sd(values)} | {gain:+.2f} | {sec} | {note} |"

    print()
    print("test accuracy (%), 10,000 CIFAR-10 test images, mean ± sd; train s: the loop's clock for one replicate's "
          "model(s), median (the process's first run also pays one-time set-up)")
    print("| method | test acc (%) | vs single | train s | note |")
    print("|---|---|---|---|---|")
    print(row("single run", res["single"], f"{3 * r} runs; per-replicate means {mean_sd(per_rep['single'])}",
              secs["single"]))
    print(row(f"EMA {args.ema:g}, warm-up power {base.train.ema_warmup:g}, BN recomputed", res["ema"],
              f"the same {3 * r} runs' EMA; vs their raw weights {paired('ema')}", None))
    print(row("EMA, BN buffers averaged", res["ema_avg_bn"], f"same runs, the other BN choice; {paired('ema_avg_bn')}",
              None))
    print(row(f"EMA {args.ema:g}, warm-up power 0.5, BN recomputed", res["ema_p05"],
              f"same runs, shorter memory; {paired('ema_p05')}", None))
    print(row(f"SWA from epoch {0.75 * epochs:g}, swa_lr {lr / 2:g}", res["swa"],
              f"seed 3r; the same runs' raw weights {mean_sd(res['swa_raw'])}", secs["swa"]))
    print(row(f"3-snapshot ensemble (warmup {warmup:g} epoch)", res["snapshots"],
              f"snapshots alone: mean {mean_sd(res['snap_members'])}, last {mean_sd(res['snap_last'])}",
              secs["snapshots"]))
    print(row("3-model ensemble (3x compute)", res["ens3"], f"its members alone: {mean_sd(res['ens3_members'])}",
              secs["ens3"]))
    print(row(f"3 models of {epochs / 3:.3g} epochs (equal compute)", res["ens3_equal"],
              f"its members alone: {mean_sd(res['ens3_equal_members'])}", secs["ens3_equal"]))
    plain_s = statistics.median(secs["swa"] + secs["snapshots"])  # runs without the EMAs
    per_bn = bn_time["seconds"] / max(1, bn_time["calls"])
    per_step = ema_time["seconds"] / max(1, ema_time["calls"])
    one_ema = per_bn * epochs + per_step * ema_time["calls"] / max(1, 3 * len(secs["single"]))
    print(f"\ncost of one EMA with BN recomputed, in the runs this call trained: update_bn ({averaging.BN_IMAGES} "
          f"images) {per_bn:.2f} s per epoch, averaging {1000 * per_step:.2f} ms per step; {one_ema:.1f} s a run, "
          f"{100 * one_ema / plain_s:.0f}% of the {plain_s:.0f} training seconds of a run without EMAs")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": res, "seconds": secs, "replicates": r, "bn": bn_time, "ema_updates": ema_time,
                                               "defaults": base.to_dict()}, indent=1))


if __name__ == "__main__":
    main()
