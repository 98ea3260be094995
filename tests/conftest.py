"""Shared fixtures: one torch thread (tests run beside other jobs), a tmp run store, a quick spirals config."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from labkit import Config

# Tiny models run fastest on one thread, and one thread keeps results identical across machines.
torch.set_num_threads(1)


def cifar_dir() -> Path | None:
    """The CIFAR-10 pickle folder under $LABKIT_DATA, if there is one."""
    root = os.environ.get("LABKIT_DATA")
    if root and (Path(root) / "cifar-10-batches-py" / "data_batch_1").is_file():
        return Path(root) / "cifar-10-batches-py"
    return None


needs_cifar = pytest.mark.skipif(cifar_dir() is None, reason="CIFAR-10 not found under $LABKIT_DATA (CI sets LABKIT_DATA=../shared/data)")


@pytest.fixture
def run_store(tmp_path: Path) -> Path:
    """An empty run store directory."""
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def spirals_config(run_store: Path) -> Config:
    """A quick 2-D run: spirals, MLP, 5 epochs, one thread, no probes, into the tmp run store."""
    return Config().replace(**{
        "data.dataset": "spirals", "model.kind": "mlp", "model.width": 64, "train.epochs": 5,
        "reg.label_smoothing": 0.0, "optim.weight_decay": 0.0, "train.out": str(run_store),
        "train.threads": 1, "probe.every": 0, "train.batch_size": 32,
    })


@pytest.fixture
def cifar_config(run_store: Path) -> Config:
    """A 1,000-image CIFAR-10 run, one epoch, narrow convnet."""
    if cifar_dir() is None:
        pytest.skip("CIFAR-10 not found under $LABKIT_DATA (CI sets LABKIT_DATA=../shared/data)")
    return Config().replace(**{
        "data.subset": 1000, "data.val_size": 200, "model.width": 16, "train.epochs": 1,
        "train.out": str(run_store), "train.threads": 1, "probe.every": 0, "train.tta": False,
    })


def tiny_spirals(out, **over) -> Config:
    """A ~1 s spirals run into `out`: 3 epochs of 9 steps, 1 epoch of warmup then onecycle, probes every 5 steps."""
    base = {"data.dataset": "spirals", "model.kind": "mlp", "model.width": 16, "model.depth": 3,
            "train.epochs": 3, "train.batch_size": 64, "data.points": 600, "data.val_size": 200,
            "reg.label_smoothing": 0.0, "optim.weight_decay": 0.0, "train.out": str(out), "train.threads": 1,
            "probe.every": 5, "schedule.warmup_epochs": 1.0}
    base.update(over)
    return Config().replace(**base)
