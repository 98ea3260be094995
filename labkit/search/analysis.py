"""Reading searches back: coarse-to-fine refinement, border warnings, tables, curves, reports, and the
Bergstra & Bengio random-versus-grid demonstration on a synthetic objective.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..config import Config
from ..errors import LabkitError
from ..runlog import RunLog
from .space import SAMPLERS, Param, Space
from .storage import load_study, open_storage, study_setup

EDGE = 0.1  # a best value within this fraction of the range (on its own scale) from an end is "at the border"


def _as_study(study: Any, storage: Any) -> Any:
    return load_study(study, storage) if isinstance(study, str) else study


def completed_trials(study: Any) -> list:
    """The study's completed trials with a value, best first."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=lambda t: t.value, reverse=True)


def _round_sig(v: float, sig: int = 3) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    return float(f"{v:.{sig}g}")


def refine(study: Any, storage: Any = None, top: int = 5) -> Space:
    """A narrower space around the top-k trials of a study (coarse to fine; on a log scale for log ranges).

    Each range shrinks to the span of the top-k values plus a quarter of that span
    on each side (at least 5% of the old range), clipped to the old range; each
    choice keeps only the values the top-k used (one value fixes the field). Where
    the best trial sits at an end of its range (what `border_warnings` warns of),
    that end is widened past the old range instead, as far as the warning suggests;
    `refine_with_notes` also says which ranges were widened.
    """
    return refine_with_notes(study, storage, top)[0]


def refine_with_notes(study: Any, storage: Any = None, top: int = 5) -> tuple[Space, list[str]]:
    """`refine`'s space and one line per range it widened past the coarse range (best trial at its edge)."""
    if top < 1:
        raise LabkitError(f"top={top}; refine needs the best k >= 1 trials")
    s = _as_study(study, storage)
    setup = study_setup(s)
    space = setup.space
    ranked = completed_trials(s)
    best = ranked[:top]
    if not best:
        raise LabkitError(f"study {s.study_name!r} has no completed trials to refine around; run it first")
    params, notes = [], []
    for p in space:
        vals = [t.params[p.path] for t in best if p.path in t.params]
        if not vals:
            params.append(p)
            continue
        if p.kind == "choice":
            params.append(Param(p.path, "choice", choices=tuple(c for c in p.choices if c in vals)))
            continue
        us = [p.to_unit(v) for v in vals]
        span = max(us) - min(us)
        pad = max(0.25 * span, 0.05)
        lo_u, hi_u = max(0.0, min(us) - pad), min(1.0, max(us) + pad)
        lo, hi = p.from_unit(lo_u), p.from_unit(hi_u)
        if p.kind == "int":
            lo, hi = max(int(p.low), math.floor(lo)), min(int(p.high), math.ceil(hi))
            if lo >= hi:
                lo, hi = (lo - 1, hi) if lo > p.low else (lo, hi + 1)
        else:
            lo, hi = max(p.low, _round_sig(lo)), min(p.high, _round_sig(hi))
            if not lo < hi:
                lo, hi = p.from_unit(lo_u), p.from_unit(hi_u)
        side = _border_side(p, best[0])
        wider = _widen(p, side, setup.base) if side else None
        if wider is not None:
            # the optimum may lie past the edge the best trial touches: clipping there would keep it out for good
            if side == "upper":
                hi = wider.high
            else:
                lo = wider.low
            notes.append(f"{p.path}: the best trial (#{best[0].number}) has {p.path}={best[0].params[p.path]:.4g}, "
                         f"at the {'top' if side == 'upper' else 'bottom'} of {p.spec().split('=', 1)[1]}; the fine "
                         f"range goes past that end: {Param(p.path, p.kind, lo, hi, p.log).spec().split('=', 1)[1]}")
        params.append(Param(p.path, p.kind, lo, hi, p.log))
    return Space(params), notes


def _border_side(p: Param, trial: Any, edge: float = EDGE) -> str | None:
    """'upper' or 'lower' when the trial's value of range `p` lies within `edge` of that end; else None."""
    if not p.is_range or p.path not in trial.params:
        return None
    u = p.to_unit(trial.params[p.path])
    return "upper" if u >= 1 - edge else "lower" if u <= edge else None


def border_warnings(study: Any, space: Space | None = None, storage: Any = None, edge: float = EDGE) -> list[str]:
    """A warning, with numbers, for each range whose best value sits within `edge` of an end; suggests a wider range."""
    s = _as_study(study, storage)
    setup = study_setup(s)
    space = space or setup.space
    ranked = completed_trials(s)
    if not ranked:
        return []
    best, top = ranked[0], ranked[:5]
    out = []
    for p in space:
        if not p.is_range or p.path not in best.params:
            continue
        v = best.params[p.path]
        u = p.to_unit(v)
        side = _border_side(p, best, edge)
        if side is None:
            continue
        near = sum(1 for t in top if p.path in t.params and
                   (p.to_unit(t.params[p.path]) >= 1 - edge if side == "upper" else p.to_unit(t.params[p.path]) <= edge))
        wider = _widen(p, side, setup.base)
        if wider is None:
            continue  # already at the field's limit (e.g. dropout 0): nothing to widen into
        # the position from the low end, the same way for both ends: 4% is near the bottom, 96% near the top
        scale = "on a log scale" if p.log else "on a linear scale"
        where = f"{'top' if side == 'upper' else 'bottom'} {100 * edge:.0f}%"
        out.append(
            f"{p.path}: the best trial (#{best.number}, val_acc {best.value:.4f}) has {p.path}={v:.4g}, in the "
            f"{where} of {p.spec().split('=', 1)[1]} (at {100 * u:.0f}% from low to high {scale}); {near} of the "
            f"top {len(top)} trials are "
            f"in that end; the optimum may lie {'above' if side == 'upper' else 'below'} it: widen the range, "
            f"e.g. --space {wider.spec()}")
    return out


def _widen(p: Param, side: str, base: Config) -> Param | None:
    # extend the touched end by half the range on the parameter's scale, as far as the field allows
    for frac in (0.5, 0.25, 0.1):
        end = p.from_unit(1 + frac) if side == "upper" else p.from_unit(-frac)
        end = int(round(end)) if p.kind == "int" else _round_sig(end)
        if end == (p.high if side == "upper" else p.low):
            continue
        try:
            base.replace(**{p.path: end}).validate()
        except LabkitError:
            continue
        return Param(p.path, p.kind, p.low if side == "upper" else end, end if side == "upper" else p.high, p.log)
    return None


# -- tables and curves ------------------------------------------------------------------------------------------

def trial_rows(study: Any, storage: Any = None) -> list[dict[str, Any]]:
    """One plain dict per trial: number, state, status, value, params, run_dir, reason, seconds."""
    s = _as_study(study, storage)
    rows = []
    for t in s.get_trials(deepcopy=False):
        state = t.state.name.lower()
        rows.append({"number": t.number, "state": state, "status": t.user_attrs.get("status", state),
                     "value": t.value, "params": dict(t.params), "run_dir": t.user_attrs.get("run_dir"),
                     "reason": t.user_attrs.get("reason", ""), "seconds": t.user_attrs.get("seconds"),
                     "intermediate": dict(t.intermediate_values)})
    return rows


def trials_table(study: Any, storage: Any = None, limit: int = 20) -> str:
    """A text table of the best trials (then a count of the rest by status)."""
    s = _as_study(study, storage)
    rows = trial_rows(s)
    paths = study_setup(s).space.paths
    scored = sorted([r for r in rows if r["value"] is not None], key=lambda r: r["value"], reverse=True)
    head = ["#", "status", "val_acc"] + paths
    lines = [head]
    for r in scored[:limit]:
        lines.append([str(r["number"]), r["status"], f"{r['value']:.4f}"] +
                     [f"{r['params'][p]:.4g}" if isinstance(r["params"].get(p), float) else str(r["params"].get(p, ""))
                      for p in paths])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = [f"study {s.study_name}: {len(rows)} trials"]
    text += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    text.append("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for r in rows:
        if r["status"] in ("diverged", "failed", "killed", "stopped"):
            text.append(f"  trial {r['number']} {r['status']}: {r['reason']}")
    return "\n".join(text)


def trial_curves(study: Any, storage: Any = None, metric: str = "loss") -> dict[int, dict[str, Any]]:
    """Learning curves of every trial with a run directory, read from its metrics.jsonl.

    metric "loss" (train loss per step, x in epochs) or "val_acc" (per epoch).
    Each value: {"x", "y", "running", "status", "params"}. Running trials are read
    as they are written, so calling this again draws them live.
    """
    from optuna.trial import TrialState

    from ..runs import read_metrics

    s = _as_study(study, storage)
    out = {}
    for t in s.get_trials(deepcopy=False):
        d = t.user_attrs.get("run_dir")
        if not d:
            continue
        log = RunLog.from_rows(read_metrics(d))
        if metric == "val_acc":
            pts = [(e.epoch, e.val_acc) for e in log.epochs if e.val_acc is not None]
        else:
            steps = log.steps
            pts = list(zip(steps.epoch.tolist(), steps.loss.tolist()))
        out[t.number] = {"x": [p[0] for p in pts], "y": [p[1] for p in pts],
                         "running": t.state == TrialState.RUNNING,
                         "status": t.user_attrs.get("status", t.state.name.lower()), "params": dict(t.params)}
    return out


def best_so_far(values: Iterable[float | None]) -> list[float | None]:
    """Running maximum of trial scores in trial order (None until the first score)."""
    out, best = [], None
    for v in values:
        if v is not None and (best is None or v > best):
            best = v
        out.append(best)
    return out


def importances(study: Any) -> dict[str, float]:
    """Optuna's fANOVA parameter importances (empty when there are too few completed trials)."""
    import optuna

    if len(completed_trials(study)) < 3:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}


# -- the report -----------------------------------------------------------------------------------------------

def expand_studies(names: Iterable[str], storage: Any) -> list[str]:
    """Study names, where a name that is not a study stands for its per-sampler studies NAME-grid/-random/-tpe."""
    import optuna

    st = open_storage(storage)
    have = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
    out = []
    for n in names:
        if n in have:
            out.append(n)
            continue
        siblings = [f"{n}-{s}" for s in SAMPLERS.names() if f"{n}-{s}" in have]
        if not siblings:
            raise LabkitError(f"no study named {n!r} in the storage; studies there: {', '.join(have) or 'none'}")
        out += siblings
    return out


def plane_axes(space: Space, imp: dict[str, float]) -> tuple[Param | None, Param | None]:
    # the most and the least important ranges (Bergstra & Bengio's important vs unimportant parameter)
    ranges = [p for p in space if p.is_range]
    if len(ranges) < 2:
        return None, None
    ranked = sorted(ranges, key=lambda p: -imp.get(p.path, 0.0)) if imp else ranges
    return ranked[0], ranked[-1]


# -- Bergstra & Bengio (2012), on a synthetic objective ---------------------------------------------------------

@dataclass
class BergstraResult:
    """How often random search beats a grid of the same budget on f(x, y) = g(x) + w h(y)."""

    budgets: list[int]
    repeats: int
    random_wins: list[float]  # fraction of repeats where random's best > grid's best
    ties: list[float]
    grid_best: list[float]  # mean best score
    random_best: list[float]
    weight: float
    example: dict[str, Any] = field(default_factory=dict)  # one repeat's points and marginals, for the plot

    def table(self) -> str:
        """A text table, one row per budget."""
        head = ["budget", "grid", "random_wins", "ties", "mean_best_grid", "mean_best_random"]
        rows = []
        for i, b in enumerate(self.budgets):
            k = int(round(math.sqrt(b)))
            rows.append([str(b), f"{k}x{k}", f"{self.random_wins[i]:.1%}", f"{self.ties[i]:.0%}",
                         f"{self.grid_best[i]:.4f}", f"{self.random_best[i]:.4f}"])
        # every column as wide as its widest cell (a 10x10 grid is wider than 'grid'), numbers right-aligned
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
        lines = [f"random vs grid on g(x) + {self.weight:g} h(y), {self.repeats} repeats (best of each search)"]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
        return "\n".join(lines)


def _bump(u: np.ndarray, centre: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((u - centre) / width) ** 2)


def bergstra_demo(budgets: Iterable[int] = (4, 9, 16, 25, 36, 49, 64, 81, 100), repeats: int = 500,
                  weight: float = 0.1, width: float = 0.05, seed: int = 0) -> BergstraResult:
    """Random vs grid search at equal budgets on a synthetic 2-D objective, many times (instant).

    The score is g(x) + weight * h(y): g a narrow bump (the important parameter), h a
    bump scaled down (the unimportant one); bump centres are drawn anew each repeat.
    A k x k grid tries only k values of x; random search tries k^2. The grid is the
    one grid searches here use (cell centres), the random points are uniform as in
    Optuna's RandomSampler.
    """
    rng = np.random.default_rng(seed)
    budgets = [int(b) for b in budgets]
    for b in budgets:
        if b < 1 or int(round(math.sqrt(b))) ** 2 != b:
            raise LabkitError(f"budget {b} is not a square; a 2-D grid needs k*k trials, e.g. 4, 9, 16, 25")
    axis = Param("x", "float", 0.0, 1.0)
    wins, ties, gbest, rbest = [], [], [], []
    for b in budgets:
        k = int(round(math.sqrt(b)))
        gx = np.array(axis.grid(k))
        GX, GY = np.meshgrid(gx, gx, indexing="ij")
        cx, cy = rng.uniform(0.05, 0.95, (2, repeats, 1))
        grid_scores = _bump(GX.ravel()[None], cx, width) + weight * _bump(GY.ravel()[None], cy, 0.3)
        rx, ry = rng.uniform(0, 1, (2, repeats, b))
        rand_scores = _bump(rx, cx, width) + weight * _bump(ry, cy, 0.3)
        g, r = grid_scores.max(1), rand_scores.max(1)
        wins.append(float(np.mean(r > g + 1e-12)))
        ties.append(float(np.mean(np.abs(r - g) <= 1e-12)))
        gbest.append(float(g.mean()))
        rbest.append(float(r.mean()))
    example = _bergstra_example(repeats, weight, width, seed)
    return BergstraResult(budgets, repeats, wins, ties, gbest, rbest, weight, example)


def _bergstra_example(repeats: int, weight: float, width: float, seed: int, k: int = 3) -> dict[str, Any]:
    """One repeat at budget k*k for the picture (as in the paper's figure 1), and where grid would have won.

    Of `repeats` fresh draws (peak position and random points), the picture shows the median one of those
    random search won (the usual outcome, neither its best nor its narrowest win), and the note says how
    often the grid won instead. For that draw's random points, `luck` lists the peak positions where the
    grid would have won: near its k values of x.
    """
    rng = np.random.default_rng(seed + 1)
    gx = np.array(Param("x", "float", 0.0, 1.0).grid(k))
    GX, GY = np.meshgrid(gx, gx, indexing="ij")
    cx, cy = rng.uniform(0.05, 0.95, (2, repeats))
    rx, ry = rng.uniform(0, 1, (2, repeats, k * k))

    def score(x: np.ndarray, y: np.ndarray, i: np.ndarray | int) -> np.ndarray:
        return _bump(x, np.asarray(cx[i])[..., None], width) + weight * _bump(y, np.asarray(cy[i])[..., None], 0.3)

    idx = np.arange(repeats)
    margin = score(rx, ry, idx).max(1) - score(GX.ravel()[None], GY.ravel()[None], idx).max(1)
    won = np.flatnonzero(margin > 1e-12)
    pool = won if len(won) else idx
    i = int(pool[np.argsort(margin[pool])[len(pool) // 2]])
    grid_wins = float(np.mean(margin < -1e-12))
    # for this draw's points: every peak position 0.05..0.95 (where peaks are drawn), does the grid win there?
    centres = np.linspace(0.05, 0.95, 901)
    g_best = (_bump(GX.ravel()[None], centres[:, None], width) + weight * _bump(GY.ravel()[None], cy[i], 0.3)).max(1)
    r_best = (_bump(rx[i][None], centres[:, None], width) + weight * _bump(ry[i][None], cy[i], 0.3)).max(1)
    lucky = g_best > r_best + 1e-12
    luck, start = [], None
    for c, w in zip(centres, lucky):
        if w and start is None:
            start = c
        if not w and start is not None:
            luck.append((float(start), float(c)))
            start = None
    if start is not None:
        luck.append((float(start), float(centres[-1])))

    def f(x: float, y: float) -> float:
        return float(_bump(np.float64(x), cx[i], width) + weight * _bump(np.float64(y), cy[i], 0.3))

    xs = np.linspace(0, 1, 400)
    note = (f"One of {repeats} draws (the median of those random search won): the grid tries {k} values of x, "
            f"random search {k * k}, so one of them lands near the peak of g. The grid wins only by luck, when the "
            f"peak falls near one of its {k} x values: against these random points, a peak in the shaded "
            f"{lucky.mean():.0%} of the axis; over all {repeats} draws the grid won {grid_wins:.0%} of the time.")
    return {
        "grid": [{"params": {"x": float(a), "y": float(c)}, "value": float(f(a, c))}
                 for a, c in zip(GX.ravel(), GY.ravel())],
        "random": [{"params": {"x": float(a), "y": float(c)}, "value": float(f(a, c))}
                   for a, c in zip(rx[i], ry[i])],
        "x_curve": (xs.tolist(), _bump(xs, cx[i], width).tolist()),
        "y_curve": (xs.tolist(), (weight * _bump(xs, cy[i], 0.3)).tolist()),
        "peak": (float(cx[i]), float(cy[i])), "margin": float(margin[i]), "grid_wins": grid_wins,
        "luck": luck, "luck_fraction": float(lucky.mean()), "note": note,
    }


def demo_params() -> tuple[Param, Param]:
    """The two parameters of the synthetic objective (for plotting its example)."""
    return Param("x", "float", 0.0, 1.0), Param("y", "float", 0.0, 1.0)
