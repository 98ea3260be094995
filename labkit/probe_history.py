"""Probe snapshots read back: per-layer and per-parameter series and histograms over a run (see training/probes.py).

Analysis layer: it reads what the Probes hook recorded (probes.jsonl, or probe rows of metrics.jsonl) and
needs nothing of the training loop, so plots and the diagnosis can use it without importing training.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

import numpy as np

from .events import ProbeEvent
from .runs import read_probe_rows


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


class ProbeHistory:
    """Probe snapshots over a run: per-layer and per-parameter series, histograms over time."""

    def __init__(self, snapshots: Iterable[Mapping[str, Any]] = ()):
        by_step: dict[int, Mapping[str, Any]] = {}
        for s in snapshots:
            by_step[int(s["step"])] = s  # a repeated step (e.g. re-read live) keeps the latest
        self._snaps = [by_step[k] for k in sorted(by_step)]
        self.steps: list[int] = [int(s["step"]) for s in self._snaps]
        self.epochs: list[float] = [_num(s.get("epoch")) for s in self._snaps]
        self.layers: list[str] = []
        self.params: list[str] = []
        for s in self._snaps:  # union in network order (first-seen order of each snapshot's dicts)
            for k in s.get("layers", {}) or {}:
                if k not in self.layers:
                    self.layers.append(k)
            for k in s.get("params", {}) or {}:
                if k not in self.params:
                    self.params.append(k)

    @classmethod
    def from_events(cls, events: Iterable[ProbeEvent | Mapping[str, Any]]) -> "ProbeHistory":
        """A history from ProbeEvents or their dicts (live views pass what they have received so far)."""
        snaps = []
        for e in events:
            if isinstance(e, ProbeEvent):
                snaps.append({"step": e.step, "epoch": e.epoch, "layers": e.layers, "params": e.params})
            elif isinstance(e, Mapping) and e.get("kind", "probe") == "probe" and "step" in e:
                snaps.append(e)
        return cls(snaps)

    def __len__(self) -> int:
        return len(self._snaps)

    def __repr__(self) -> str:
        return f"ProbeHistory({len(self)} snapshots, {len(self.layers)} layers, {len(self.params)} params)"

    def activation(self, layer: str) -> str:
        """The activation name of `layer` (e.g. 'relu')."""
        for s in self._snaps:
            v = (s.get("layers") or {}).get(layer)
            if v:
                return str(v.get("activation", "?"))
        return "?"

    def series(self, layer: str, stat: str, pre: bool = False) -> np.ndarray:
        """One statistic of `layer` over the snapshots (NaN where missing); pre=True reads the pre-activation stats."""
        out = np.full(len(self), np.nan)
        for i, s in enumerate(self._snaps):
            v = (s.get("layers") or {}).get(layer)
            if v and pre:
                v = v.get("pre")
            if v:
                x = v.get(stat)
                out[i] = _num(x) if not isinstance(x, list) else np.nan
        return out

    def weight_params(self) -> list[str]:
        """The weight matrices and kernels (ndim > 1; by name when older runs lack ndim), not biases or norms."""
        out = []
        for p in self.params:
            nd = self.param_series(p, "ndim")
            ndim = np.nanmax(nd) if np.isfinite(nd).any() else (2 if p.endswith("weight") else 1)
            if ndim > 1:
                out.append(p)
        return out

    def param_series(self, param: str, stat: str) -> np.ndarray:
        """One statistic ('norm', 'grad_norm', 'update_ratio') of a parameter over the snapshots."""
        out = np.full(len(self), np.nan)
        for i, s in enumerate(self._snaps):
            v = (s.get("params") or {}).get(param)
            if v:
                out[i] = _num(v.get(stat))
        return out

    def hist(self, layer: str, pre: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
        """Histogram counts of `layer` per snapshot (steps x bins, zeros where missing) and its (lo, hi) range."""
        rows: list[list[int] | None] = []
        rng, bins = (math.nan, math.nan), 0
        for s in self._snaps:
            v = (s.get("layers") or {}).get(layer)
            if v and pre:
                v = v.get("pre")
            if v and v.get("hist"):
                rows.append(v["hist"])
                rng, bins = (_num(v.get("lo")), _num(v.get("hi"))), max(bins, len(v["hist"]))
            else:
                rows.append(None)
        out = np.zeros((len(rows), bins))
        for i, r in enumerate(rows):
            if r is not None and len(r) == bins:
                out[i] = [0 if c is None else c for c in r]
        return out, rng

    def snapshot(self, i: int = -1) -> dict[str, dict[str, Any]]:
        """The layers dict of snapshot `i` (negative counts from the end)."""
        return dict(self._snaps[i].get("layers") or {})

    def snapshot_params(self, i: int = -1) -> dict[str, dict[str, Any]]:
        """The params dict of snapshot `i`."""
        return dict(self._snaps[i].get("params") or {})


def read_probes(run_dir: str | os.PathLike) -> ProbeHistory:
    """The probe history stored in a run directory (empty when the run had probes off)."""
    return ProbeHistory.from_events(read_probe_rows(run_dir))
