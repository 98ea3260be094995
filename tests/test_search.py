"""Hyperparameter search: space parsing, samplers, coarse to fine, border warnings, workers, resume, PostgreSQL."""
from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest

from labkit import Config, LabkitError
from labkit.cli.search import write_report
from labkit.search import (Space, border_warnings, create_or_resume, load_study, refine, run_search, sample_points,
                           trial_rows)
from labkit.search.storage import SearchSetup, open_storage, trial_is_counted

ROOT = Path(__file__).resolve().parents[1]


def spirals(tmp_path: Path, **over) -> Config:
    cfg = Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "train.epochs": 2,
                              "reg.label_smoothing": 0.0, "optim.weight_decay": 0.0, "train.threads": 1,
                              "train.out": str(tmp_path / "runs"), "train.test": False, "probe.every": 0})
    return cfg.replace(**over)


# -- the space ---------------------------------------------------------------------------------------------------

def test_parse_kinds_follow_the_config_field_types():
    s = Space.parse(["optim.lr=log:1e-4:1e-1", "model.dropout=0:0.5", "model.width=8:64",
                     "optim.weight_decay=0,1e-5,1e-4", "model.activation=relu,tanh", "reg.flip=true,false"])
    lr, do, w, wd, act, flip = s.params
    assert (lr.kind, lr.log, lr.low, lr.high) == ("float", True, 1e-4, 1e-1)
    assert (do.kind, do.log) == ("float", False)
    assert (w.kind, w.low, w.high) == ("int", 8, 64)
    assert wd.choices == (0.0, 1e-5, 1e-4)
    assert act.choices == ("relu", "tanh") and flip.choices == (True, False)
    assert Space.parse(s.specs()).to_dict() == s.to_dict()  # spec text round-trips


@pytest.mark.parametrize("spec, words", [
    ("optim.lr", ["syntax is PATH=LO:HI", "PATH=log:LO:HI", "PATH=A,B,C"]),
    ("optim.lr=", ["nothing after '='", "syntax"]),
    ("optim.lr=log:1e-4", ["syntax"]),
    ("optim.lr=a:b", ["must be numbers", "syntax"]),
    ("optim.lr=0.1:0.01", ["LO < HI", "LO=0.1", "HI=0.01"]),
    ("optim.lr=0.1:0.1", ["LO < HI"]),
    ("optim.lr=log:0:0.1", ["log range needs LO > 0", "LO=0"]),
    ("optim.learning_rate=log:1e-4:1", ["unknown config path 'optim.learning_rate'", "valid paths are", "optim.lr"]),
    ("model.width=8.5:64", ["integer", "8.5"]),
    ("model.activation=0:1", ["takes choices"]),
    ("schedule.milestones=0.1,0.2", ["list", "cannot be searched"]),
    ("optim.weight_decay=0,,1e-4", ["empty choice"]),
    ("optim.weight_decay=0,0", ["given twice"]),
    ("optim.weight_decay=0,abc", ["cannot read 'abc' as a number"]),
])
def test_every_validation_message(spec, words):
    with pytest.raises(LabkitError) as e:
        Space.parse([spec])
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_space_checks_endpoints_and_names_on_the_base_config():
    with pytest.raises(LabkitError, match="model.dropout=1.0 is out of range"):
        Space.parse(["model.dropout=0:1"], base=Config())
    with pytest.raises(LabkitError, match="unknown activation 'relu6'"):
        Space.parse(["model.activation=relu,relu6"], base=Config())
    with pytest.raises(LabkitError, match="given twice"):
        Space.parse(["optim.lr=0.1,0.2", "optim.lr=log:1e-3:1"])
    with pytest.raises(LabkitError, match="empty"):
        Space.parse([])


def test_grid_covers_exactly_its_points():
    space = Space.parse(["optim.lr=log:1e-4:1e-1", "model.dropout=0:0.5", "optim.weight_decay=0,1e-4"])
    grid = space.grid(budget=18)  # 2 choices x 3 x 3
    assert len(grid["optim.lr"]) == 3 and len(grid["model.dropout"]) == 3
    assert space.grid_size(budget=18) == 18
    pts = sample_points(space, "grid", n=18)
    assert space.grid_size(budget=20) == 18  # a budget between grids gets the biggest grid that fits
    got = {(p["optim.lr"], p["model.dropout"], p["optim.weight_decay"]) for p in pts}
    want = {(a, b, c) for a in grid["optim.lr"] for b in grid["model.dropout"] for c in grid["optim.weight_decay"]}
    assert len(pts) == 18 and got == want
    # log ranges are gridded on the log scale: equal ratios between neighbours
    lr = grid["optim.lr"]
    assert lr[1] / lr[0] == pytest.approx(lr[2] / lr[1], rel=1e-3) == pytest.approx(10.0, rel=1e-3)


def test_log_range_samples_uniformly_in_log_space():
    pts = sample_points(Space.parse(["optim.lr=log:1e-4:1"]), "random", n=400, seed=3)
    decades = [0] * 4
    for p in pts:
        assert 1e-4 <= p["optim.lr"] <= 1
        decades[min(3, int(math.floor(math.log10(p["optim.lr"]) + 4)))] += 1
    assert all(60 <= d <= 140 for d in decades), decades  # a linear range would put ~0.1% below 1e-3
    ints = sample_points(Space.parse(["model.width=8:512"]), "random", n=50)
    assert all(isinstance(p["model.width"], int) for p in ints)


# -- coarse to fine and border warnings ------------------------------------------------------------------------

def _fake_study(points: list[tuple[float, float, float]], space: Space) -> optuna.Study:
    """A study of finished trials (lr, dropout) -> value, made without training."""
    study = create_or_resume(open_storage(None), "fake", SearchSetup(Config(), space, trials=len(points)))
    for lr, do, v in points:
        study.add_trial(optuna.trial.create_trial(params={"optim.lr": lr, "model.dropout": do},
                                                  distributions=space.distributions(), value=v,
                                                  user_attrs={"status": "completed"}))
    return study


def test_refine_narrows_around_the_best():
    space = Space.parse(["optim.lr=log:1e-5:1", "model.dropout=0:0.5"])
    pts = [(1e-5 * 10 ** (5 * i / 19), 0.5 * ((i * 7) % 20) / 19, 0.0) for i in range(20)]
    # score peaks near lr = 1e-2 and dropout 0.1
    pts = [(lr, do, 1.0 - abs(math.log10(lr) + 2) / 5 - abs(do - 0.1)) for lr, do, _ in pts]
    study = _fake_study(pts, space)
    fine = refine(study, top=5)
    top5 = sorted(pts, key=lambda p: -p[2])[:5]
    lr, do = fine["optim.lr"], fine["model.dropout"]
    assert lr.log and lr.low <= min(p[0] for p in top5) and lr.high >= max(p[0] for p in top5)
    assert math.log(lr.high / lr.low) < 0.6 * math.log(1 / 1e-5)  # far narrower on the log scale
    assert lr.low < 1e-2 < lr.high
    assert do.high - do.low < 0.5 and 1e-5 <= lr.low and lr.high <= 1
    with pytest.raises(LabkitError, match="no completed trials"):
        refine(_fake_study([], space))


def test_border_warning_fires_only_at_a_border():
    space = Space.parse(["optim.lr=log:1e-4:1e-1", "model.dropout=0.1:0.5"])
    at_top = _fake_study([(0.09, 0.3, 0.9), (0.001, 0.3, 0.5), (0.01, 0.2, 0.6)], space)
    warns = border_warnings(at_top)
    assert len(warns) == 1 and warns[0].startswith("optim.lr:")
    assert "0.09" in warns[0] and "top 10%" in warns[0] and "widen" in warns[0]
    assert "--space optim.lr=log:0.0001:" in warns[0]
    middle = _fake_study([(0.003, 0.3, 0.9), (0.0002, 0.12, 0.5)], space)
    assert border_warnings(middle) == []
    low_dropout = _fake_study([(0.003, 0.11, 0.9), (0.01, 0.4, 0.5)], space)
    w = border_warnings(low_dropout)
    assert len(w) == 1 and "model.dropout" in w[0] and "bottom 10%" in w[0]
    assert "(at 2% from low to high on a linear scale)" in w[0]  # 0.11 in 0.1..0.5: near the bottom, said so


def test_border_warning_positions_agree_with_the_end_they_name():
    space = Space.parse(["optim.lr=log:0.01292:3.875", "model.dropout=0.1:0.5"])
    low = _fake_study([(0.0162, 0.3, 0.9), (0.5, 0.3, 0.5)], space)  # 4% of the way up on a log scale
    (w,) = border_warnings(low)
    assert "in the bottom 10% of log:0.01292:3.875 (at 4% from low to high on a log scale)" in w
    high = _fake_study([(3.2, 0.3, 0.9), (0.5, 0.3, 0.5)], space)
    (w,) = border_warnings(high)
    assert "in the top 10% of log:0.01292:3.875 (at 97% from low to high on a log scale)" in w
    # a best value at a hard limit (dropout 0) cannot be widened: no warning
    hard = _fake_study([(0.003, 0.0, 0.9)], Space.parse(["optim.lr=log:1e-4:1e-1", "model.dropout=0:0.5"]))
    assert border_warnings(hard) == []


# -- real searches -------------------------------------------------------------------------------------------------

def test_in_process_search_records_runs_failures_and_stops(tmp_path):
    base = spirals(tmp_path, **{"train.epochs": 1, "schedule.name": "constant", "model.norm": "none",
                                "model.width": 32})
    # lr 30..90 on spirals diverges; the study records each as failed with its reason and goes on
    study = run_search(base, Space.parse(["optim.lr=log:30:90"]), trials=2, out=str(tmp_path / "runs"),
                       study="wild")
    rows = trial_rows(study)
    assert len(rows) == 2 and all(r["state"] == "fail" and r["status"] == "diverged" for r in rows)
    assert all("loss became" in r["reason"] and Path(r["run_dir"]).is_dir() for r in rows)
    # a stop request ends the search after the current trial; the rest of the budget is left for a resume
    stop = threading.Event()
    seen = []
    s = run_search(base, Space.parse(["optim.lr=log:1e-3:1e-1"]), trials=5, out=str(tmp_path / "runs"),
                   study="stopme", stop_event=stop, callbacks=[lambda st, t: (seen.append(t.number), stop.set())])
    assert seen == [0] and len(s.trials) == 1 and s.trials[0].state.name == "COMPLETE"
    assert (Path(s.trials[0].user_attrs["run_dir"]) / "metrics.jsonl").exists()


def test_unreachable_storage_is_one_line(tmp_path):
    with pytest.raises(LabkitError) as e:
        run_search(spirals(tmp_path), Space.parse(["optim.lr=log:1e-3:1"]), trials=1,
                   storage="postgresql://nobody@127.0.0.1:9/none")
    assert "cannot reach the study storage postgresql://nobody@127.0.0.1:9/none" in str(e.value)
    assert "\n" not in str(e.value)


def _two_worker_search(tmp_path: Path, storage: str, study: str) -> None:
    base = spirals(tmp_path, **{"data.points": 6000, "train.batch_size": 8, "train.epochs": 1})  # ~1 s trials
    space = Space.parse(["optim.lr=log:1e-3:1", "model.dropout=0:0.5"])
    s = run_search(base, space, sampler="random", trials=6, workers=2, storage=storage, study=study,
                   out=str(tmp_path / "runs"))
    rows = trial_rows(s)
    assert sum(trial_is_counted(t) for t in s.trials) == 6
    pids = {t.user_attrs["pid"] for t in s.trials}
    assert len(pids) == 2 and os.getpid() in pids  # this process is worker 0, one worker process beside it
    assert all(Path(r["run_dir"]).is_dir() for r in rows)
    paths, text = write_report(study, storage, tmp_path / "figs")
    names = {p.name for p in paths}
    assert {f"{study}-scores.png", f"{study}-plane.png", "best-so-far.png"} <= names
    assert all(p.stat().st_size > 5000 for p in paths)
    assert f"study {study}: 6 trials" in text


def test_two_workers_on_the_journal_store(tmp_path):
    _two_worker_search(tmp_path, str(tmp_path / "search.journal"), "tiny")


@pytest.mark.postgres
def test_two_workers_on_postgresql(tmp_path):
    url = os.environ.get("LABKIT_TEST_POSTGRES")
    if not url:
        pytest.skip("set LABKIT_TEST_POSTGRES=postgresql://user@host/db to run against a PostgreSQL server "
                    "(.ci/run starts one)")
    name = f"labkit-test-{uuid.uuid4().hex[:8]}"
    try:
        _two_worker_search(tmp_path, url, name)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=url)
        except KeyError:
            pass  # the test failed before the study was made


@contextlib.contextmanager
def _journal_write_lock(journal: Path):
    """Hold the lock every journal write takes (labkit's storage: an O_EXCL lock file, grace period 10 s).

    While it is held no worker can record anything (a report, a user attribute, a finished trial), so the
    study read under it cannot change until it is released: a RUNNING trial seen there is still running.
    """
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(journal), grace_period=10)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _journal_trials(journal: Path, study: str) -> list:
    """The study's trials; [] while the search has not created the study yet."""
    try:
        return load_study(study, str(journal)).get_trials()
    except LabkitError:
        return []


def test_kill_9_of_a_worker_loses_no_finished_trial_and_rerun_resumes(tmp_path):
    journal, runs = tmp_path / "search.journal", tmp_path / "runs"
    cmd = [sys.executable, "-m", "labkit", "search", "--space", "optim.lr=log:1e-3:1e-1", "--data", "spirals",
           "--model", "mlp", "--points", "4000", "--batch-size", "8", "--epochs", "2", "--label-smoothing", "0",
           "--set", "train.test=false", "--trials", "4", "--workers", "2", "--study", "k", "--runs", str(runs),
           "--storage", str(journal), "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Look at the study only while holding the journal's write lock, and kill while still holding it: the
    # state seen is then the state at the kill (no trial can finish in between), so the victim is mid-trial
    # for sure. A finished trial is there long before the search can end: after the first one, at least
    # 2 more trials of a second or more each remain; the deadline only guards against a search that never
    # starts.
    victim, before = None, {}
    deadline = time.monotonic() + 90
    try:
        while victim is None:
            assert proc.poll() is None, "the search ended before a trial finished while another ran: " + \
                proc.communicate()[0][-2000:]
            assert time.monotonic() < deadline, "no trial finished within 90 s"
            with _journal_write_lock(journal):
                trials = _journal_trials(journal, "k")
                done = {t.number: t.value for t in trials if t.state.name == "COMPLETE"}
                running = [t for t in trials if t.state.name == "RUNNING"]
                # every running trial must already carry its owner (pid, host): a rerun marks a trial of a
                # dead worker killed from those; one caught between its creation and those attributes is
                # only taken as stale after a minute
                owned = all("pid" in t.user_attrs and "host" in t.user_attrs for t in running)
                if done and owned and any("run_dir" in t.user_attrs for t in running):
                    running = [t for t in running if "run_dir" in t.user_attrs]  # its training has started
                    victim, before = running[0], done
                    os.kill(victim.user_attrs["pid"], signal.SIGKILL)  # one worker, mid-trial
                    with contextlib.suppress(ProcessLookupError):  # (the victim may have been the last)
                        os.killpg(proc.pid, signal.SIGKILL)  # then everything else: the search is dead
                    proc.wait(10)
            if victim is None:
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    after_kill = {t.number: t for t in load_study("k", str(journal)).get_trials()}
    assert after_kill[victim.number].state.name == "RUNNING"  # killed mid-trial: nobody recorded its end
    for n, v in before.items():
        assert after_kill[n].state.name == "COMPLETE" and after_kill[n].value == v
    # rerun the same command: the killed trials are marked, their points re-queued, the budget finished
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    final = load_study("k", str(journal)).get_trials()
    for n, v in before.items():
        assert final[n].state.name == "COMPLETE" and final[n].value == v
    killed = [t for t in final if t.user_attrs.get("status") == "killed"]
    assert victim.number in {t.number for t in killed}
    assert {t.number for t in killed} == {n for n, t in after_kill.items() if t.state.name == "RUNNING"}
    retried = [t for t in final if t.user_attrs.get("retry_of") == victim.number]
    assert retried and retried[0].params == victim.params and retried[0].state.name == "COMPLETE"
    assert sum(trial_is_counted(t) for t in final) == 4
    assert not [t for t in final if t.state.name == "RUNNING"]


def test_cli_report_and_refine(tmp_path, capsys):
    from labkit.cli import main

    runs = tmp_path / "runs"
    common = ["--data", "spirals", "--model", "mlp", "--epochs", "1", "--threads", "1", "--runs", str(runs), "--quiet"]
    assert main(["search", "--space", "optim.lr=log:1e-3:1", "--space", "model.dropout=0:0.5", "--trials", "5",
                 "--study", "coarse", *common]) == 0
    assert main(["search", "--refine", "coarse", "--top", "3", "--trials", "2", "--study", "fine", *common]) == 0
    text = capsys.readouterr().out
    assert "refined from coarse (top 3): optim.lr=log:" in text and "study fine: 2 trials" in text
    fine = load_study("fine", str(runs / "search.journal"))
    assert fine.user_attrs["labkit"]["base"]["train"]["epochs"] == 1.0
    assert main(["search", "--report", "coarse,fine", "--figs", str(tmp_path / "figs"), "--runs", str(runs)]) == 0
    assert (tmp_path / "figs" / "coarse-scores.png").exists() and (tmp_path / "figs" / "best-so-far.png").exists()
    capsys.readouterr()
    # the old spelling: --out was the figure folder of --report (the run store then came from --set train.out=)
    assert main(["search", "--report", "coarse", "--out", str(tmp_path / "old"), "--set", f"train.out={runs}"]) == 0
    assert "--out is deprecated here; use --figs" in capsys.readouterr().err
    assert (tmp_path / "old" / "coarse-scores.png").exists()
    assert main(["search", "--space", "optim.lr=1:2:3", *common]) == 2
    assert "syntax is" in capsys.readouterr().err


def test_search_tab_builds_the_space_runs_and_stops(tmp_path):
    from labkit.widgets.search import SearchTab

    tab = SearchTab(spirals(tmp_path), out=str(tmp_path / "runs"))
    assert [r.spec() for r in tab.rows] == ["optim.lr=log:1e-3:1", "model.dropout=0:0.5"]
    row = tab.add_range("optim.weight_decay", "choice", choices="0,1e-4")
    assert tab.space().paths == ["optim.lr", "model.dropout", "optim.weight_decay"]
    row.choices.value = "0,,1"
    tab.start()
    assert "empty choice" in tab.status.value and tab._thread is None  # bad input: a message, no search
    tab._remove(row)
    tab.preview()
    assert tab.compare.value[:4] == b"\x89PNG" and "the grid tries only" in tab.status.value
    tab.trials.value, tab.epochs.value = 3, 1
    tab.start("search")
    tab.wait(60)
    assert "3 finished" in tab.status.value and tab.scores.value[:4] == b"\x89PNG"
    assert "study lab: 3 trials" in tab.table.value


def test_bergstra_table_columns_line_up_at_every_budget():
    from labkit.search import bergstra_demo

    lines = bergstra_demo(budgets=(4, 9, 100), repeats=5).table().splitlines()[1:]
    assert "10x10" in lines[-1] and len({len(line) for line in lines}) == 1  # every row as wide as the header
    ends = lambda line: [m.end() for m in re.finditer(r"\S+", line)]  # noqa: E731  right-aligned columns
    assert all(ends(line) == ends(lines[0]) for line in lines)
