"""Search spaces over config paths (float and int ranges, linear or log, and choices) and the samplers and
pruners that walk them.

A space is written one parameter per spec, the same text on the command line,
in Python and in the Search tab:

    optim.lr=log:1e-4:1e-1        log-uniform range
    model.dropout=0:0.5           linear range (int or float by the config field's type)
    optim.weight_decay=0,1e-5,1e-4  choices (a single value fixes the field)

Every parameter is named by its config path, so the Optuna parameter names, the
run's config and the plots all agree. The grid a grid search uses is made here
too (cell centres on the parameter's own scale), so grid, random and TPE
searches see the same ranges. SAMPLERS and PRUNERS are registries: the CLI's
choices, the Search tab's dropdowns and the unknown-name errors read them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from ..config import Config, config_paths, parse_value
from ..errors import LabkitError
from ..registry import Registry

if TYPE_CHECKING:  # optuna is imported lazily: the space is useful without it
    import optuna

    from .storage import SearchSetup

SYNTAX = ("the syntax is PATH=LO:HI (linear range), PATH=log:LO:HI (log-uniform range) or "
          "PATH=A,B,C (choices), e.g. optim.lr=log:1e-4:1e-1, model.dropout=0:0.5, "
          "optim.weight_decay=0,1e-5,1e-4")


def _type_name(typ: Any) -> str:
    return getattr(typ, "__name__", str(typ)) if typ in (int, float, bool, str) else str(typ)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@dataclass(frozen=True)
class Param:
    """One searched config field: a range (kind float/int, maybe log) or a list of choices."""

    path: str
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    # -- text and JSON -----------------------------------------------------
    def spec(self) -> str:
        """The spec text that parses back to this parameter."""
        if self.kind == "choice":
            return f"{self.path}=" + ",".join(_fmt(c) for c in self.choices)
        return f"{self.path}={'log:' if self.log else ''}{_fmt(self.low)}:{_fmt(self.high)}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (exact floats, unlike spec())."""
        return {"path": self.path, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log,
                "choices": list(self.choices)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Param":
        """Inverse of to_dict."""
        return cls(d["path"], d["kind"], d.get("low"), d.get("high"), bool(d.get("log")), tuple(d.get("choices") or ()))

    # -- the parameter's own scale -----------------------------------------
    @property
    def is_range(self) -> bool:
        return self.kind != "choice"

    def to_unit(self, value: float) -> float:
        """Position of `value` in the range on its own scale: 0 at low, 1 at high (log for log ranges)."""
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, 1e-300))
        return (v - lo) / (hi - lo)

    def from_unit(self, u: float) -> float:
        """Inverse of to_unit (not rounded for int ranges)."""
        lo, hi = float(self.low), float(self.high)
        if self.log:
            return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        return lo + u * (hi - lo)

    def grid(self, points: int) -> list:
        """`points` values at the centres of equal cells on the parameter's scale (choices: all of them)."""
        if self.kind == "choice":
            return list(self.choices)
        values = [self.from_unit((i + 0.5) / points) for i in range(max(1, points))]
        if self.kind == "int":
            out: list = []
            for v in values:  # small int ranges give fewer distinct points than asked
                r = int(round(v))
                if r not in out:
                    out.append(r)
            return out
        return [float(f"{v:.6g}") for v in values]  # short, readable grid values

    # -- Optuna ----------------------------------------------------------------
    def suggest(self, trial: "optuna.trial.BaseTrial") -> Any:
        """Ask an Optuna trial for this parameter's value."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), log=self.log)

    def distribution(self) -> "optuna.distributions.BaseDistribution":
        """The Optuna distribution suggest() asks for."""
        import optuna

        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=self.log)


@dataclass
class Space:
    """An ordered set of searched parameters; parse it from specs, apply a point to a Config."""

    params: list[Param] = field(default_factory=list)

    @classmethod
    def parse(cls, specs: Iterable[str], base: Config | None = None) -> "Space":
        """Parse specs like "optim.lr=log:1e-4:1e-1"; with `base`, also check every endpoint/choice on it."""
        if isinstance(specs, str):
            specs = [specs]
        params: list[Param] = []
        for spec in specs:
            p = parse_param(spec)
            if any(q.path == p.path for q in params):
                raise LabkitError(f"--space {spec!r}: {p.path} is given twice; give each path once")
            params.append(p)
        if not params:
            raise LabkitError(f"the search space is empty; give at least one --space; {SYNTAX}")
        space = cls(params)
        if base is not None:
            space.check(base)
        return space

    def check(self, base: Config) -> "Space":
        """Raise LabkitError if an endpoint or choice makes an invalid config on top of `base`."""
        for p in self.params:
            values = list(p.choices) if p.kind == "choice" else [p.low, p.high]
            for v in values:
                try:
                    base.replace(**{p.path: v}).validate()
                except LabkitError as e:
                    raise LabkitError(f"--space {p.spec()}: {e}") from None
        return self

    # -- containers ---------------------------------------------------------
    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, path: str) -> Param:
        for p in self.params:
            if p.path == path:
                return p
        raise KeyError(path)

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.params]

    def specs(self) -> list[str]:
        """The spec strings (what --space takes)."""
        return [p.spec() for p in self.params]

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON-ready form (stored with the study so workers, resume and refine read it back)."""
        return [p.to_dict() for p in self.params]

    @classmethod
    def from_dict(cls, d: Sequence[dict[str, Any]]) -> "Space":
        """Inverse of to_dict."""
        return cls([Param.from_dict(x) for x in d])

    def __str__(self) -> str:
        return " ".join(self.specs())

    # -- points -------------------------------------------------------------
    def suggest(self, trial: "optuna.trial.BaseTrial") -> dict[str, Any]:
        """Ask a trial for a value of every parameter: {path: value}."""
        return {p.path: p.suggest(trial) for p in self.params}

    def apply(self, base: Config, values: dict[str, Any]) -> Config:
        """A copy of `base` with the point's values set (not yet validated)."""
        return base.replace(**values)

    def distributions(self) -> dict[str, "optuna.distributions.BaseDistribution"]:
        """{path: Optuna distribution}."""
        return {p.path: p.distribution() for p in self.params}

    def grid_points_per_range(self, budget: int) -> int:
        """Points per range axis so the full grid fits in `budget` trials (at least 1)."""
        combos = math.prod(len(p.choices) for p in self.params if p.kind == "choice") or 1
        ranges = sum(1 for p in self.params if p.is_range)
        if ranges == 0:
            return 1
        k = max(1, int(math.floor((budget / combos) ** (1.0 / ranges) + 1e-9)))
        return k

    def grid(self, budget: int | None = None, points: int | None = None) -> dict[str, list]:
        """The grid Optuna's GridSampler walks: {path: values}; `points` per range, or the most that fit `budget`."""
        if points is None:
            if budget is None:
                raise ValueError("give budget or points")
            points = self.grid_points_per_range(budget)
        return {p.path: p.grid(points) for p in self.params}

    def grid_size(self, budget: int | None = None, points: int | None = None) -> int:
        """Number of points in that grid."""
        return math.prod(len(v) for v in self.grid(budget, points).values())


def parse_param(spec: str) -> Param:
    """Parse one spec into a Param, with a message naming the syntax or the valid paths."""
    if not isinstance(spec, str) or "=" not in spec:
        raise LabkitError(f"malformed --space {spec!r}; {SYNTAX}")
    path, _, body = spec.partition("=")
    path, body = path.strip(), body.strip()
    paths = config_paths()
    if path not in paths:
        raise LabkitError(f"--space {spec!r}: unknown config path {path!r}; valid paths are: {', '.join(paths)}")
    if not body:
        raise LabkitError(f"malformed --space {spec!r}: nothing after '='; {SYNTAX}")
    typ = paths[path]
    tname = _type_name(typ)
    if "list" in tname:
        raise LabkitError(f"--space {spec!r}: {path} is a list ({tname}) and cannot be searched; "
                          f"search a number or a name instead")

    if ":" in body:  # a range
        parts = [x.strip() for x in body.split(":")]
        log = False
        if parts[0].lower() == "log":
            log, parts = True, parts[1:]
        elif parts[0].lower() in ("lin", "linear"):
            parts = parts[1:]
        if len(parts) != 2 or not all(parts):
            raise LabkitError(f"malformed --space {spec!r}; {SYNTAX}")
        if typ not in (int, float):
            raise LabkitError(f"--space {spec!r}: {path} is {tname}, so it takes choices (A,B,C), not a range")
        try:
            lo, hi = (float(x) for x in parts)
        except ValueError:
            raise LabkitError(f"malformed --space {spec!r}: {parts[0]!r} and {parts[1]!r} must be numbers; {SYNTAX}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise LabkitError(f"--space {spec!r}: the range ends must be finite numbers")
        if typ is int:
            if not (lo.is_integer() and hi.is_integer()):
                raise LabkitError(f"--space {spec!r}: {path} is an integer, so LO and HI must be integers "
                                  f"(got {parts[0]} and {parts[1]})")
        if not lo < hi:
            raise LabkitError(f"--space {spec!r}: the range needs LO < HI (got LO={lo:g}, HI={hi:g}); "
                              f"swap them, or give one value to fix {path}")
        if log and lo <= 0:
            raise LabkitError(f"--space {spec!r}: a log range needs LO > 0 (got LO={lo:g}); "
                              f"start at a small positive value such as {hi / 1000:g}, or use a linear range")
        if typ is int:
            return Param(path, "int", int(lo), int(hi), log)
        return Param(path, "float", lo, hi, log)

    items = [x.strip() for x in body.split(",")]
    if not all(items):
        raise LabkitError(f"malformed --space {spec!r}: an empty choice; {SYNTAX}")
    choices = []
    for x in items:
        v = parse_value(x, typ, path, fix=False)  # the fix is a --space spec, not a flag
        if v in choices:
            raise LabkitError(f"--space {spec!r}: choice {x!r} is given twice")
        choices.append(v)
    return Param(path, "choice", choices=tuple(choices))


# -- samplers and pruners ------------------------------------------------------------------------------------
# (setup, seed, workers) -> an Optuna sampler; each factory imports optuna itself, so listing names stays cheap
SAMPLERS: Registry[Callable[["SearchSetup", int, int], Any]] = Registry("sampler")


@SAMPLERS.register("random", "independent uniform points (log-uniform on log ranges): Bergstra & Bengio's advice")
def _random(setup: "SearchSetup", seed: int, workers: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("grid", "the full grid that fits the budget, cell centres on each range's own scale")
def _grid(setup: "SearchSetup", seed: int, workers: int) -> Any:
    import optuna

    grid = setup.space.grid(points=setup.grid_points or setup.space.grid_points_per_range(setup.trials))
    return optuna.samplers.GridSampler(grid, seed=seed)


@SAMPLERS.register("tpe", "Bayesian (tree-structured Parzen estimator) after a few random trials")
def _tpe(setup: "SearchSetup", seed: int, workers: int) -> Any:
    import optuna

    startup = max(3, min(10, setup.trials // 3))  # a third of a small budget explores at random
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=workers > 1)


# setup -> an Optuna pruner, judging val_acc after every epoch
PRUNERS: Registry[Callable[["SearchSetup"], Any]] = Registry("pruner")


@PRUNERS.register("none", "every trial runs to its end")
def _no_pruner(setup: "SearchSetup") -> Any:
    import optuna

    return optuna.pruners.NopPruner()


@PRUNERS.register("median", "stop a trial whose val_acc is below the median of earlier trials at the same epoch")
def _median(setup: "SearchSetup") -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=max(2, min(5, setup.trials // 4)), n_warmup_steps=1)


@PRUNERS.register("hyperband", "successive halving over epochs at several brackets (Li et al. 2017)")
def _hyperband(setup: "SearchSetup") -> Any:
    import optuna

    epochs = max(1, int(round(setup.base.train.epochs)))
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
