"""`labkit train`: train one network and print where its run went."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from ..data.sets import ensure_available
from ..training import train
from ..training.transfer import check_init_from
from .common import add_config_flags, config_from_args


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network (defaults: the fast CIFAR-10 recipe)",
                       description="Train a network. Every flag maps to a config field; see --help of each.")
    add_config_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    g = p.add_argument_group("several machines (with --nproc: passed to torchrun; run the same command on each)")
    g.add_argument("--nnodes", type=int, default=1, metavar="N", help="machines taking part (default 1)")
    g.add_argument("--node-rank", type=int, default=0, metavar="R",
                   help="this machine's index, 0 to N-1; node 0 writes the run directory (default 0)")
    g.add_argument("--master-addr", default=None, metavar="HOST", help="node 0's address, the same on every machine "
                   "(default: this machine, a free port)")
    g.add_argument("--master-port", type=int, default=None, metavar="PORT", help="a free TCP port on node 0")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    # find (or download) the data before the run directory exists: missing data is a one-line error (exit 2),
    # not a failed run left in the store
    ensure_available(cfg.data)
    check_init_from(cfg)  # --init-from: a missing run or a model that does not fit is one line too
    several = (args.nnodes, args.node_rank, args.master_addr, args.master_port) != (1, 0, None, None)
    if several or cfg.train.nproc > 1:  # data parallel: torchrun in a subprocess, followed through the run's files
        from ..training.launch import launch

        handle = launch(cfg, background=True, progress=not args.quiet, nnodes=args.nnodes,
                        node_rank=args.node_rank, master_addr=args.master_addr, master_port=args.master_port)
        if args.node_rank > 0:
            print(f"node {args.node_rank}: its workers' ends go to {handle.dir}; the run directory is on node 0",
                  file=sys.stderr)
    else:
        handle = train(cfg, background=True, progress=not args.quiet)
    # Ctrl-C (or SIGTERM) stops the run cleanly: status 'stopped', files kept
    def _stop(signum, frame):
        handle.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    while not handle.done:
        handle.wait(0.2)
    s = handle.summary
    if args.json:
        print(json.dumps(s, indent=2, default=str))
    else:
        f = s.get("final", {})
        line = [f"run {handle.id}: {handle.status}"]
        for k in ("train_acc", "val_acc", "test_acc"):
            if f.get(k) is not None:
                line.append(f"{k} {f[k]:.4f}")
        if s.get("train_seconds") is not None:
            line.append(f"{s['train_seconds']:.1f} s training")
        print(", ".join(line))
        averaged = [f"{k.split('_')[0].upper()} test_acc {v:.4f}" for k, v in f.items()
                    if k.endswith("_test_acc") and isinstance(v, float)]  # EMA / SWA beside the raw weights
        snaps = s.get("snapshots") or {}
        if snaps.get("ensemble_test_acc") is not None:
            averaged.append(f"ensemble of {len(snaps.get('members', []))} snapshots test_acc "
                            f"{snaps['ensemble_test_acc']:.4f} (alone: mean {snaps['mean_test_acc']:.4f})")
        if averaged:
            print("averaged: " + ", ".join(averaged))
        if handle.message:
            print(handle.message)
        print(f"files: {handle.dir}")
    return {"completed": 0, "stopped": 130, "diverged": 3}.get(handle.status, 1)
