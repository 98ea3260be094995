"""The training loop: initial loss, spirals, a CIFAR run's files, stop, divergence, early stop, determinism, disk full."""
from __future__ import annotations

import errno
import json
import math
import time

import pytest
import torch
import torch.nn.functional as F

from labkit import Config, LabkitError, list_runs, load_run, train
from conftest import cifar_dir
from labkit.config import ModelConfig
from labkit.models import build_model
from labkit.training import evaluate


def test_initial_loss_of_small_init_net_is_ln_10():
    cfg = ModelConfig(kind="mlp", depth=2, width=100, init="small", norm="none")
    model = build_model(cfg, (3, 32, 32), 10, seed=0)
    x = torch.randn(256, 3, 32, 32)
    y = torch.arange(256) % 10
    loss = F.cross_entropy(model(x), y).item()
    assert abs(loss - math.log(10)) < 0.1


def test_spirals_reach_95_percent(spirals_config):
    cfg = spirals_config.replace(**{"train.epochs": 30, "model.depth": 3, "optim.name": "adam", "optim.lr": 0.01,
                                    "schedule.name": "cosine"})
    run = train(cfg)
    assert run.status == "completed"
    assert run.summary["final"]["test_acc"] >= 0.95
    loss, acc = evaluate(run.model, run.data, "test")
    assert acc == pytest.approx(run.summary["final"]["test_acc"])


def test_cifar_one_epoch_writes_every_run_file(cifar_config):
    events = []
    run = train(cifar_config, callbacks=[events.append])
    assert run.status == "completed", run.message
    for f in ("config.json", "metrics.jsonl", "summary.json", "best.pt"):
        assert (run.dir / f).is_file(), f
    assert Config.load(run.dir) == run.config
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["best_epoch"] == 1
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
        assert summary["final"][k] is not None
    assert 0.1 < summary["final"]["test_acc"] < 1.0
    state = torch.load(run.dir / "best.pt", weights_only=True)
    assert set(state) == set(run.model.state_dict())
    rec = load_run(run.dir)
    assert rec.status == "completed" and len(rec.rows("step")) == 1000 // Config().train.batch_size and len(rec.rows("epoch")) == 1
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "end"
    assert [r.id for r in list_runs(cifar_config.train.out)] == [run.id]


def test_stop_keeps_metrics(spirals_config):
    seen = []
    cfg = spirals_config.replace(**{"train.epochs": 2000})
    run = train(cfg, callbacks=[seen.append], background=True)
    deadline = time.time() + 30
    while sum(e.kind == "step" for e in seen) < 5 and time.time() < deadline:
        time.sleep(0.01)
    run.stop()
    run.wait(30)
    assert run.done and run.status == "stopped" and "stopped by request" in run.message
    rec = load_run(run.dir)
    assert rec.status == "stopped"
    assert len(rec.rows("step")) >= 5 and rec.summary["steps"] == len(rec.rows("step"))


def test_huge_lr_diverges_with_a_message(spirals_config):
    cfg = spirals_config.replace(**{"optim.name": "sgd", "optim.lr": 100.0, "schedule.name": "constant",
                                    "model.norm": "none", "model.init": "large"})
    run = train(cfg)
    assert run.status == "diverged"
    assert "lower the learning rate" in run.message and "lower the learning rate (try 10)" in run.message
    assert load_run(run.dir).status == "diverged"


def test_early_stopping(spirals_config):
    # lr so small nothing improves after the first epoch's checkpoint
    cfg = spirals_config.replace(**{"train.epochs": 50, "train.patience": 2, "optim.name": "sgd", "optim.lr": 1e-9,
                                    "schedule.name": "constant", "train.monitor": "val_loss"})
    run = train(cfg)
    assert run.status == "completed"
    assert run.summary.get("early_stopped") is True
    assert "early stop at epoch" in run.message
    assert run.summary["epochs"] < 50 and load_run(run.dir).summary["early_stopped"] is True


def test_same_seed_same_metrics(spirals_config):
    cfg = spirals_config.replace(**{"train.epochs": 2, "model.dropout": 0.1})
    a, b = train(cfg), train(cfg)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert strip(load_run(a.dir).rows("step")) == strip(load_run(b.dir).rows("step"))
    assert strip(load_run(a.dir).rows("epoch")) == strip(load_run(b.dir).rows("epoch"))
    c = train(cfg.replace(**{"train.seed": 1}))
    assert strip(load_run(c.dir).rows("step")) != strip(load_run(a.dir).rows("step"))


def test_disk_full_is_a_plain_error_and_metrics_stay_readable(spirals_config, monkeypatch):
    import labkit.runs as runs

    real_dumps = json.dumps
    count = {"n": 0}

    def dumps(obj, *a, **k):
        if isinstance(obj, dict) and obj.get("kind") == "step":
            count["n"] += 1
            if count["n"] > 10:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_dumps(obj, *a, **k)

    monkeypatch.setattr(runs.json, "dumps", dumps)
    with pytest.raises(LabkitError, match="No space left on device.*metrics written so far are kept"):
        train(spirals_config)
    monkeypatch.setattr(runs.json, "dumps", real_dumps)
    (d,) = list((spirals_config.train.out and __import__("pathlib").Path(spirals_config.train.out)).iterdir())
    rows = load_run(d).rows("step")
    assert len(rows) == 10 and rows[-1]["step"] == 10


def test_precision_is_validated_resolved_and_recorded(spirals_config):
    """bf16 autocast trains and says so in the summary; auto keeps the 2-D sets in fp32; bad names are refused."""
    from labkit.errors import LabkitError
    from labkit.precision import resolve_precision

    with pytest.raises(LabkitError, match="unknown precision 'fp16'; choose one of: auto, fp32, bf16"):
        spirals_config.replace(**{"train.precision": "fp16"}).validate()
    assert resolve_precision(spirals_config) == "fp32"  # auto: tiny MLPs gain nothing from bf16
    run = train(spirals_config.replace(**{"train.precision": "bf16", "train.epochs": 3}))
    assert run.status == "completed" and run.summary["precision"] == "bf16"
    fp32 = train(spirals_config.replace(**{"train.precision": "fp32", "train.epochs": 3}))
    assert fp32.summary["precision"] == "fp32"
    # bfloat16 keeps 8 bits of mantissa: the runs differ, but both learn the spirals past chance
    assert run.summary["final"]["val_acc"] > 0.6 and fp32.summary["final"]["val_acc"] > 0.6
    assert run.summary["final"]["val_loss"] != fp32.summary["final"]["val_loss"]


def test_missing_data_in_the_foreground_leaves_no_failed_run(tmp_path, monkeypatch, run_store):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = Config().replace(**{"data.dataset": "cifar100", "data.download": False, "train.out": str(run_store)})
    with pytest.raises(LabkitError, match="cifar100 not found"):
        train(cfg)
    assert list(run_store.iterdir()) == []
    # in the background the caller is not kept waiting for the data: the failure is the run's, kept with its message
    run = train(cfg, background=True).wait(60)
    assert run.status == "failed" and "cifar100 not found" in run.message
    assert json.loads((run.dir / "summary.json").read_text())["status"] == "failed"


def test_the_whitening_stem_whitens_patches_and_stays_frozen(tmp_path):
    """The convnet's first layer is fitted to the training images: its outputs over 2x2 patches have identity
    covariance (the lectures' whitening, per patch), and training leaves it as fitted."""
    from labkit.models import PatchWhitening

    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 1, 32, 32, generator=g)
    x = torch.cat([base, 0.5 * base + 0.1 * torch.randn(64, 1, 32, 32, generator=g),
                   torch.randn(64, 1, 32, 32, generator=g)], 1)  # correlated channels
    stem = PatchWhitening(3)
    stem.fit_to_data(x)
    with torch.no_grad():
        y = stem(x)[:, :12]  # the first half; the second is its negative
    assert torch.equal(stem(x)[:, 12:], -y)
    cov = torch.cov(y.permute(1, 0, 2, 3).reshape(12, -1))
    # decorrelated, unit variance (eps = 5e-4 added to each eigenvalue shrinks the faintest direction a little)
    assert torch.allclose(cov - torch.diag(cov.diag()), torch.zeros(12, 12), atol=1e-3)
    assert ((cov.diag() > 0.9) & (cov.diag() < 1.0 + 1e-3)).all()
    assert not stem.weight.requires_grad
    cfg = Config().replace(**{"data.dataset": "cifar10", "data.subset": 200, "data.val_size": 0,
                              "train.epochs": 1, "train.threads": 1, "train.test": False, "probe.every": 0,
                              "model.width": 8, "train.out": str(tmp_path)})
    if cifar_dir() is None:
        pytest.skip("CIFAR-10 not found under $LABKIT_DATA")
    run = train(cfg)
    from labkit.training.loop import build_run_model

    fitted = build_run_model(cfg, run.data).features[0]
    assert torch.equal(run.model.features[0].weight, fitted.weight)  # trained 3 steps: the stem is as fitted
    assert not torch.equal(fitted.weight.cpu(), PatchWhitening(3).weight)
