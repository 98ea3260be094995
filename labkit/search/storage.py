"""Where searches live: Optuna storages (memory, journal file, any RDB URL) and a study's labkit setup.

- None: in memory (a notebook, one process).
- A file path (e.g. runs/search.journal): Optuna's JournalStorage on a file, which
  several processes on one machine share safely (Optuna advises against SQLite
  for parallel work); the lock is an open(O_EXCL) lock file, so it works across
  processes and on NFS.
- A URL with '://' (postgresql://user@host/db, mysql://..., sqlite:///...): an
  RDBStorage, for workers on several machines; a heartbeat marks the trials of
  dead workers failed and re-queues them.

The labkit side of a study (base config, space, sampler, budget, run store) is
saved as the study's user attribute "labkit", so worker processes, resumed runs,
`refine` and `--report` read it back from the storage alone.
"""
from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import LabkitError
from ..runs import pid_alive
from .space import Space

if TYPE_CHECKING:
    import optuna

JOURNAL_NAME = "search.journal"
HOST = socket.gethostname()


def default_journal(out: str | os.PathLike = "runs") -> str:
    """The journal file `labkit search` uses by default: <run store>/search.journal."""
    return str(Path(out) / JOURNAL_NAME)


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}@{host}"  # never print a password
    return url


def describe(storage: Any) -> str:
    """A short, password-free description of a storage argument."""
    if storage is None:
        return "memory"
    if isinstance(storage, str):
        return _redact(storage)
    return type(storage).__name__


def open_storage(storage: Any) -> "optuna.storages.BaseStorage":
    """An Optuna storage for None / a journal file path / an RDB URL / a storage object; one-line errors."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str) or not storage.strip():
        raise LabkitError(f"storage {storage!r} is not a journal file path or a database URL; "
                          f"give e.g. runs/search.journal or postgresql://user@host/db")
    url = given = storage.strip()
    if "://" in url:
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": 5}  # an unreachable host fails fast
            url = _postgres_driver(url)
        try:
            with warnings.catch_warnings():  # the heartbeat API is marked experimental; it is what we want
                warnings.simplefilter("ignore")
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=15, grace_period=60,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
        except Exception as e:  # sqlalchemy's errors are many lines; keep the first that says why
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise LabkitError(f"cannot reach the study storage {_redact(given)}: {first}; check the URL, that the "
                              f"server is running and the database exists") from None
    path = Path(url)
    if path.is_dir():
        raise LabkitError(f"the study storage {path} is a directory; give a journal file in it, e.g. "
                          f"--storage {path / JOURNAL_NAME}, or a database URL")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path), grace_period=10))
    except OSError as e:
        raise LabkitError(f"cannot open the study journal {path}: {e.strerror}; choose another --storage or --runs") from None
    return JournalStorage(backend)


def _postgres_driver(url: str) -> str:
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; use psycopg2 (labkit's dev extra) when that is what exists
    import importlib.util

    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    if importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is None:
            raise LabkitError(f"no PostgreSQL driver for {_redact(url)}; install one: pip install psycopg2-binary")
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql+psycopg://{rest}"


def storage_url(storage: Any, out: str, workers: int) -> Any:
    """The storage to use: memory for one in-process worker, else a journal file under `out` unless given."""
    if storage is None and workers > 1:
        return default_journal(out)  # worker processes cannot share memory
    return storage


@dataclass
class SearchSetup:
    """What a study searches and how: stored with the study so every worker and every resume agrees."""

    base: Config
    space: Space
    sampler: str = "random"
    trials: int = 20
    pruner: str | None = None
    out: str = "runs"
    seed: int = 0
    grid_points: int | None = None  # points per range axis of a grid search (fixed when the study is made)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_attr(self) -> dict[str, Any]:
        """JSON-ready form stored as the study's 'labkit' user attribute."""
        return {"base": self.base.to_dict(), "space": self.space.to_dict(), "sampler": self.sampler,
                "trials": self.trials, "pruner": self.pruner, "out": self.out, "seed": self.seed,
                "grid_points": self.grid_points, "extra": self.extra}

    @classmethod
    def from_attr(cls, d: dict[str, Any]) -> "SearchSetup":
        """Inverse of to_attr."""
        return cls(Config.from_dict(d["base"]), Space.from_dict(d["space"]), d.get("sampler", "random"),
                   int(d.get("trials", 0)), d.get("pruner"), d.get("out", "runs"), int(d.get("seed", 0)),
                   d.get("grid_points"), dict(d.get("extra") or {}))

    def budget(self) -> int:
        """Trials this study runs: the asked number, or the whole grid for a grid search."""
        if self.sampler == "grid":
            return self.space.grid_size(points=self.grid_points or self.space.grid_points_per_range(self.trials))
        return self.trials

    def comparable(self) -> dict[str, Any]:
        """The fields that must match for a rerun to resume this study (not budget, store or threads)."""
        base = self.base.copy()
        base.train.threads, base.train.out, base.train.name = 0, "", ""
        return {"base": base.to_dict(), "space": self.space.to_dict(), "sampler": self.sampler,
                "pruner": self.pruner}


def load_study(name: str, storage: Any) -> "optuna.Study":
    """Load an existing study by name, listing the studies the storage has when it is not there."""
    import optuna

    st = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=st)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
        raise LabkitError(f"no study named {name!r} in {describe(storage)}; studies there: "
                          f"{', '.join(names) or 'none'}; check --study/--storage") from None


def study_setup(study: "optuna.Study") -> SearchSetup:
    """The labkit setup saved with a study (or inferred from its trials for a study made elsewhere)."""
    attr = study.user_attrs.get("labkit")
    if attr:
        return SearchSetup.from_attr(attr)
    from .space import Param

    dists: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        dists.update(t.distributions)
    if not dists:
        raise LabkitError(f"study {study.study_name!r} has no labkit setup and no trials to infer a space from")
    params = []
    for name, d in dists.items():
        if hasattr(d, "choices"):
            params.append(Param(name, "choice", choices=tuple(d.choices)))
        else:
            kind = "int" if type(d).__name__ == "IntDistribution" else "float"
            params.append(Param(name, kind, d.low, d.high, bool(getattr(d, "log", False))))
    return SearchSetup(Config(), Space(params), trials=len(study.trials))


def trial_is_counted(t: "optuna.trial.FrozenTrial") -> bool:
    """Whether a trial uses up budget: completed, pruned, or failed on its own (diverged or raised).

    Trials interrupted from outside (worker killed, Stop pressed) do not count:
    their point is queued again and rerun when the search resumes.
    """
    from optuna.trial import TrialState

    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state == TrialState.FAIL and t.user_attrs.get("status") in ("diverged", "failed")


def fail_stale_trials(study: "optuna.Study", trials: list | None = None, min_age_s: float = 60.0) -> list[int]:
    """Mark RUNNING trials whose worker process on this host is gone as failed ('killed') and re-queue them.

    A trial owned by a live process (or another host) is left alone; one without
    a recorded pid counts as stale only after `min_age_s`.
    """
    import datetime as _dt

    from optuna.trial import TrialState

    failed = []
    for t in trials if trials is not None else study.get_trials(deepcopy=False):
        if t.state != TrialState.RUNNING:
            continue
        pid, host = t.user_attrs.get("pid"), t.user_attrs.get("host")
        if pid is not None:
            if host != HOST or pid == os.getpid() or pid_alive(int(pid)):
                continue
        else:
            start = t.datetime_start or _dt.datetime.now()
            if (_dt.datetime.now() - start).total_seconds() < min_age_s:
                continue
        mark_interrupted(study, t, "killed", f"worker process {pid} on {host} ended while the trial ran")
        failed.append(t.number)
    return failed


def mark_interrupted(study: "optuna.Study", t: "optuna.trial.FrozenTrial", status: str, reason: str) -> None:
    """Record an interrupted trial as FAIL with its reason, and queue its point again for the resume."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    st = study._storage  # the public BaseStorage API of the study's own storage
    try:
        st.set_trial_user_attr(t._trial_id, "status", status)
        st.set_trial_user_attr(t._trial_id, "reason", reason)
        if t.state == TrialState.RUNNING:
            st.set_trial_state_values(t._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return  # another process got there first
    setup_paths = None
    attr = study.user_attrs.get("labkit")
    if attr:
        setup_paths = [p["path"] for p in attr["space"]]
    if setup_paths is None or all(p in t.params for p in setup_paths):
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number}, skip_if_exists=False)


def setup_dict_equal(a: SearchSetup, b: SearchSetup) -> bool:
    """Whether two setups describe the same search (so one may resume the other)."""
    return a.comparable() == b.comparable()


__all__ = ["JOURNAL_NAME", "SearchSetup", "default_journal", "describe", "open_storage",
           "storage_url", "load_study", "study_setup", "trial_is_counted", "fail_stale_trials",
           "mark_interrupted", "setup_dict_equal"]
