"""Training at scale: data-parallel runs through torchrun, the linear scaling rule, ghost batch norm, the device.

One test launches real processes (2 workers on loopback, a spirals MLP, one epoch); everything else runs in
this process on tiny data.
"""
from __future__ import annotations

import json
import socket

import pytest
import torch
from torch import nn

from conftest import needs_cifar
from labkit import Config
from labkit.cli import main
from labkit.data.pipeline import TrainBatches
from labkit.data.sets import Data
from labkit.models import GhostBatchNorm
from labkit.schedules import REFERENCE_BATCH, make_schedule, peak_lr
from labkit.training import train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    return {k: v for k, v in state.items() if "running" not in k and v.is_floating_point()}


# -- data parallel ---------------------------------------------------------------------------------------------------
def test_two_processes_on_loopback_write_one_run_that_equals_one_process(spirals_config, run_store, capsys):
    """2 ranks at global batch 64 = 1 process whose batch norm sees 32-example groups: gradients are averaged."""
    args = ["train", "--data", "spirals", "--model", "mlp", "--width", "16", "--epochs", "1", "--batch-size", "64",
            "--points", "512", "--probe-every", "5", "--threads", "1", "--runs", str(run_store), "--quiet",
            "--nproc", "2", "--device", "cpu", "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    assert main(args) == 0, capsys.readouterr()
    runs = [d for d in run_store.iterdir() if d.is_dir()]
    assert len(runs) == 1  # one ordinary run, written by rank 0
    d = runs[0]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert Config.load(d).train.nproc == 2
    kinds = [json.loads(line)["kind"] for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert kinds[0] == "start" and kinds.count("step") == 8 and kinds.count("epoch") == 1 and kinds[-1] == "end"
    assert (d / "best.pt").exists() and (d / "probes.jsonl").stat().st_size > 0
    assert {json.loads((d / f"rank{r}.json").read_text())["status"] for r in (0, 1)} == {"completed"}
    one = train(Config.load(d).replace(**{"train.nproc": 1, "model.bn_group": 32, "train.out": str(run_store / "one")}))
    two_w, one_w = _weights(d / "best.pt"), _weights(one.dir / "best.pt")
    assert two_w.keys() == one_w.keys()
    for k in two_w:
        torch.testing.assert_close(two_w[k], one_w[k], rtol=1e-4, atol=1e-5)


def _images(n: int = 48, classes: int = 4) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    empty = x[:0]
    return Data("toy", "image", [str(c) for c in range(classes)], x, y, empty, y[:0], empty, y[:0],
                torch.full((3,), 0.5), torch.full((3,), 0.25))


def test_ranks_take_shards_of_the_same_augmented_batch():
    """Every rank draws the same permutation and augmentation; together the shards are the one-process batch."""
    data = _images()
    reg = Config().reg
    reg.crop, reg.cutout, reg.mixup = 2, 3, 0.4
    whole = list(TrainBatches(data, reg, 16, seed=5).epoch())
    shards = [list(TrainBatches(data, reg, 16, seed=5, rank=r, world=2).epoch()) for r in range(2)]
    assert len(whole) == len(shards[0]) == 3
    for i, (x, t, y) in enumerate(whole):
        for j, part in enumerate((x, t, y)):
            torch.testing.assert_close(torch.cat([shards[0][i][j], shards[1][i][j]]), part)
    with pytest.raises(ValueError, match="equal shard"):
        TrainBatches(data, reg, 15, seed=5, rank=0, world=2)


def test_class_order_groups_each_batch_by_label():
    data = _images()
    for x, _, y in TrainBatches(data, Config().reg, 16, seed=1, order="class").epoch():
        assert torch.equal(y, y.sort().values)


def test_threads_per_process_never_oversubscribe():
    from labkit.training.replicas import SOLO, Group

    g = Group(0, 2, 0, 2, torch.device("cpu"), "gloo")
    assert [g.threads(n) for n in (1, 2, 5)] == [1, 1, 2] and SOLO.threads(2) == 2


def test_a_killed_or_failing_worker_is_named_in_one_line(tmp_path):
    from labkit.training.launch import failure_message

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"kind": "step", "step": 7, "epoch": 0.5}) + "\n")
    killed = {"failures": {"1": {"pid": 4242, "exitcode": -9, "signal": "SIGKILL"}}}
    ranks = {0: {"rank": 0, "status": "failed", "message": "RuntimeError: Connection reset by peer", "time": 2.0}}
    msg = failure_message(tmp_path, killed, ranks, 1, 2, tmp_path / "launch.log")
    assert "rank 1 of 2 (pid 4242) was killed by SIGKILL" in msg and "step 7" in msg and "kept" in msg
    ranks[1] = {"rank": 1, "status": "failed", "message": "ValueError: bad shard\nmore", "time": 1.0}
    msg = failure_message(tmp_path, {"failures": {"1": {"exitcode": 1}}}, ranks, 1, 2, tmp_path / "launch.log")
    assert msg.startswith("worker rank 1 of 2 failed at step 7 (epoch 0.50): ValueError: bad shard;") and "\n" not in msg


def test_events_come_back_from_their_lines():
    from labkit.events import EpochEvent
    from labkit.training.launch import event_from_dict

    e = EpochEvent(1, 10, 0.5, 0.8, 0.6, 0.7, 0.1, 1.0, True)
    assert event_from_dict(e.to_dict()) == e and event_from_dict({"kind": "nonsense"}) is None


# -- the linear scaling rule -----------------------------------------------------------------------------------------
def test_linear_rule_scales_the_peak_and_leaves_warmup_alone():
    base = Config().replace(**{"optim.lr": 0.1, "train.batch_size": 1024, "schedule.name": "cosine",
                               "schedule.warmup_epochs": 2.0, "train.epochs": 8.0})
    ruled = base.replace(**{"train.scale_lr": "linear"})
    assert REFERENCE_BATCH == 128 and peak_lr(base) == 0.1 and peak_lr(ruled) == pytest.approx(0.8)
    assert peak_lr(ruled.replace(**{"train.batch_size": 64})) == pytest.approx(0.05)
    plain, scaled = make_schedule(base, 10240), make_schedule(ruled, 10240)
    assert plain.warmup == scaled.warmup == 20
    assert max(scaled.curve()) == pytest.approx(0.8) and scaled(0) == pytest.approx(8 * plain(0))


def test_help_names_the_reference_batch():
    from labkit.fields import FIELDS

    assert "batch/128" in FIELDS["train.scale_lr"].help and "128 is the reference batch" in FIELDS["train.scale_lr"].help


# -- ghost batch norm ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [True, False])
def test_ghost_bn_with_the_whole_batch_is_batch_norm(conv):
    torch.manual_seed(0)
    shape = (8, 4, 5, 5) if conv else (8, 4)
    bn, ghost = (nn.BatchNorm2d(4) if conv else nn.BatchNorm1d(4)), GhostBatchNorm(4, 8, conv)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    ghost.load_state_dict(bn.state_dict())
    x = torch.randn(shape) * 3 + 1
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = bn(xa), ghost(xb)
    torch.testing.assert_close(yb, ya)
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(ghost, name), getattr(bn, name))
    ya.square().sum().backward()
    yb.square().sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-5)
    # smaller groups: each chunk normalised on its own (a remainder joins the last chunk)
    for group, parts in ((2, [2, 2, 2, 2]), (3, [3, 5])):
        ref = type(bn)(4)
        out = GhostBatchNorm(4, group, conv)(x)
        torch.testing.assert_close(out, torch.cat([ref(c) for c in x.split(parts)]))
    ghost.eval()
    bn.eval()
    torch.testing.assert_close(ghost(x), bn(x))  # eval: the running statistics, as batch norm


def test_bn_group_equal_to_the_batch_trains_as_plain_batch_norm(spirals_config):
    cfg = spirals_config.replace(**{"train.epochs": 1, "train.test": False})
    plain = train(cfg)
    ghost = train(cfg.replace(**{"model.bn_group": cfg.train.batch_size}))
    a, b = torch.load(plain.dir / "best.pt", weights_only=True), torch.load(ghost.dir / "best.pt", weights_only=True)
    for k in a:  # the same arithmetic up to summation order: ~1e-6 apart after an epoch at lr 0.3
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


# -- bad input: one line, exit 2 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, says", [
    (["--nproc", "0"], "train.nproc=0 is out of range"),
    (["--bn-group", "5"], "model.bn_group=5 does not divide --batch-size 64"),
    (["--bn-group", "24", "--nproc", "2"], "does not divide the batch per process (64 / 2 = 32)"),
    (["--scale-lr", "bogus"], "unknown scale_lr 'bogus'; choose one of: none, linear"),
    (["--nproc", "3"], "does not split evenly over --nproc 3"),
    (["--nproc", "2", "--optimizer", "lbfgs"], "lbfgs re-evaluates"),
    pytest.param(["--device", "cuda"], "torch sees no CUDA GPU", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_scale_settings_are_one_line_and_exit_2(flags, says, capsys, tmp_path):
    code = main(["train", "--data", "spirals", "--model", "mlp", "--runs", str(tmp_path), "--device", "cpu", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_several_machines_need_node_0s_address(capsys, tmp_path):
    assert main(["train", "--data", "spirals", "--model", "mlp", "--nnodes", "2", "--runs", str(tmp_path)]) == 2
    assert "needs --master-addr HOST and --master-port PORT" in capsys.readouterr().err


# -- demos and figures -----------------------------------------------------------------------------------------------
def test_large_batch_demo_trains_four_arms_and_reuses_them(tmp_path):
    from labkit.demos import large_batch_demo, large_batch_rows
    from labkit.plots import large_batch

    base = Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "model.width": 16, "data.points": 512,
                               "train.threads": 1})
    r = large_batch_demo(str(tmp_path), base=base, epochs=2, small=8, large=256, lr=0.05, warmup=1)
    assert r["large"] == 64 and r["asked_large"] == 256  # 512 points keep 8 steps per epoch up to batch 64
    peaks = [a["peak"] for a in r["arms"]]
    assert peaks == pytest.approx([0.05, 0.05, 0.4, 0.4])
    assert [a["steps"] for a in r["arms"]] == [128, 16, 16, 16]  # equal epochs: 8x fewer steps
    for a in r["arms"]:  # the rate each run used is the one the table says
        assert max(a["lr"]) == pytest.approx(a["peak"], rel=1e-3)
    assert len(large_batch_rows(r)) == 5
    again = large_batch_demo(str(tmp_path), base=base, epochs=2, small=8, large=256, lr=0.05, warmup=1)
    assert all(a["cached"] for a in again["arms"])
    assert len(large_batch(r).axes) == 4


def test_model_split_balances_work_and_draws(tmp_path, capsys):
    from labkit.demos import model_split

    s = model_split(devices=2)
    assert s["device"][0] == 0 and s["device"][-1] == 1 and sorted(s["device"]) == s["device"]
    assert len(s["cuts"]) == 1 and s["cuts"][0]["floats"] > 0
    work = [sum(b["macs"] for b, d in zip(s["blocks"], s["device"]) if d == k) for k in (0, 1)]
    assert 0.3 < work[0] / sum(work) < 0.7
    assert main(["demo", "model-parallel", "--figs", str(tmp_path)]) == 0
    assert (tmp_path / "model_parallel.png").stat().st_size > 10_000


# -- the device ------------------------------------------------------------------------------------------------------
def test_auto_device_is_cpu_without_cuda_and_data_moves():
    from labkit.precision import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    data = _images()
    assert data.to("cpu") is data


@cuda
def test_gpu_batches_equal_cpu_batches():
    data = _images()
    reg = Config().reg
    reg.crop, reg.cutout, reg.mixup = 2, 3, 0.4
    cpu = list(TrainBatches(data, reg, 16, seed=3).epoch())
    gpu = list(TrainBatches(data.to("cuda"), reg, 16, seed=3).epoch())
    for a, b in zip(cpu, gpu):
        assert b[0].is_cuda
        for u, v in zip(a, b):
            torch.testing.assert_close(v.cpu(), u)


@cuda
def test_gpu_run_trains_on_the_gpu(spirals_config):
    run = train(spirals_config.replace(**{"train.device": "cuda", "train.epochs": 2, "model.bn_group": 16}))
    assert run.status == "completed" and run.summary["device"].startswith("cuda")
    assert next(run.model.parameters()).is_cuda


@cuda
@needs_cifar
def test_gpu_image_run_uses_bf16_autocast(cifar_config):
    run = train(cifar_config.replace(**{"train.device": "cuda"}))
    assert run.summary["device"].startswith("cuda")
    assert run.summary["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")


def test_a_search_refuses_several_workers_each_starting_data_parallel_ranks(tmp_path, capsys):
    """--workers 2 x --nproc 2 would run 4 training processes on a 2-core machine: one line, exit 2, no trial."""
    argv = ["search", "--space", "optim.lr=log:1e-3:1", "--data", "spirals", "--model", "mlp", "--trials", "2",
            "--runs", str(tmp_path / "runs")]
    assert main([*argv, "--nproc", "2", "--device", "cpu", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers 2 with --nproc 2 would train 4 processes" in err
    assert not list((tmp_path / "runs").glob("*/config.json"))  # no trial started
