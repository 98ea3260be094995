"""The `labkit` command: train, --config/--set, runs, data, python -m labkit, and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import Config, list_runs
from labkit.cli import main

QUICK = ["--data", "spirals", "--model", "mlp", "--epochs", "2", "--threads", "1", "--probe-every", "0",
         "--label-smoothing", "0", "--quiet"]


def test_train_then_config_and_set_then_runs(run_store, capsys):
    assert main(["train", *QUICK, "--out", str(run_store), "--lr", "0.02"]) == 0
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
    assert main(["runs", "--out", str(run_store)]) == 0
    table = capsys.readouterr().out
    assert first.id in table and second.id in table and "completed" in table
    assert main(["runs", "--compare", str(first.dir), str(second.dir)]) == 0
    assert "optim.lr" in capsys.readouterr().out


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
])
def test_bad_values_exit_2_with_one_line(argv, expect, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit: error:") and expect in err
    assert "Traceback" not in err


def test_python_m_labkit_in_a_subprocess(run_store):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    ok = subprocess.run([sys.executable, "-m", "labkit", "train", *QUICK, "--out", str(run_store)],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "completed" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "labkit", "train", "--optimizer", "adamax"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "unknown optimizer 'adamax'" in bad.stderr
