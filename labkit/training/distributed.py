"""Data-parallel training, inside the worker processes torchrun starts: one rank's part of one run.

Data parallelism, as the lectures draw it: copy the model to every worker, split each batch between them,
average the gradients. torch's DistributedDataParallel does the copying (rank 0's weights are broadcast at
the start) and the averaging (an all-reduce during backward); labkit adds the rest of a run:

- every rank loads the same in-memory subset and draws the same permutation and augmentation of each
  global batch (`TrainBatches(..., rank, world)`), then keeps its contiguous shard of `batch_size / world`
  examples: N ranks together compute exactly the gradient one process computes on the whole batch;
- batch norm normalises each rank's shard on its own (no SyncBatchNorm: it does not run on the CPU with
  gloo), which is what ghost batch norm (`model.bn_group`) shows in one process;
- after every step one small all-reduce gives every rank the global batch's loss and accuracy and whether
  any rank was asked to stop, so all ranks take the same decisions (divergence, stop) at the same step;
- rank 0 alone validates, writes the run directory (metrics, probes, best.pt, summary) and runs the
  bookkeeping hooks; its epoch-end decision (early stopping) is broadcast to the others.

The launching side (the `labkit train --nproc N` process, the lab, a notebook) is labkit.training.launch.
Run as `python -m labkit.training.distributed RUN_DIR` by torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
"""
from __future__ import annotations

import datetime
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from .launch import RANK_FILE
from .replicas import Group

# A rank waits this long in a collective for the others before giving up: long enough for rank 0's
# validation and test passes at each epoch's end, short enough that a hung peer does not hold a run forever.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise SystemExit(f"labkit.training.distributed: ${name} is not set; this module runs under torchrun "
                         "(labkit train --nproc N starts it)") from None


def init_group(config: Config) -> Group:
    """Join the process group torchrun set up: NCCL for CUDA, gloo on the CPU; each rank its own GPU."""
    import torch.distributed as dist

    from ..precision import resolve_device

    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank, local_world = _env_int("LOCAL_RANK"), _env_int("LOCAL_WORLD_SIZE")
    device = resolve_device(config.train.device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT, device_id=device if backend == "nccl" else None)
    return Group(rank, world, local_rank, local_world, device, backend)


def write_rank_file(run_dir: Path, rank: int, record: dict[str, Any]) -> None:
    """This rank's end (status, message, traceback), for the launching process to report."""
    from ..runs import write_json_atomic

    try:
        write_json_atomic(run_dir / RANK_FILE.format(rank=rank),
                          {"rank": rank, "pid": os.getpid(), "time": time.time(), **record})
    except OSError:
        pass  # the launcher still learns the exit code from torchrun


def worker(run_dir: Path) -> int:
    """One rank's run: join the group, train its shard, rank 0 writing the run; the exit code torchrun sees."""
    import torch.distributed as dist

    from ..runs import RunWriter
    from .handle import Run
    from .loop import _execute, default_hooks

    config = Config.load(run_dir / "config.json")  # validated by the launching process
    rank = _env_int("RANK")
    try:
        group = init_group(config)
    except Exception as e:
        write_rank_file(run_dir, rank, {"status": "failed", "message": f"could not join the process group: "
                                        f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return 1
    run = Run(config, run_dir)
    # SIGTERM/SIGINT (labkit's stop, Ctrl-C, torchrun shutting the group down) ask for a stop; the ranks agree
    # on it after the next step, so every rank stops at the same one and rank 0 still writes the summary
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: run.stop())
    try:
        subscribers = [RunWriter(run_dir, config)] if group.is_main else []
        hooks = default_hooks(config) if group.is_main else []
        _execute(run, subscribers, hooks, None, group)
        record: dict[str, Any] = {"status": run.status, "message": run.message}
        if run.status == "failed":
            record["traceback"] = run.summary.get("traceback", "")
        write_rank_file(run_dir, rank, record)
        return 1 if run.status == "failed" else 0
    except BaseException as e:  # noqa: BLE001 - whatever ends this rank is reported, then re-raised
        write_rank_file(run_dir, rank, {"status": "failed", "message": f"{type(e).__name__}: {e}",
                                        "traceback": traceback.format_exc()})
        raise
    finally:
        try:
            dist.destroy_process_group()
        except Exception:
            pass


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: torchrun ... -m labkit.training.distributed RUN_DIR")
    sys.exit(worker(Path(sys.argv[1])))
