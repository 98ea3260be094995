"""Hyperparameter search on Optuna: each trial is an ordinary labkit run.

    from labkit import Config
    from labkit.search import Space, run_search, refine, border_warnings
    space = Space.parse(["optim.lr=log:1e-4:1e-1", "model.dropout=0:0.5"])
    study = run_search(base, space, sampler="random", trials=24, workers=2, study="coarse")

Decisions a user should know:
- The objective is the best validation accuracy of the run (maximized); pruning
  (median or Hyperband) sees val_acc after every epoch.
- A trial that diverges or raises is an Optuna FAIL trial with user attributes
  status ("diverged"/"failed") and reason (the run's message); it uses up budget
  and the study goes on. A trial interrupted from outside (worker killed, Stop)
  is FAIL with status "killed"/"stopped" and its point is queued again, so a
  rerun repeats it; it does not use up budget.
- Every trial records its run directory as user attribute run_dir.
- Storage (see search_storage): memory for one in-process worker, a journal file
  under the run store when workers > 1 (and for `labkit search`), any RDB URL.
- Workers are processes: the calling process is worker 0 (already warm), the
  others are `python -m labkit search --worker ...`; each is pinned to its own
  share of the cores (sched_setaffinity) with that many torch threads.
- Rerunning the same search resumes it: finished trials count toward the budget.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..config import Config
from ..errors import LabkitError
from ..events import Event
from .space import PRUNERS, SAMPLERS, Space
from .storage import (SearchSetup, fail_stale_trials, load_study, open_storage, storage_url, study_setup,
                      trial_is_counted)

TrialCallback = Callable[[Any, Any], None]  # Optuna style: fn(study, frozen_trial), after each trial ends
EventCallback = Callable[[int, Event], None]  # fn(trial_number, event), live, in-process workers only

__all__ = ["run_search", "compare_samplers", "sample_points", "core_shares", "create_or_resume", "make_sampler",
           "make_pruner", "TrialFailed", "TrialInterrupted", "worker_main"]


class TrialFailed(Exception):
    """The trial's run diverged or failed; Optuna records it as FAIL and the study goes on."""


class TrialInterrupted(Exception):
    """The search was asked to stop while this trial ran."""


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    # Optuna logs each trial (and a traceback per FAIL) at INFO/WARNING; labkit prints its own lines
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


def core_shares(workers: int) -> list[list[int]]:
    """Split the cores this process may use into `workers` disjoint shares (cycled when workers > cores)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cores = list(range(os.cpu_count() or 1))
    n = len(cores)
    if workers >= n:
        return [[cores[i % n]] for i in range(workers)]
    per = n // workers
    return [cores[i * per:(i + 1) * per] for i in range(workers)]


def make_sampler(setup: SearchSetup, worker: int = 0, workers: int = 1, salt: int = 0) -> Any:
    """The Optuna sampler for a setup; each worker and each resume gets its own seed so points do not repeat."""
    digest = hashlib.sha256(f"{setup.seed}/{worker}/{salt}".encode()).digest()
    return SAMPLERS.get(setup.sampler)(setup, int.from_bytes(digest[:4], "little"), workers)


def make_pruner(setup: SearchSetup) -> Any:
    """The Optuna pruner (on val_acc per epoch) or NopPruner."""
    return PRUNERS.get(setup.pruner or "none")(setup)


def _check_args(sampler: str, trials: int, workers: int, pruner: str | None) -> None:
    SAMPLERS.check(sampler)
    PRUNERS.check(pruner or "none")
    if not isinstance(trials, int) or trials < 1:
        raise LabkitError(f"trials={trials!r}; the budget must be a whole number >= 1")
    if not isinstance(workers, int) or workers < 1:
        raise LabkitError(f"workers={workers!r}; give a whole number >= 1 (at most one per core is fastest)")


def _diff_paths(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_paths(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def create_or_resume(storage: Any, name: str, setup: SearchSetup) -> Any:
    """Create the study, or load it when it exists with the same setup (resume); budget may change."""
    import optuna

    with _quiet_optuna():
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    attr = study.user_attrs.get("labkit")
    if attr:
        old = SearchSetup.from_attr(attr)
        if old.comparable() != setup.comparable():
            differ = _diff_paths(old.comparable(), setup.comparable())
            raise LabkitError(
                f"study {name!r} already exists with a different search ({', '.join(differ)} differ: it has "
                f"space {old.space}, sampler {old.sampler}); rerun with the same flags to resume it, or choose a "
                f"new --study name")
        setup.grid_points = old.grid_points  # the grid is fixed when the study is made
        if old.trials != setup.trials or old.out != setup.out:
            study.set_user_attr("labkit", setup.to_attr())
    else:
        study.set_user_attr("labkit", setup.to_attr())
    return study


def run_search(
    base: Config,
    space: Space,
    *,
    sampler: str = "random",
    trials: int,
    workers: int = 1,
    storage: Any = None,
    study: str = "search",
    pruner: str | None = None,
    out: str = "runs",
    callbacks: Sequence[TrialCallback] = (),
    events: Sequence[EventCallback] = (),
    stop_event: threading.Event | None = None,
    seed: int = 0,
    grid_points: int | None = None,
    progress: bool = False,
) -> Any:
    """Search `space` around `base` with Optuna and return the study; resumes a study of the same name.

    sampler: random, grid (the full grid that fits `trials`, or `grid_points` per
    range axis) or tpe. storage: None (memory; a journal file under `out` when
    workers > 1), a journal file path, an RDB URL or an Optuna storage. callbacks
    run after each trial as fn(study, frozen_trial); events get every training
    event of in-process trials as fn(trial_number, event). stop_event: set it to
    stop (the running trial is re-queued).
    """
    pruner = None if pruner in (None, "", "none") else pruner
    _check_args(sampler, trials, workers, pruner)
    base = base.copy()
    base.train.out = out
    base.validate()
    if workers > 1 and base.train.nproc > 1:  # each worker's trial would start its own data-parallel ranks
        raise LabkitError(f"--workers {workers} with --nproc {base.train.nproc} would train {workers * base.train.nproc} "
                          f"processes at once on {os.cpu_count()} cores; use --workers 1 with --nproc, or "
                          "--nproc 1 with several workers")
    space.check(base)
    if base.data.val_size <= 0:
        raise LabkitError("a search scores trials on the validation split, but data.val_size is 0; "
                          "set --val-size (e.g. 200)")
    if grid_points is None and sampler == "grid":
        grid_points = space.grid_points_per_range(trials)
    setup = SearchSetup(base, space, sampler, trials, pruner, out, seed, grid_points)
    url = storage_url(storage, out, workers)
    st = open_storage(url)
    stop_event = stop_event or threading.Event()
    with _quiet_optuna():
        s = create_or_resume(st, study, setup)
        if workers == 1:
            work(s, setup, worker=0, workers=1, stop_event=stop_event, events=events, callbacks=callbacks,
                 progress=progress)
        else:
            if not isinstance(url, str):
                raise LabkitError("several worker processes need a storage they can all open: a journal file path "
                                  "or a database URL (or None for a journal under `out`)")
            _spawn_workers(s, url, study, workers, stop_event, callbacks, progress, setup, events)
    return s


def compare_samplers(base: Config, space: Space, *, trials: int, samplers: Iterable[str] = ("grid", "random", "tpe"),
                     study: str = "compare", **kwargs: Any) -> dict[str, Any]:
    """One study per sampler at the same budget (the grid's size when grid is among them): {sampler: study}."""
    samplers = list(samplers)
    budget = space.grid_size(budget=trials) if "grid" in samplers else trials
    return {s: run_search(base, space, sampler=s, trials=budget, study=f"{study}-{s}", **kwargs) for s in samplers}


def sample_points(space: Space, sampler: str = "random", n: int = 16, seed: int = 0) -> list[dict[str, Any]]:
    """The first `n` points a sampler would try (no training): the same suggest path as real trials."""
    import optuna

    setup = SearchSetup(Config(), space, sampler, n, None, "runs", seed,
                        space.grid_points_per_range(n) if sampler == "grid" else None)
    with _quiet_optuna():
        s = optuna.create_study(direction="maximize", sampler=make_sampler(setup))
        s.optimize(lambda t: (space.suggest(t), 0.0)[1], n_trials=min(n, setup.budget()))
    return [dict(t.params) for t in s.trials]


# -- one worker ------------------------------------------------------------------------------------------------

def _left(study: Any, setup: SearchSetup) -> int:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if fail_stale_trials(study, trials):
        trials = study.get_trials(deepcopy=False)
    done = sum(1 for t in trials if trial_is_counted(t))
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return setup.budget() - done - running


def trial_line(t: Any, worker: int | None = None) -> str:
    """One printed line per finished trial: number, state, score, params, run dir or reason."""
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    who = f"[w{worker}] " if worker is not None else ""
    state = t.user_attrs.get("status") or t.state.name.lower()
    score = f"val_acc {t.value:.4f}" if t.value is not None else ""
    tail = t.user_attrs.get("run_dir", "") if state in ("completed", "pruned") else t.user_attrs.get("reason", "")
    return f"{who}trial {t.number:>3} {state:<9} {score:<14} {params}  {tail}".rstrip()


def work(study: Any, setup: SearchSetup, *, worker: int = 0, workers: int = 1, stop_event: threading.Event,
         events: Sequence[EventCallback] = (), callbacks: Sequence[TrialCallback] = (), progress: bool = False,
         threads: int | None = None) -> None:
    """Run trials of `study` in this process until the budget is used up or `stop_event` is set."""
    import optuna

    salt = len(study.get_trials(deepcopy=False))
    sampler, pruner = make_sampler(setup, worker, workers, salt), make_pruner(setup)
    s = optuna.load_study(study_name=study.study_name, storage=study._storage, sampler=sampler, pruner=pruner)
    last: dict[str, Any] = {}

    def objective(trial: Any) -> float:
        return _run_trial(trial, s.study_name, setup, stop_event, events, threads, last)

    def report(st: Any, ft: Any) -> None:
        if progress:
            print(trial_line(ft, worker if workers > 1 else None), flush=True)

    while not stop_event.is_set() and _left(s, setup) > 0:
        last.clear()
        s.optimize(objective, n_trials=1, catch=(TrialFailed, TrialInterrupted), callbacks=[report, *callbacks])
        if last.get("interrupted") is not None:  # Stop pressed mid-trial: queue the point for the resume
            t = s.trials[last["interrupted"]]
            if all(p in t.params for p in setup.space.paths):
                s.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number}, skip_if_exists=False)


def _run_trial(trial: Any, study_name: str, setup: SearchSetup, stop_event: threading.Event,
               events: Sequence[EventCallback], threads: int | None, last: dict[str, Any]) -> float:
    import optuna

    from .storage import HOST
    from ..training import default_threads, train

    for k, v in (("pid", os.getpid()), ("host", HOST)):
        trial.set_user_attr(k, v)
    values = setup.space.suggest(trial)
    cfg = setup.space.apply(setup.base, values)
    cfg.train.out = setup.out
    cfg.train.name = f"{study_name}-{trial.number}"
    if threads:  # a worker's share of the cores; never more threads than cores
        cfg.train.threads = min(cfg.train.threads or default_threads(cfg), threads)
    holder: dict[str, Any] = {"run": None, "pruned": None, "val": []}

    def on_event(ev: Event) -> None:
        for cb in events:
            cb(trial.number, ev)
        run = holder["run"]
        if stop_event.is_set() and run is not None:
            run.stop()
        if ev.kind == "epoch" and ev.val_acc is not None:
            holder["val"].append((ev.epoch, ev.val_acc, ev.val_loss))
            trial.report(ev.val_acc, ev.epoch)
            if setup.pruner and trial.should_prune():
                holder["pruned"] = ev.epoch
                if run is not None:
                    run.stop()

    try:
        run = train(cfg, callbacks=[on_event], background=True)
    except LabkitError as e:  # the sampled point makes an invalid config (e.g. min_lr above lr)
        trial.set_user_attr("status", "failed")
        trial.set_user_attr("reason", str(e))
        raise TrialFailed(str(e)) from None
    holder["run"] = run
    trial.set_user_attr("run_dir", str(run.dir))
    while not run.done:
        run.wait(0.25)
        if stop_event.is_set() or holder["pruned"] is not None:
            run.stop()
    run.wait()
    s = run.summary
    trial.set_user_attr("seconds", s.get("seconds"))
    trial.set_user_attr("epochs", s.get("epochs"))
    if holder["pruned"] is not None:
        e = holder["pruned"]
        best = max(v for _, v, _ in holder["val"])
        trial.set_user_attr("status", "pruned")
        trial.set_user_attr("reason", f"pruned by the {setup.pruner} pruner after epoch {e} (val_acc {best:.4f})")
        raise optuna.TrialPruned(f"pruned after epoch {e}")
    if run.status == "stopped":
        trial.set_user_attr("status", "stopped")
        trial.set_user_attr("reason", run.message or "the search was stopped")
        last["interrupted"] = trial.number
        raise TrialInterrupted(run.message)
    if run.status != "completed" or not holder["val"]:
        trial.set_user_attr("status", run.status if run.status in ("diverged", "failed") else "failed")
        trial.set_user_attr("reason", run.message or "no validation score was reported")
        raise TrialFailed(run.message)
    best_epoch, best_acc, best_loss = max(holder["val"], key=lambda r: r[1])
    final = s.get("final", {})
    trial.set_user_attr("status", "completed")
    trial.set_user_attr("best_epoch", best_epoch)
    trial.set_user_attr("val_loss", best_loss)
    if final.get("test_acc") is not None:
        trial.set_user_attr("test_acc", final["test_acc"])
    trial.set_user_attr("train_seconds", s.get("train_seconds"))
    return float(best_acc)


# -- several worker processes ------------------------------------------------------------------------------------

def _spawn_workers(study: Any, url: str, name: str, workers: int, stop_event: threading.Event,
                   callbacks: Sequence[TrialCallback], progress: bool, setup: SearchSetup,
                   events: Sequence[EventCallback] = ()) -> None:
    """Worker 0 is this process (already warm: no start-up cost); workers 1.. are `labkit search --worker`."""
    import labkit

    shares = core_shares(workers)
    root = str(Path(labkit.__file__).resolve().parent.parent)
    procs = []
    for i, cpus in enumerate(shares[1:], start=1):
        cmd = [sys.executable, "-m", "labkit", "search", "--worker", "--storage", url, "--study", name,
               "--worker-index", str(i), "--worker-count", str(workers), "--cpus", ",".join(map(str, cpus))]
        if not progress:
            cmd.append("--quiet")
        n = str(len(cpus))
        env = dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n,
                   PYTHONPATH=root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
        procs.append(subprocess.Popen(cmd, env=env))
    seen: set[int] = set()
    finished = threading.Event()

    def poll_callbacks() -> None:
        if not callbacks:
            return
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                for cb in callbacks:
                    cb(study, t)

    def monitor() -> None:  # forwards Stop to the worker processes and reports every finished trial
        signalled = False
        while not finished.wait(0.3):
            if stop_event.is_set() and not signalled:
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                signalled = True
            try:
                poll_callbacks()
            except Exception:
                pass  # a callback's error must not stop the search; the final poll raises it

    watcher = threading.Thread(target=monitor, daemon=True, name="labkit-search-monitor")
    watcher.start()
    # pin this thread (and the training threads it starts, which inherit the mask) to share 0
    old_mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if old_mask is not None:
            os.sched_setaffinity(0, shares[0])
        work(study, setup, worker=0, workers=workers, stop_event=stop_event, events=events, progress=progress,
             threads=len(shares[0]))
        while any(p.poll() is None for p in procs):
            time.sleep(0.2)
    except BaseException:
        stop_event.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise
    finally:
        finished.set()
        watcher.join()
        if old_mask is not None:
            os.sched_setaffinity(0, old_mask)
    poll_callbacks()
    codes = [p.returncode for p in procs]
    died = [(i, c) for i, c in enumerate(codes, start=1) if c not in (0, None)]
    if died and progress:
        for i, c in died:
            how = f"signal {-c}" if c < 0 else f"exit code {c}"
            print(f"labkit: worker {i} ended with {how}; its running trial is re-queued and rerun on resume",
                  file=sys.stderr, flush=True)


def worker_main(storage: str, study: str, index: int, count: int, cpus: list[int] | None, progress: bool) -> int:
    """Entry of a worker process: pin to its cores, then run trials until the study's budget is used up."""
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except (AttributeError, OSError):
            pass  # not on Linux: the thread count below still keeps the share
    threads = len(cpus) if cpus else None
    if threads:
        import torch

        torch.set_num_threads(threads)
    stop_event = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with _quiet_optuna():
        s = load_study(study, storage)
        setup = study_setup(s)
        work(s, setup, worker=index, workers=count, stop_event=stop_event, progress=progress, threads=threads)
    return 0
