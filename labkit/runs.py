"""The run store: one directory per run with config.json, metrics.jsonl, probes.jsonl, summary.json, best.pt.

metrics.jsonl is flushed line by line, so a crash or kill loses nothing
already reported, and a half-written last line is skipped when reading.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .config import Config
from .errors import LabkitError
from .events import EndEvent, Event, ProbeEvent

STATUSES = ("running", "completed", "stopped", "diverged", "failed", "killed")


def new_run_dir(out: str | os.PathLike, cfg: Config) -> Path:
    """Create a fresh, uniquely named run directory under `out`."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parts = [stamp, cfg.data.dataset, cfg.model.kind, cfg.optim.name]
    if cfg.train.name:
        parts.append(re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.train.name))
    base = Path(out) / "-".join(parts)
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            d = base if i == 0 else base.with_name(f"{base.name}-{i}")
            try:
                d.mkdir()
                return d
            except FileExistsError:
                continue
    except OSError as e:
        raise LabkitError(f"cannot create a run directory under {out}: {e.strerror}; choose another --runs") from None
    raise LabkitError(f"too many runs named {base.name} under {out}; add --name")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file and rename it, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


class RunWriter:
    """A subscriber that appends every event to metrics.jsonl and writes summary.json at the end."""

    def __init__(self, run_dir: Path, config: Config):
        self.dir = Path(run_dir)
        self.failed: str | None = None
        try:
            config.save(self.dir / "config.json")
            write_json_atomic(self.dir / "summary.json", {"status": "running", "pid": os.getpid(),
                                                           "started": _now()})
            self._f = open(self.dir / "metrics.jsonl", "a", buffering=1)
        except OSError as e:
            raise LabkitError(f"cannot write the run files in {self.dir}: {e.strerror}; free some space or choose another --runs") from None

    def __call__(self, event: Event) -> None:
        try:
            if event.kind == "probe":  # probe snapshots go to their own compact file (see labkit.training.probes)
                self._write_probe(event)
                return
            self._f.write(json.dumps(event.to_dict(), allow_nan=True) + "\n")
            self._f.flush()
            if isinstance(event, EndEvent):
                if getattr(self, "_probes", None) is not None:
                    self._probes.close()
                summary = dict(event.summary, status=event.status, message=event.message, ended=_now())
                write_json_atomic(self.dir / "summary.json", summary)
                self._f.close()
        except OSError as e:
            raise LabkitError(
                f"cannot write to {self.dir}: {e.strerror}; metrics written so far are kept in "
                f"{self.dir / 'metrics.jsonl'}; free some space and run again"
            ) from None


    def _write_probe(self, event: Event) -> None:
        if getattr(self, "_probes", None) is None:
            self._probes = open(self.dir / PROBE_FILE, "a", buffering=1)
        self._probes.write(compact_line(event) + "\n")
        self._probes.flush()


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """Every complete JSON line of metrics.jsonl (a torn last line from a kill is skipped)."""
    p = Path(run_dir) / "metrics.jsonl"
    rows = []
    try:
        with open(p) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return rows


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a run or trial whose process is gone was killed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunRecord:
    """A run read back from its directory: config, summary and (lazily) metrics."""

    dir: Path
    config: Config | None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def status(self) -> str:
        """The recorded status; a 'running' run whose process is gone reads as 'killed'."""
        s = self.summary.get("status", "killed")
        if s == "running" and not pid_alive(int(self.summary.get("pid", -1))):
            return "killed"
        return s

    @property
    def metrics(self) -> list[dict]:
        return read_metrics(self.dir)

    def rows(self, kind: str) -> list[dict]:
        """Raw metric rows of one kind ('step', 'epoch', 'probe', ...) as stored; typed: `labkit.runlog.RunLog.load`."""
        if kind == "probe":  # stored compactly in probes.jsonl
            return read_probe_rows(self.dir)
        return [r for r in self.metrics if r.get("kind") == kind]

    @property
    def checkpoint(self) -> Path | None:
        p = self.dir / "best.pt"
        return p if p.exists() else None

    def load_state_dict(self) -> dict:
        """The best checkpoint's weights, loaded safely (weights_only=True)."""
        import torch

        if self.checkpoint is None:
            raise LabkitError(f"run {self.id} has no best.pt (it ended before its first validation)")
        return torch.load(self.checkpoint, weights_only=True, map_location="cpu")


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read one run directory; missing or torn files are tolerated, a non-run is an error."""
    d = Path(run_dir)
    if not (d / "config.json").exists() and not (d / "metrics.jsonl").exists():
        raise LabkitError(f"{d} is not a labkit run directory (no config.json or metrics.jsonl)")
    try:
        cfg = Config.load(d / "config.json")
    except LabkitError:
        cfg = None
    try:
        summary = json.loads((d / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        summary = {}
    return RunRecord(d, cfg, summary)


def open_run(run_dir: str | os.PathLike, fix: str = "pass a run directory (`labkit runs` lists them)",
             prefix: str = "") -> RunRecord:
    """load_run for a path a user named: a missing path, a file or a folder that is no run is one error, each
    starting with `prefix` (the setting that named it, e.g. "model.init_from: ") and ending with `fix`."""
    d = Path(run_dir).expanduser()
    if not d.is_dir():
        what = "it does not exist" if not d.exists() else "it is a file"
        raise LabkitError(f"{prefix}{d} is not a directory: {what}; {fix}")
    try:
        return load_run(d)
    except LabkitError:
        raise LabkitError(f"{prefix}{d} is not a labkit run directory (no config.json or metrics.jsonl); "
                          f"{fix}") from None


def list_runs(out: str | os.PathLike = "runs") -> list[RunRecord]:
    """Every run under `out`, oldest first."""
    root = Path(out)
    if not root.is_dir():
        return []
    runs = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and ((d / "config.json").exists() or (d / "metrics.jsonl").exists()):
            runs.append(load_run(d))
    return runs


def compare(runs: list[RunRecord]) -> dict[str, list[Any]]:
    """Config paths whose values differ between runs, with each run's value (for side-by-side views)."""
    flat = [_flatten(r.config.to_dict()) if r.config else {} for r in runs]
    keys = sorted(set().union(*flat)) if flat else []
    return {k: [f.get(k) for f in flat] for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1}


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# -- probes.jsonl: probe snapshots in compact form --------------------------------------------
PROBE_FILE = "probes.jsonl"


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.4g}") if math.isfinite(v) else None  # NaN/inf -> null: plain JSON, read back as NaN
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def compact_line(event: ProbeEvent | Mapping[str, Any]) -> str:
    """One probe snapshot as a short JSON line (floats to 4 significant digits, non-finite as null)."""
    d = event.to_dict() if isinstance(event, ProbeEvent) else dict(event)
    d.setdefault("kind", "probe")
    return json.dumps(_round(d), separators=(",", ":"), allow_nan=False)


def read_probe_rows(run_dir: str | os.PathLike) -> list[dict]:
    """Probe snapshots of a run as dicts: probes.jsonl (torn last line skipped), else probe rows of metrics.jsonl."""
    d = Path(run_dir)
    for path, only_probe in ((d / PROBE_FILE, False), (d / "metrics.jsonl", True)):
        rows: list[dict] = []
        try:
            with open(path) as f:
                for line in f:
                    if only_probe and '"probe"' not in line:
                        continue
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(r, dict) and r.get("kind", "probe") == "probe":
                        rows.append(r)
        except FileNotFoundError:
            continue
        if rows:
            return rows
    return []
