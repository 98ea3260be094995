"""The `labkit` command: train, --config/--set, runs, data, python -m labkit, and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import Config, list_runs
from labkit.cli import build_parser, main

QUICK = ["--data", "spirals", "--model", "mlp", "--epochs", "2", "--threads", "1", "--probe-every", "0",
         "--label-smoothing", "0", "--quiet"]


def test_train_then_config_and_set_then_runs(run_store, capsys):
    assert main(["train", *QUICK, "--runs", str(run_store), "--lr", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "files:" in out
    (first,) = list_runs(run_store)
    assert first.config.optim.lr == 0.02 and first.config.data.dataset == "spirals"
    assert main(["train", "--config", str(first.dir / "config.json"), "--set", "optim.lr=0.05", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    runs = list_runs(run_store)
    assert len(runs) == 2
    second = [r for r in runs if r.id != first.id][0]
    assert second.config == first.config.replace(**{"optim.lr": 0.05})
    assert main(["runs", "--runs", str(run_store)]) == 0
    table = capsys.readouterr().out
    assert first.id in table and second.id in table and "completed" in table
    assert main(["runs", "--compare", str(first.dir), str(second.dir)]) == 0
    table = capsys.readouterr().out
    assert "optim.lr" in table
    assert first.id in table and second.id in table  # whole ids: cut from the left they could not be told apart


def test_data_command_lists_directories(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "d"))
    assert main(["data", "--root", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "r") in out and str(tmp_path / "d") in out and "absent" in out and "cifar10" in out


@pytest.mark.parametrize("argv,expect", [
    (["train", "--lr", "-1"], "optim.lr=-1.0 is out of range"),
    (["train", "--activation", "relu6"], "unknown activation 'relu6'; choose one of:"),
    (["train", "--batch-size", "big"], "cannot read 'big' as an integer"),
    (["train", "--set", "optim.speed=3"], "unknown config path 'optim.speed'"),
    (["train", "--set", "optim.lr"], "expected PATH=VALUE"),
    (["train", "--subset", "60000"], "larger than the 49000 training images"),
    (["train", "--dropout", "1.5"], "model.dropout=1.5 is out of range; allowed: [0, 1); fix: --dropout X with X in "
                                    "[0, 1), e.g. 0 (the default)"),
    (["train", "--set", "schedule.pct_start=abc"], "schedule.pct_start: cannot read 'abc' as a number; allowed: "
                                                   "(0, 1); fix: --set schedule.pct_start=X with X in (0, 1), e.g. 0.25"),
    (["train", "--batch-size", "big"], "allowed: [1, 65536]; fix: --batch-size X"),
    # the lab issue's command-line family: each was a wrong number, a silent run or a traceback
    (["train", "--val-size", "100000"], "data.val_size=100000 leaves no training images: cifar10 has 50000"),
    (["train", "--subset", "3"], "data.subset=3 is fewer than the 10 classes of cifar10"),
    (["search", "--space", "optim.lr=log:1e-3:1e-1", "--data", "spirals", "--workers", "0"], "--workers 0; give"),
    (["search", "--space", "optim.lr=log:1e-3:1e-1", "--data", "spirals", "--trials", "0"], "--trials 0; the budget"),
])
def test_bad_values_exit_2_with_one_line(argv, expect, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit: error:") and expect in err
    assert "Traceback" not in err


def test_python_m_labkit_in_a_subprocess(run_store):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    ok = subprocess.run([sys.executable, "-m", "labkit", "train", *QUICK, "--runs", str(run_store)],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "completed" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "labkit", "train", "--optimizer", "adamax"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "unknown optimizer 'adamax'" in bad.stderr


# -- one flag convention: --runs is the run store, --figs a figure folder; the old --out still works -----------------

def test_runs_names_the_run_store_in_every_command(tmp_path):
    store = str(tmp_path / "store")
    parse = build_parser().parse_args
    spirals = ["--data", "spirals", "--model", "mlp"]
    assert parse(["train", *spirals, "--runs", store]).cfg_train__out == store
    assert parse(["runs", "--runs", store]).runs == store
    assert parse(["search", "--space", "optim.lr=log:1e-3:1", "--runs", store]).cfg_train__out == store
    assert parse(["recipe", "--runs", store]).cfg_train__out == store
    assert parse(["diagnose", "x", "--runs", store]).runs == store
    assert parse(["lab", "--runs", store]).runs == store
    figs = str(tmp_path / "figs")
    assert parse(["plot", "run", "--figs", figs]).figs == figs
    assert parse(["demo", "init", "--figs", figs]).figs == figs
    assert parse(["check", "--figs", figs]).figs == figs
    assert parse(["search", "--report", "s", "--figs", figs]).figs == figs
    assert parse(["demo", "init"]).figs == "demos"  # the default stands when the old spelling is not used


def test_old_out_still_works_with_a_note(run_store, tmp_path, capsys):
    assert main(["train", *QUICK, "--out", str(run_store)]) == 0
    captured = capsys.readouterr()
    assert "--out is deprecated here; use --runs (the run store)" in captured.err
    (run,) = list_runs(run_store)
    assert main(["runs", "--out", str(run_store)]) == 0
    captured = capsys.readouterr()
    assert run.id in captured.out and "use --runs" in captured.err
    assert main(["plot", str(run.dir), "--out", str(tmp_path / "png")]) == 0
    assert "use --figs (the figure folder)" in capsys.readouterr().err
    assert (tmp_path / "png" / "learning_curves.png").exists()


# -- your own images: the whole folder unless --subset says otherwise ----------------------------------------------

def image_folder(root: Path, classes: int = 3, per_class: int = 20) -> Path:
    """An ImageFolder of small PNGs (60 by default)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def test_a_folder_of_images_trains_on_all_of_them(tmp_path, run_store, capsys):
    imgs = image_folder(tmp_path / "imgs")
    flags = ["--data", "folder", "--folder", str(imgs), "--epochs", "1", "--width", "8", "--threads", "1",
             "--probe-every", "0", "--quiet", "--runs", str(run_store)]
    assert main(["train", *flags, "--json"]) == 0, capsys.readouterr().err
    (run,) = list_runs(run_store)
    assert run.config.data.subset == 0  # 60 images: 12 test, 6 validation, 42 trained on
    assert run.rows("start")[0]["train_size"] == 42
    assert main(["train", *flags, "--subset", "20"]) == 0  # told otherwise: 20 of them
    assert sorted(r.config.data.subset for r in list_runs(run_store)) == [0, 20]


def test_missing_data_is_one_line_and_leaves_no_run(tmp_path, monkeypatch, run_store, capsys):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    missing = ["--data", "cifar100", "--set", "data.download=false", "--runs", str(run_store)]
    assert main(["train", *missing]) == 2
    err = capsys.readouterr().err
    assert "cifar100 not found" in err and str(tmp_path / "nowhere") in err
    # a search or recipe would leave one failed run per trial: they look before the first trial too
    assert main(["search", "--space", "optim.lr=log:1e-3:1", "--trials", "2", *missing]) == 2
    assert main(["recipe", "--center-lr", "0.1", *missing]) == 2
    assert capsys.readouterr().err.count("cifar100 not found") == 2
    assert [p.name for p in run_store.iterdir()] in ([], ["search.journal"])


def test_a_directory_as_search_storage_is_one_line(tmp_path, capsys):
    for argv in (["search", "--space", "optim.lr=log:1e-3:1e-1", "--data", "spirals", "--model", "mlp", "--storage",
                  str(tmp_path)],
                 ["search", "--report", "s", "--storage", str(tmp_path)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "is a directory; give a journal file in it, e.g. --storage" in captured.err
        assert "Traceback" not in captured.err and "searching" not in captured.out


def test_runs_table_shows_how_far_a_killed_run_got(run_store, capsys):
    assert main(["train", *QUICK, "--epochs", "3", "--runs", str(run_store)]) == 0
    (run,) = list_runs(run_store)
    # what a kill -9 leaves: metrics written line by line, summary.json still "running" with a dead pid
    (run.dir / "summary.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345}))
    capsys.readouterr()
    assert main(["runs", "--runs", str(run_store)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(run.id))
    status, epochs = row.split()[1:3]
    assert status == "killed" and float(epochs) == 3.0, row  # it was "-": the end summary never came


def test_the_progress_bar_ends_on_the_last_epochs_validation():
    """The last epoch's validation has no step after it: the bar must show it, not the epoch before's."""
    import io

    from labkit.events import EndEvent, EpochEvent, StartEvent, StepEvent
    from labkit.training.progress import ProgressBar

    out = io.StringIO()
    bar = ProgressBar(file=out, mininterval=0)
    bar(StartEvent("r", "d", 2, 1, 10, 2, 5))
    for step, val in ((1, 0.5), (2, 0.75)):
        bar(StepEvent(step, float(step), 0.7, 0.5, 0.1, 0.0))
        bar(EpochEvent(step, step, 0.7, 0.5, 0.6, val, 0.1, 0.0, True))
    bar(EndEvent("completed", "done"))
    last = out.getvalue().split("\r")[-1]
    assert "val 0.750" in last and "ep 2.0" in last, last
