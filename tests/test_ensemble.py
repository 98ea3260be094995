"""Ensembles and weight averaging: EMA against a hand-computed average, update_bn, SWA under SWALR, snapshots at
cycle ends, ensembles of runs (one run scores as itself), their figures, the lab's panel, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import SWALR

from conftest import tiny_spirals
from labkit import Config, LabkitError, RunLog, schedule_curve, train
from labkit.cli import main
from labkit.ensemble import ensemble
from labkit.training import EMAHook, TrainHook, ema_decay, recompute_bn
from labkit.training.averaging import bn_batches
from labkit.training.hooks import state_of


class Weights(TrainHook):
    """Records the model's parameters after every step (and the step's LR)."""

    def __init__(self):
        self.params: list[dict[str, torch.Tensor]] = []
        self.lrs: list[float] = []

    def after_step(self, ctx):
        self.params.append({n: p.detach().clone() for n, p in ctx.model.named_parameters()})
        self.lrs.append(ctx.optimizer.param_groups[0]["lr"])


def spirals(out: Path, **over) -> Config:
    """6 epochs of 9 steps on spirals, a batch-norm MLP (the averages need their own BN statistics)."""
    base = {"probe.every": 0, "train.epochs": 6, "model.norm": "batch", "schedule.warmup_epochs": 0.0,
            "data.val_size": 200, "model.depth": 2}
    base.update(over)
    return tiny_spirals(out, **base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs shared by the tests below: EMA + snapshots (with hand-checkable hooks), a plain twin, SWA, xor."""
    out = tmp_path_factory.mktemp("ens") / "runs"
    rec, hand = Weights(), EMAHook(0.8, warmup=0.0, bn="average", name="e0")
    a = train(spirals(out, **{"train.ema": 0.9, "train.ema_warmup": 0.75, "train.snapshots": 3}),
              hooks=[rec, hand])
    twin = train(spirals(out, **{"train.snapshots": 3}))  # "a" without the averages
    plain = train(spirals(out, **{"train.seed": 1}))
    swa_rec = Weights()
    swa = train(spirals(out, **{"train.swa_start": 3, "train.swa_lr": 0.02}), hooks=[swa_rec])
    other = train(spirals(out, **{"data.dataset": "xor"}))
    return {"a": a, "rec": rec, "hand": hand, "twin": twin, "plain": plain, "swa": swa, "swa_rec": swa_rec, "xor": other,
            "out": out}


def test_ema_equals_a_hand_computed_average(runs):
    rec = runs["rec"]
    for name, decay, warmup in (("ema", 0.9, 0.75), ("e0", 0.8, 0.0)):
        avg = {n: p.clone() for n, p in rec.params[0].items()}  # the first update copies the weights
        for k, params in enumerate(rec.params[1:], start=1):
            d = min(decay, 1 - (1 + k) ** -warmup) if warmup else decay
            for n in avg:
                avg[n] = d * avg[n] + (1 - d) * params[n]
        saved = torch.load(runs["a"].dir / "ema.pt", weights_only=True) if name == "ema" else None
        got = dict(runs["hand"].avg.module.named_parameters()) if name == "e0" else saved
        for n in avg:
            torch.testing.assert_close(got[n], avg[n], rtol=1e-5, atol=1e-6)
    assert ema_decay(0.999, 1.0, 3) == pytest.approx(0.75)  # power 1: the plain mean of the 4 weights so far
    assert ema_decay(0.999, 0.75, 10 ** 6) == 0.999 and ema_decay(0.9, 0.0, 1) == 0.9
    s = runs["a"].summary
    assert s["ema"]["updates"] == s["steps"] == len(rec.params) and s["ema"]["checkpoint"] == "ema.pt"
    assert {"ema_test_acc", "ema_test_loss", "test_acc"} <= set(s["final"])
    # averaging reads the weights and never changes them: the raw run is the plain run's, number for number
    twin = runs["twin"].summary
    assert (s["final"]["test_acc"], s["final"]["val_acc"]) == (twin["final"]["test_acc"], twin["final"]["val_acc"])
    assert s["snapshots"]["ensemble_test_acc"] == twin["snapshots"]["ensemble_test_acc"]
    epochs = RunLog.load(runs["a"].dir).epochs
    assert all(set(e.weights) == {"ema", "e0"} for e in epochs)  # validated beside the raw weights every epoch


def test_update_bn_recomputes_the_averaged_models_statistics(runs):
    hand, run = runs["hand"], runs["a"]
    bns = [m for m in hand.avg.module.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    before = bns[0].running_mean.clone()  # bn="average": the EMA of the raw model's running buffers
    data = run.data
    recompute_bn(hand.avg, data, run.config)
    after = bns[0].running_mean
    assert not torch.allclose(before, after, atol=1e-4)
    # the 600 training points fit one batch: the first BN's statistics are exactly those of its inputs
    x = torch.cat(list(bn_batches(data, 1000)))
    assert len(x) == len(data.train_y) == 600
    with torch.no_grad():
        z = hand.avg.module.net[:2](x)  # Flatten, Linear: the first BatchNorm's input
    torch.testing.assert_close(after, z.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bns[0].running_var, z.var(0), rtol=1e-3, atol=1e-5)
    # the run's own EMA (bn="recompute") keeps recomputed statistics, not the raw model's buffers
    saved = torch.load(run.dir / "ema.pt", weights_only=True)
    raw = state_of(run.model)
    key = next(k for k in saved if k.endswith("running_mean"))
    assert not torch.allclose(saved[key], raw[key], atol=1e-4)


def test_swa_averages_epoch_ends_under_swalr(runs):
    run, rec = runs["swa"], runs["swa_rec"]
    s, spe = run.summary["swa"], 9
    assert s["steps"] == [36, 45, 54] and s["updates"] == 3 and run.summary["final"]["swa_test_acc"] > 0.5
    mean = {n: sum(rec.params[k - 1][n] for k in s["steps"]) / 3 for n in rec.params[0]}
    got = torch.load(run.dir / "swa.pt", weights_only=True)
    for n in mean:
        torch.testing.assert_close(got[n], mean[n], rtol=1e-5, atol=1e-6)
    # the rates from the start are torch's SWALR (one epoch of cosine anneal), and the preview is what ran
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=schedule_curve(run.config.replace(
        **{"train.swa_start": 0}), 600)[27])
    sched, want = SWALR(opt, swa_lr=0.02, anneal_epochs=spe), []
    for _ in range(27):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(rec.lrs[27:], want, rtol=1e-9)
    assert schedule_curve(run.config, 600) == pytest.approx(rec.lrs, rel=1e-12)
    epochs = RunLog.load(run.dir).epochs  # SWA is validated from its first average on
    assert [("swa" in e.weights) for e in epochs] == [False] * 3 + [True] * 3


def test_snapshots_saved_at_cycle_ends_and_scored_as_an_ensemble(runs):
    run, rec = runs["a"], runs["rec"]
    s = run.summary["snapshots"]
    assert s["steps"] == [18, 36, 54] and [m["file"] for m in s["members"]] == [f"snapshot_{k}.pt" for k in (1, 2, 3)]
    lrs = rec.lrs
    for end in s["steps"][:-1]:  # the rate is at its floor at a cycle's last step and restarts at the peak after it
        assert lrs[end - 1] < 0.02 * max(lrs) and lrs[end] == pytest.approx(max(lrs))
    for m in s["members"]:
        state = torch.load(run.dir / m["file"], weights_only=True)
        for n, p in rec.params[m["step"] - 1].items():
            torch.testing.assert_close(state[n], p)
    assert schedule_curve(run.config, 600) == pytest.approx(lrs, rel=1e-12)  # the preview is the run's
    assert s["members"][-1]["test_acc"] == run.summary["final"]["test_acc"] or run.summary["best_epoch"] != 6
    assert 0.5 < s["ensemble_test_acc"] <= 1 and s["mean_test_acc"] == pytest.approx(
        np.mean([m["test_acc"] for m in s["members"]]))
    assert RunLog.load(run.dir).snapshot_steps == [18, 36, 54]


def test_an_ensemble_of_one_run_is_the_run_and_two_runs_are_scored_together(runs):
    one = ensemble([runs["plain"].dir])
    final = runs["plain"].summary["final"]
    assert one.acc == final["test_acc"] == one.members[0].acc and one.loss == pytest.approx(final["test_loss"],
                                                                                          rel=1e-5)
    two = ensemble([runs["a"].dir, runs["plain"].dir])
    assert len(two.members) == 2 and two.mean_acc == pytest.approx(np.mean([m.acc for m in two.members]))
    table = two.table()
    assert "mean of the members" in table and "best member" in table and "ensemble" in table
    assert ensemble([runs["a"].dir], weights="ema").acc == runs["a"].summary["final"]["ema_test_acc"]


def test_figures_of_members_ensemble_and_averaged_weights(runs, tmp_path):
    from labkit.plots import averaging_figure, ensemble_figure, learning_curves, run_figures, snapshot_schedule

    log = RunLog.load(runs["a"].dir)
    labels = [t.get_text() for t in averaging_figure(log).axes[0].get_yticklabels()]
    assert labels[0].startswith("raw") and any(lab.startswith("EMA") for lab in labels)
    assert sum(lab.startswith("snapshot ") for lab in labels) == 4  # three snapshots and their ensemble
    fig = snapshot_schedule(log)
    assert len([ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == ":"]) >= 3
    lc = learning_curves({"a": log})
    assert any("EMA" in t.get_text() for t in lc.axes[1].get_legend().get_texts())
    r = ensemble([runs["a"].dir, runs["plain"].dir])
    fig = ensemble_figure(r)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-2:] == ["mean of 2", "ensemble"]
    assert {"averaging", "snapshot_schedule"} <= set(run_figures(runs["a"].dir))


def test_cli_ensemble_prints_members_mean_best_and_ensemble(runs, capsys, tmp_path):
    a, b = str(runs["a"].dir), runs["plain"].id  # a directory, and a run id looked up in --runs
    assert main(["ensemble", a, b, "--runs", str(runs["out"]), "--figs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("%") >= 5 and "ensemble" in out and (tmp_path / "ensemble.png").stat().st_size > 0
    assert main(["ensemble", a, b, "--runs", str(runs["out"]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in printed["members"]] == [runs["a"].id, runs["plain"].id] and 0 < printed["ensemble_acc"] <= 1


@pytest.mark.parametrize("argv, says", [
    (["train", "--ema", "1.5"], "train.ema=1.5 is out of range; allowed: [0, 1)"),
    (["train", "--ema", "-1"], "train.ema=-1.0 is out of range"),
    (["train", "--snapshots", "0"], "train.snapshots=0 is out of range; allowed: [1, 100]"),
    (["train", "--swa-start", "20", "--epochs", "5"], "train.swa_start=20 is not before the end of training"),
    (["train", "--snapshots", "3", "--swa-start", "2"], "both set the learning rate"),
])
def test_bad_averaging_flags_give_one_line_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err and ("fix:" in err or "use one" in err), err


def test_ensembles_of_different_data_or_non_runs_are_refused(runs, tmp_path, capsys):
    cases = [([runs["a"].dir, runs["xor"].dir], "different data"),
             ([tmp_path], "is not a labkit run directory"),
             ([tmp_path / "missing"], "is not a directory"),
             ([runs["plain"].dir], "has no ema.pt")]
    for dirs, says in cases:
        extra = ["--weights", "ema"] if says.startswith("has no") else []
        assert main(["ensemble", *map(str, dirs), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and says in err, err
    with pytest.raises(LabkitError, match="different class sets|different data"):
        ensemble([runs["a"].dir, runs["xor"].dir])


def test_runs_trained_on_different_classes_are_refused(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog", "frog"]):  # a folder of 3 classes, 12 tiny images each
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(12):
            px = rng.integers(0, 80, (8, 8, 3), dtype=np.uint8) + 60 * c
            Image.fromarray(px.astype(np.uint8)).save(tmp_path / "imgs" / name / f"{i}.png")
    base = Config().replace(**{"data.dataset": "folder", "data.folder": str(tmp_path / "imgs"), "data.subset": 0,
                               "model.width": 4,
                               "model.depth": 1, "train.epochs": 1, "train.batch_size": 8, "train.threads": 1,
                               "probe.every": 0, "train.tta": False, "train.out": str(tmp_path / "runs")})
    every = train(base)
    two = train(base.replace(**{"data.classes": "cat,dog"}))
    assert main(["ensemble", str(every.dir), str(two.dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different class sets" in err and "cat, dog, frog" in err, err
    assert ensemble([every.dir]).acc == every.summary["final"]["test_acc"]  # an image run scores as itself too


def test_the_lab_scores_runs_in_its_ensemble_panel(runs):
    from labkit.fields import FIELDS, SECTIONS
    from labkit.widgets.ensemble import EnsemblePanel

    assert "Averaging" in SECTIONS and {p for p, f in FIELDS.items() if f.section == "Averaging"} == {
        "train.ema", "train.ema_warmup", "train.swa_start", "train.swa_lr", "train.avg_bn", "train.snapshots"}
    panel = EnsemblePanel(out=str(runs["out"]))
    panel.refresh()
    ids = {runs["a"].id, runs["plain"].id}
    panel.pick.value = tuple(ids)
    panel.score(wait=True)
    assert panel.result is not None and {m.id for m in panel.result.members} == ids
    assert "ensemble" in panel.table.value and panel.figure.value
    panel.pick.value = (runs["a"].id, runs["xor"].id)
    panel.score(wait=True)
    assert panel.result is None and "different data" in panel.note.value
    panel.one.value = runs["a"].id  # one run: raw vs EMA vs snapshots, and its snapshot schedule
    assert panel.averaging.value and panel.schedule.value
