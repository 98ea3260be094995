"""`labkit data`: where data is looked for, what is there, and download when online."""
from __future__ import annotations

import argparse

from ..data.sets import CIFAR, data_dirs, describe, download_cifar


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="show where data is looked for and what is there; --download fetches CIFAR")
    p.add_argument("--root", help="data directory to check first (also where --download writes)")
    p.add_argument("--download", nargs="*", metavar="DATASET", choices=list(CIFAR),
                   help=f"download these datasets ({', '.join(CIFAR)}; default: cifar10) if missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("data directories, in the order searched:")
    for i, d in enumerate(data_dirs(args.root), 1):
        print(f"  {i}. {d}")
    rows = describe(args.root)
    if args.download is not None:
        for name in args.download or ["cifar10"]:
            if any(r["dataset"] == name and r["status"] == "complete" for r in rows):
                print(f"{name}: already present")
                continue
            target = data_dirs(args.root)[0]
            print(f"{name}: downloading into {target} ...")
            print(f"{name}: ready at {download_cifar(name, target)}")
        rows = describe(args.root)
    print("datasets:")
    for r in rows:
        print(f"  {r['dataset']:9s} {r['status']:10s} {r['path']}")
    print("2-D sets (spirals, circles, xor, blobs) are generated and need no files;")
    print("your own images: labkit train --data folder --folder DIR (one sub-folder per class)")
    return 0
