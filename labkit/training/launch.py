"""Starting a data-parallel run: torchrun in a subprocess, its workers followed through the run's files.

`train(config)` with `train.nproc` > 1 (or `labkit train --nproc N`) comes here. The run directory is made
in this process; a subprocess runs torchrun (torch.distributed.run's own argument parser and launcher, gloo
on the CPU and NCCL on GPUs), which starts N workers of labkit.training.distributed. Rank 0 writes the run
as any run is written; this process reads its metrics.jsonl and probes.jsonl as they grow and hands the
events to the callbacks (the progress bar, the lab's live views, a search's pruner), so a launched run looks
like an in-process one from outside. Notebooks and the lab launch the same way: `mp.spawn` cannot start
workers from a notebook's `__main__`, a subprocess can.

Endings: each worker writes rank{R}.json (its status, message and traceback) and the launcher writes
launch.json (torchrun's record of the workers that failed: exit code, signal, pid). A worker killed from
outside (kill -9, out of memory) writes nothing, the others lose their peer in the next all-reduce, and
torchrun stops them; the run then ends `failed`, with a message naming the killed rank, its signal and the
step, and the files written so far are kept. `run.stop()` (Ctrl-C, the lab's Stop) sends SIGTERM to the
launcher, which passes it to the workers; they agree to stop after the next step, as a single process does.

Several machines: every machine runs the same command with `nnodes`, its own `node_rank`, and node 0's
`master_addr` / `master_port`; the run directory is written on node 0 (global rank 0), the other nodes keep
their workers' rank files in a temporary directory they print.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..config import Config
from ..errors import LabkitError
from ..events import Callback, EndEvent, EpochEvent, Event, ProbeEvent, StartEvent, StepEvent
from ..runs import PROBE_FILE, new_run_dir, read_metrics, write_json_atomic
from .handle import Run
from .replicas import default_threads

RANK_FILE = "rank{rank}.json"  # each worker's end: status, message, traceback (labkit.training.distributed writes it)
LAUNCH_FILE = "launch.json"  # the launcher's record: exit code, torchrun's failures, a signal it was ended by
LOG_FILE = "launch.log"  # torchrun's and the workers' stdout and stderr
POLL_SECONDS = 0.2
FINAL = ("completed", "stopped", "diverged", "failed")
_EVENTS = {cls.kind: cls for cls in (StartEvent, StepEvent, EpochEvent, EndEvent, ProbeEvent)}


def event_from_dict(row: dict[str, Any]) -> Event | None:
    """The Event a metrics.jsonl / probes.jsonl row was written from (None for an unknown kind)."""
    cls = _EVENTS.get(row.get("kind", "probe"))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in row.items() if k in names})
    except TypeError:  # a row missing a field (written by another labkit version): skipped, not fatal
        return None


class _Tail:
    """The complete JSON lines appended to a file since the last read (a torn last line waits for its end)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest = path, 0, b""

    def rows(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


def check_launch(nnodes: int, node_rank: int, master_addr: str | None, master_port: int | None) -> None:
    """The multi-machine settings, each error saying what to pass instead."""
    if not isinstance(nnodes, int) or nnodes < 1:
        raise LabkitError(f"--nnodes {nnodes!r}: give the number of machines, 1 or more")
    if not isinstance(node_rank, int) or not 0 <= node_rank < nnodes:
        raise LabkitError(f"--node-rank {node_rank!r} is out of range; allowed: 0 to {nnodes - 1} (this machine's "
                          f"index among the {nnodes} machines, 0 on the one that writes the run)")
    if master_port is not None and not (isinstance(master_port, int) and 1 <= master_port <= 65535):
        raise LabkitError(f"--master-port {master_port!r} is out of range; allowed: 1 to 65535 (a free TCP port "
                          "on node 0, e.g. 29500)")
    if nnodes > 1 and (not master_addr or master_port is None):
        raise LabkitError(f"--nnodes {nnodes} needs --master-addr HOST and --master-port PORT: node 0's address "
                          "and a free port on it, the same on every machine")


def torchrun_args(nproc: int, nnodes: int = 1, node_rank: int = 0, master_addr: str | None = None,
                  master_port: int | None = None) -> list[str]:
    """torchrun's options for these settings: one machine with no address given uses --standalone (a free port)."""
    args = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes), "--node-rank", str(node_rank),
            "--max-restarts", "0", "--monitor-interval", "0.2"]
    if nnodes == 1 and master_addr is None and master_port is None:
        return args + ["--standalone"]
    return args + ["--master-addr", master_addr or "127.0.0.1", "--master-port", str(master_port or 29500)]


class LaunchedRun(Run):
    """A run whose workers are other processes: its events come from the run's files; stop() signals them."""

    def __init__(self, config: Config, run_dir: Path, proc: subprocess.Popen, callbacks: Sequence[Callback],
                 world: int, node_rank: int = 0):
        super().__init__(config, run_dir)
        self.proc, self.callbacks, self.world, self.node_rank = proc, list(callbacks), world, node_rank
        self.log = run_dir / LOG_FILE

    def stop(self) -> None:
        """Ask the workers to stop (SIGTERM to the launcher, which passes it on); they stop after the next step."""
        super().stop()
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _emit(self, event: Event) -> None:
        for cb in self.callbacks:
            cb(event)

    def follow(self) -> None:
        """Hand the run's events to the callbacks until the launcher exits, then settle the run's ending."""
        metrics, probes = _Tail(self.dir / "metrics.jsonl"), _Tail(self.dir / PROBE_FILE)
        code = None
        while True:
            code = self.proc.poll()  # before reading: after the exit, one more read takes every last line
            for row in metrics.rows():
                event = event_from_dict(row)
                if event is not None and not isinstance(event, EndEvent):  # the end is settled below
                    self._emit(event)
            for row in probes.rows():
                event = event_from_dict(row)
                if event is not None:
                    self._emit(event)
            if code is not None:
                break
            time.sleep(POLL_SECONDS)
        try:
            self._settle(code)
        finally:
            self._done.set()

    def _settle(self, code: int) -> None:
        summary = _read_json(self.dir / "summary.json") or {}
        ranks = {int(r["rank"]): r for r in (_read_json(p) for p in sorted(self.dir.glob("rank*.json"))) if r}
        record = _read_json(self.dir / LAUNCH_FILE) or {}
        status = summary.get("status")
        if self.node_rank > 0:  # no run directory here: this node's workers' ends are all there is
            status = "completed" if code == 0 else "failed"
            summary = {"status": status, "node_rank": self.node_rank, "ranks": ranks}
        # every worker reported a clean end: a signal that reached one while it exited does not undo its work
        reported = len(ranks) == self.world and all(r.get("status") in FINAL and r.get("status") != "failed"
                                                    for r in ranks.values())
        ok = status in FINAL and status != "failed" and (code == 0 or reported or
                                                          (self.stop_requested and status == "stopped"))
        if ok:
            message = summary.get("message", "")
        else:
            status = "failed"
            message = failure_message(self.dir, record, ranks, code, self.world, self.log)
            summary = dict(summary, status=status, message=message, launch=record,
                           ranks={str(k): {"status": v.get("status"), "message": v.get("message")}
                                  for k, v in ranks.items()})
            summary.pop("pid", None)
            if self.node_rank == 0:
                write_json_atomic(self.dir / "summary.json", summary)
                _append_end(self.dir, EndEvent(status, message, summary))
        self.status, self.message, self.summary = status, message, summary
        if status == "failed":
            self.error = LabkitError(message)
        self._emit(EndEvent(status, message, summary))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None


def _append_end(run_dir: Path, event: EndEvent) -> None:
    """The run's last metrics line when rank 0 could not write it (a worker was killed)."""
    rows = read_metrics(run_dir)
    if rows and rows[-1].get("kind") == "end" and rows[-1].get("message") == event.message:
        return
    try:
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(event.to_dict(), allow_nan=True) + "\n")
    except OSError:
        pass


def _where(run_dir: Path) -> str:
    """ ' at step S (epoch E)' from the last step rank 0 wrote, or ''."""
    steps = [r for r in read_metrics(run_dir) if r.get("kind") == "step"]
    return f" at step {steps[-1]['step']} (epoch {steps[-1]['epoch']:.2f})" if steps else " before its first step"


def failure_message(run_dir: Path, record: dict[str, Any], ranks: dict[int, dict], code: int | None, world: int,
                    log: Path) -> str:
    """One line on why a launched run failed: the rank that was killed or raised first, what it said, where."""
    failures = {int(k): v for k, v in (record.get("failures") or {}).items()}
    where, kept = _where(run_dir), f"the files written so far are kept in {run_dir}"
    killed = sorted(r for r, f in failures.items() if (f.get("exitcode") or 0) < 0
                    and ranks.get(r, {}).get("status") != "failed")
    if killed:
        r = killed[0]
        f = failures[r]
        sig = f.get("signal") or f"signal {-f['exitcode']}"
        return (f"worker rank {r} of {world} (pid {f.get('pid')}) was killed by {sig} (signal {-f['exitcode']}){where}; "
                f"torchrun stopped the other workers; {kept}")
    failed = sorted((v for v in ranks.values() if v.get("status") == "failed"), key=lambda v: v.get("time", 0))
    if failed:
        first = failed[0]
        text = (first.get("message") or "").strip().splitlines()
        return (f"worker rank {first['rank']} of {world} failed{where}: {text[0] if text else 'no message'}; "
                f"{kept} (its traceback: {run_dir / RANK_FILE.format(rank=first['rank'])})")
    if record.get("signal"):
        return f"the launcher was ended by {record['signal']}{where}; {kept}"
    if failures:
        r, f = min(failures.items())
        return f"worker rank {r} of {world} exited with code {f.get('exitcode')}{where}; see {log}; {kept}"
    return (f"torchrun exited with code {code}{where} before the workers reported; its output is in {log}; {kept}")


def launch(config: Config, callbacks: Iterable[Callback] = (), *, out: str | os.PathLike | None = None,
           background: bool = False, progress: bool = False, nnodes: int = 1, node_rank: int = 0,
           master_addr: str | None = None, master_port: int | None = None) -> Run:
    """Train `config` on train.nproc processes per machine through torchrun; the Run follows the workers.

    Returns at once with `background` (the run goes on; `run.wait()`, `run.stop()`), else when it ends, raising
    LabkitError if it failed. `nnodes`, `node_rank`, `master_addr`, `master_port` are torchrun's, for several
    machines (each runs the same call with its own node_rank).
    """
    from ..data.sets import ensure_available
    from .transfer import check_init_from

    config = config.copy().validate()
    check_launch(nnodes, node_rank, master_addr, master_port)
    ensure_available(config.data)
    check_init_from(config)
    if node_rank == 0:
        run_dir = new_run_dir(out if out is not None else config.train.out, config).resolve()
        write_json_atomic(run_dir / "summary.json", {"status": "running", "pid": os.getpid()})
    else:
        run_dir = Path(tempfile.mkdtemp(prefix=f"labkit-node{node_rank}-"))
    config.save(run_dir / "config.json")
    nproc = config.train.nproc
    threads = max(1, (config.train.threads or default_threads(config)) // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "labkit.training.launch", str(run_dir), "--",
           *torchrun_args(nproc, nnodes, node_rank, master_addr, master_port)]
    with open(run_dir / LOG_FILE, "ab") as log:
        # its own session: a Ctrl-C in the terminal reaches this process, which stops the workers in order
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    cbs = list(callbacks)
    if progress:
        from .progress import ProgressBar

        cbs.append(ProgressBar())
    run = LaunchedRun(config, run_dir, proc, cbs, nproc * nnodes, node_rank)
    if background:
        run.thread = threading.Thread(target=run.follow, daemon=True, name=f"labkit-launch-{run.id}")
        run.thread.start()
        return run
    try:
        run.follow()
    except BaseException:
        run.stop()
        raise
    if run.status == "failed" and run.error is not None:
        raise run.error
    return run


def main(argv: Sequence[str]) -> int:
    """The launcher process: torchrun's parser and launcher over the workers, its failures kept in launch.json."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m labkit.training.launch RUN_DIR -- TORCHRUN_OPTIONS")
    run_dir = Path(argv[0])
    args = parse_args([*argv[2:], "-m", "labkit.training.distributed", str(run_dir)])
    record: dict[str, Any] = {"failures": {}, "signal": None}
    code = 0
    try:
        run(args)
    except ChildFailedError as e:
        code = 1
        record["failures"] = {str(rank): {"local_rank": f.local_rank, "pid": f.pid, "exitcode": f.exitcode,
                                          "signal": f.signal_name() if f.exitcode < 0 else None,
                                          "message": str(f.message)[:2000]}
                              for rank, f in e.failures.items()}
    except SignalException as e:
        code = 128 + int(e.sigval)
        record["signal"] = e.sigval.name
    record["exitcode"] = code
    write_json_atomic(run_dir / LAUNCH_FILE, record)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
