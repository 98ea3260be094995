"""Diagnosis: constructed failures give the right finding and not the wrong ones; stored, partial and live runs; CLI; panel."""
from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path

import pytest

from labkit import Config
from labkit.cli import main
from labkit.diagnosis import LiveDiagnosis, diagnose, diagnose_run, has_alarms, report_text, unit_symmetry
from labkit.diagnosis.thresholds import OVERFIT_GAP
from labkit.errors import LabkitError
from labkit.probe_history import read_probes
from labkit.runs import read_metrics
from labkit.training import train

from conftest import needs_cifar

# findings that blame the learning rate / the loss curve, and those that blame the init
LR_CODES = {"lr_too_low", "lr_too_high", "diverged"}
INIT_CODES = {"symmetry", "saturated_units", "activation_collapse", "bad_init_plateau", "vanishing_gradients"}
# advice that makes a deep sigmoid stack with vanishing gradients worse
GROW = ("model.width", "model.depth")


def codes(findings) -> set[str]:
    return {f.code for f in findings if f.code != "not_judged"}


def not_judged(findings) -> set[str]:
    return {f.values.get("check") for f in findings if f.code == "not_judged"}


def spirals(root: Path, **overrides) -> Config:
    """A 2-D run of 310 steps (10 epochs of 31 batches) with probes every 10 steps."""
    return Config().replace(**{
        "data.dataset": "spirals", "model.kind": "mlp", "model.width": 64, "train.epochs": 10,
        "reg.label_smoothing": 0.0, "optim.weight_decay": 0.0, "train.out": str(root), "train.threads": 1,
        "probe.every": 10, "train.batch_size": 32, "train.test": False, **overrides})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("diag_runs")


@pytest.fixture(scope="module")
def runs(store):
    """The constructed failures, trained once for the module (each under a second on spirals)."""
    cases = {
        "healthy": {"optim.name": "adam", "optim.lr": 0.01, "schedule.name": "cosine"},
        "lr_high": {"optim.lr": 10.0, "schedule.name": "constant"},
        "lr_low": {"optim.lr": 1e-7, "schedule.name": "constant"},
        "zeros": {"model.init": "zeros"},
        "sigmoid": {"model.depth": 10, "model.activation": "sigmoid", "model.init": "large", "model.norm": "none"},
        # the lectures' canonical failure: a deep sigmoid stack with N(0, 0.01) weights
        "sigmoid_small": {"model.depth": 10, "model.activation": "sigmoid", "model.init": "small", "model.norm": "none"},
        "no_probes": {"optim.name": "adam", "optim.lr": 0.01, "probe.every": 0, "train.epochs": 3},
    }
    return {name: train(spirals(store, **{"train.name": name, **o})) for name, o in cases.items()}


# -- constructed failures -------------------------------------------------------------------------------
def test_lr_ten_is_too_high_and_diverges(runs):
    run = runs["lr_high"]
    found = diagnose_run(run.dir)
    assert run.status == "diverged"
    assert {"diverged", "lr_too_high"} <= codes(found)
    assert not codes(found) & ({"lr_too_low", "update_ratio_low", "overfitting", "underfitting", "dead_units"} | INIT_CODES)
    div = next(f for f in found if f.code == "diverged")
    assert div.severity == "alarm" and div.fix == {"optim.lr": 1.0} and div.plot == "learning_curves"
    assert "lower the learning rate to 1 (a tenth)" in div.suggestion and "--" not in div.suggestion
    assert "loss became" in div.evidence and "lr 10" in div.evidence
    assert "after_divergence" in not_judged(found)  # the rest is said to be unjudgeable, not guessed


def test_a_too_high_lr_that_kills_relus_is_not_blamed_on_the_init(store):
    """`labkit train --data spirals --model mlp --lr 10 --epochs 5`: no NaN, but the last hidden layer dies.

    Its activation std falls to 0 with depth, yet step 0 was healthy: the finding is dead units and too-large
    updates, never "collapse: init too small".
    """
    run = train(Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "optim.lr": 10.0,
                                    "train.epochs": 5, "probe.every": 10, "train.threads": 1,
                                    "train.out": str(store), "train.name": "dies"}))
    found = diagnose_run(run.dir)
    assert run.status == "completed"
    assert {"dead_units", "update_ratio_high"} <= codes(found)
    assert not codes(found) & INIT_CODES
    assert "underfitting" not in codes(found)  # the dead layer caps accuracy: not "train longer"


def test_lr_1e7_is_too_low(runs):
    found = diagnose_run(runs["lr_low"].dir)
    low = next(f for f in found if f.code == "lr_too_low")
    assert low.severity == "alarm"
    assert abs(low.values["change"]) < 0.10 and low.values["lr"] == pytest.approx(1e-7)
    assert "1e-07" in low.evidence and "step" in low.evidence and low.fix["optim.lr"] >= 1e-4
    assert "labkit check" in low.suggestion
    # the probes agree (ratio ~1e-7, not ~1e-3), and say so inside the one finding: one cause, one advice
    assert low.values["update_ratio"] < 1e-5 and "update/weight ratio" in low.evidence
    assert "update_ratio_low" not in codes(found)
    advised = {f.fix["optim.lr"] for f in found if "optim.lr" in f.fix}
    assert advised == {low.fix["optim.lr"]}
    assert not codes(found) & ({"lr_too_high", "diverged", "overfitting", "dead_units"} | INIT_CODES)


def test_zero_init_is_symmetry_not_a_low_lr(runs):
    found = diagnose_run(runs["zeros"].dir)
    sym = next(f for f in found if f.code == "symmetry")
    assert sym.severity == "alarm" and sym.fix == {"model.init": "kaiming"}  # the run's activation is relu
    assert sym.values["zero_weights"]  # from the probes: weight tensors of norm 0
    same = sym.values["identical_layers"]  # from the model rebuilt from best.pt: every unit gives the same output
    assert same and all(v["distinct"] == 1 and v["units"] == 64 for v in same.values())
    assert not codes(found) & {"lr_too_low", "update_ratio_low", "dead_units", "activation_collapse", "underfitting",
                               "lr_too_high", "diverged"}


def test_symmetry_from_the_model_alone_without_probes(store):
    run = train(spirals(store, **{"model.init": "zeros", "probe.every": 0, "train.epochs": 2}))
    found = diagnose_run(run.dir)
    assert "symmetry" in codes(found) and "probes" in not_judged(found)
    # and the unit comparison itself: a random init has distinct units
    from labkit.data import load_data
    from labkit.models import build_model

    cfg = spirals(store)
    data = load_data(cfg.data, 0)
    res = unit_symmetry(build_model(cfg.model, data.input_shape, data.num_classes, seed=0), data.to_input(data.train_x[:64]))
    # every unit that fires is its own (silent ReLUs all output 0, so they count as one)
    assert "weights" not in res and all(v["distinct"] == v["units"] - v["zero"] + (v["zero"] > 0) for v in res.values())


def test_deep_sigmoid_with_large_init_saturates(runs):
    found = diagnose_run(runs["sigmoid"].dir)
    sat = next(f for f in found if f.code == "saturated_units")
    assert sat.severity == "alarm" and sat.values["when"] == "init" and sat.values["median"] > 0.2
    assert sat.plot == "activations_first" and sat.fix == {"model.init": "xavier"}
    assert not codes(found) & {"lr_too_low", "lr_too_high", "diverged", "symmetry", "dead_units"}


def test_small_init_collapses_across_depth(store):
    run = train(spirals(store, **{"model.depth": 6, "model.init": "small", "model.norm": "none",
                                  "model.activation": "tanh", "train.epochs": 3}))
    found = diagnose_run(run.dir)
    col = next(f for f in found if f.code == "activation_collapse")
    stds = list(col.values["stds"].values())
    assert col.values["ratio"] < 0.1 and stds[-1] < stds[0] and "->" in col.evidence
    assert not codes(found) & {"lr_too_low", "update_ratio_low", "symmetry", "lr_too_high"}


def _vanishing_not_underfitting(found, config) -> None:
    """The canonical deep-sigmoid failure: vanishing gradients and collapse, never "a bigger model"."""
    van = next(f for f in found if f.code == "vanishing_gradients")
    assert van.severity == "alarm" and van.plot == "gradients"
    grads = list(van.values["grads"].values())
    assert len(grads) == 10 and grads[0] < 1e-6 * grads[-1] and van.values["per_layer"] < 0.1
    assert "->" in van.evidence and "input side first" in van.evidence and "not a bigger model" in van.suggestion
    assert van.fix == {"model.activation": "relu", "model.init": "kaiming"}  # sigmoid: even Xavier loses 1e-7
    assert {"model.norm": "batch"} in [x.changes for x in van.fixes]
    assert next(f for f in found if f.code == "activation_collapse").values["narrow"] >= 5
    assert "underfitting" not in codes(found)
    for f in found:  # nothing visible suggests a wider or deeper model
        for fix in f.fixes:
            for path in GROW:
                assert fix.changes.get(path, 0) <= config.get(path), (f.code, fix.changes)


def test_deep_sigmoid_with_small_init_has_vanishing_gradients(runs):
    run = runs["sigmoid_small"]
    _vanishing_not_underfitting(diagnose_run(run.dir), run.config)


@needs_cifar
def test_canonical_cifar_sigmoid_stack_is_vanishing_gradients_not_underfitting(cifar_config):
    """`labkit train --subset 2000 --model mlp --depth 10 --width 128 --activation sigmoid --init small --norm none`,
    in 3 epochs instead of 6. Without the checks inside the network it reads as plain underfitting."""
    from labkit.diagnosis import FINDINGS, Context, run_findings
    from labkit.diagnosis.rows import RunRows
    from labkit.runlog import RunLog

    cfg = cifar_config.replace(**{"data.subset": 2000, "data.val_size": 500, "model.kind": "mlp", "model.depth": 10,
                                  "model.width": 128, "model.activation": "sigmoid", "model.init": "small",
                                  "model.norm": "none", "train.epochs": 3, "probe.every": 10, "train.test": False})
    run = train(cfg)
    assert run.status == "completed"
    found = diagnose_run(run.dir)
    _vanishing_not_underfitting(found, cfg)
    log = RunLog.load(run.dir)
    outside = [c for c in FINDINGS.checks() if c.name not in ("vanishing_gradients", "activation_collapse")]
    blind = run_findings(Context(RunRows(log, cfg), log.probes, cfg), outside)
    assert "underfitting" in codes(blind)  # what the report said before: "try a bigger model"


@needs_cifar
def test_tiny_subset_without_augmentation_overfits(cifar_config):
    cfg = cifar_config.replace(**{
        "data.subset": 500, "data.val_size": 500, "model.kind": "mlp", "model.width": 256, "model.depth": 2,
        "reg.flip": False, "reg.crop": 0, "reg.label_smoothing": 0.0, "optim.name": "adam", "optim.lr": 1e-3,
        "optim.weight_decay": 0.0, "schedule.name": "constant", "train.epochs": 20, "train.batch_size": 50,
        "probe.every": 50, "train.test": False})
    found = diagnose_run(train(cfg).dir)
    over = next(f for f in found if f.code == "overfitting")
    assert over.values["gap"] > OVERFIT_GAP and over.values["train_acc"] > 0.9
    changes = [f.changes for f in over.fixes]
    assert {"optim.weight_decay": 5e-4} in changes and {"reg.flip": True, "reg.crop": 4} in changes
    assert {"data.subset": 2000} in changes
    assert not codes(found) & {"underfitting", "lr_too_low", "lr_too_high", "diverged"}


@pytest.mark.parametrize("case, code, first", [
    ("lr_high", "diverged", {"optim.lr": 1.0}),  # lr 10 -> a tenth
    ("lr_high", "lr_too_high", {"optim.lr": 1.0}),
    ("zeros", "symmetry", {"model.init": "kaiming"}),  # a ReLU network: He init
    ("sigmoid", "saturated_units", {"model.init": "xavier"}),  # a sigmoid network: Xavier init
])
def test_canonical_fixes_are_config_changes(runs, case, code, first):
    run = runs[case]
    f = next(f for f in diagnose_run(run.dir) if f.code == code)
    assert f.fix == first and f.to_dict()["fix"] == first
    assert "--" not in f.suggestion  # words and numbers; flags are the CLI's rendering
    for fix in f.fixes:
        assert fix.reason and any(run.config.get(p) != v for p, v in fix.changes.items())  # each one changes something
        run.config.replace(**fix.changes).validate()  # and is a valid setting
    if case == "sigmoid":  # norm none in that run: batch norm and ReLU + He are the alternatives
        assert [x.changes for x in f.fixes[1:]] == [{"model.norm": "batch"},
                                                   {"model.activation": "relu", "model.init": "kaiming"}]
    if case == "lr_high":  # the run already has batch norm: that fix is not offered again
        assert {"model.norm": "batch"} not in [x.changes for x in f.fixes]
        assert {"schedule.warmup_epochs": 1.0} in [x.changes for x in f.fixes]


def test_a_too_low_lr_is_raised_toward_a_moving_update_ratio(runs):
    run = runs["lr_low"]
    for f in diagnose_run(run.dir):
        if f.code in ("lr_too_low", "update_ratio_low"):
            assert set(f.fix) == {"optim.lr"} and 1e-4 <= f.fix["optim.lr"] <= 0.1  # from 1e-7: 1e3x or more
            run.config.replace(**f.fix).validate()


def test_healthy_run_has_no_alarms(runs):
    found = diagnose_run(runs["healthy"].dir)
    assert runs["healthy"].status == "completed"
    assert not has_alarms(found)
    assert [f for f in found if f.severity == "warn"] == []
    assert "no alarms" in report_text(found)


# -- constructed metric rows: curves the checks must read ------------------------------------------------------
def _rows(losses, epochs=(), classes=2, lr=0.1, end="completed"):
    rows = [{"kind": "start", "classes": classes, "total_steps": len(losses), "steps_per_epoch": 50}]
    rows += [{"kind": "step", "step": i + 1, "epoch": (i + 1) / 50, "loss": v, "acc": 0.5, "lr": lr}
             for i, v in enumerate(losses)]
    rows += [{"kind": "epoch", "epoch": i + 1, "step": 50 * (i + 1), "train_loss": tl, "train_acc": ta,
              "val_loss": vl, "val_acc": va, "lr": lr} for i, (tl, ta, vl, va) in enumerate(epochs)]
    if end:
        rows.append({"kind": "end", "status": end, "message": "", "summary": {}})
    return rows


def test_plateau_then_sudden_drop_is_bad_init():
    losses = [0.693 + 0.005 * math.sin(i) for i in range(200)] + [0.693 * (1 - 0.02 * i) for i in range(30)]
    losses += [0.25] * 170
    found = diagnose(_rows(losses))
    plateau = next(f for f in found if f.code == "bad_init_plateau")
    assert plateau.values["plateau_steps"] >= 150 and plateau.fix == {"model.init": "kaiming"}
    assert {"model.init": "xavier"} in [f.changes for f in plateau.fixes]  # no config: both inits are offered
    assert not codes(found) & LR_CODES
    # the same shape while the LR warms up is the schedule, not the init
    warm = _rows(losses)
    for r in warm:
        if r["kind"] == "step":
            r["lr"] = 0.1 * min(1.0, r["step"] / 230)
    assert "bad_init_plateau" not in codes(diagnose(warm))


def test_gap_verdicts_from_epoch_rows():
    falling = [2.3 * 0.99**i for i in range(100)]
    over = [(1.0 - 0.1 * i, 0.5 + 0.1 * i, 1.2 + 0.1 * max(0, i - 1), 0.5) for i in range(5)]
    f = next(f for f in diagnose(_rows(falling, over, classes=10)) if f.code == "overfitting")
    assert f.severity == "alarm" and f.values["gap"] == pytest.approx(0.35)
    under = [(2.0, 0.25, 2.0, 0.24), (1.99, 0.26, 1.99, 0.25), (1.98, 0.26, 1.98, 0.25)]
    found = diagnose(_rows(falling, under, classes=10))
    u = next(f for f in found if f.code == "underfitting")
    assert u.severity == "warn" and "bigger model" in u.suggestion and "10.0%" in u.evidence
    good = [(0.5, 0.85, 0.55, 0.83), (0.4, 0.88, 0.5, 0.85)]
    assert not codes(diagnose(_rows(falling, good, classes=10))) & {"overfitting", "underfitting"}
    short = diagnose(_rows(falling, over[:1], classes=10))
    assert "generalization" in not_judged(short) and not codes(short) & {"overfitting", "underfitting"}


def test_rising_loss_without_nan_is_lr_too_high():
    found = diagnose(_rows([0.7 + 0.02 * i for i in range(100)], lr=3.0))
    high = next(f for f in found if f.code == "lr_too_high")
    assert high.severity == "alarm" and high.fix == {"optim.lr": 0.3} and "diverged" not in codes(found)


def _snapshots(dead, ratio, steps=(0, 25, 50, 75, 100)):
    """Probe snapshots of a 3-layer ReLU MLP: `dead` fraction per layer, `ratio` update/weight per weight tensor."""
    from labkit.probe_history import ProbeHistory

    snaps = [{"step": s, "epoch": s / 50,
              "layers": {f"net.{3 * k}": {"activation": "relu", "mean": 0.3, "std": 0.5, "dead": d}
                         for k, d in enumerate(dead, 1)},
              "params": {f"net.{3 * k - 2}.weight": {"norm": 5.0, "grad_norm": 0.1, "update_ratio": ratio, "ndim": 2}
                         for k in range(1, 4)}} for s in steps]
    return ProbeHistory(snaps)


def test_dead_units_and_update_ratios_from_probe_snapshots():
    falling = [0.7 * 0.99**i for i in range(100)]
    found = diagnose(_rows(falling), _snapshots([0.0, 0.6, 0.95], 1e-3))
    dead = next(f for f in found if f.code == "dead_units")
    assert dead.severity == "alarm" and set(dead.values["dead"]) == {"net.6", "net.9"} and "95%" in dead.evidence
    assert not codes(found) & {"update_ratio_high", "update_ratio_low"}
    assert "dead_units" not in codes(diagnose(_rows(falling), _snapshots([0.0, 0.1, 0.3], 1e-3)))
    high = next(f for f in diagnose(_rows(falling), _snapshots([0.0] * 3, 0.1)) if f.code == "update_ratio_high")
    assert high.severity == "warn" and high.values["ratio"] == pytest.approx(0.1) and high.fix == {"optim.lr": 0.001}
    low = next(f for f in diagnose(_rows(falling), _snapshots([0.0] * 3, 1e-8)) if f.code == "update_ratio_low")
    assert low.severity == "alarm" and low.plot == "gradients"


# -- the registry of finding checks ---------------------------------------------------------------------------
@pytest.fixture
def register():
    """Register finding checks for one test; they are removed afterwards, whatever happens."""
    from labkit.diagnosis import FINDINGS, finding

    names: list[str] = []

    def add(name, **kw):
        def deco(fn):
            finding(name, **kw)(fn)
            names.append(name)
            return fn
        return deco

    yield add
    for name in names:
        if name in FINDINGS:
            FINDINGS.remove(name)


FLAT = [0.693 + 0.001 * math.sin(i) for i in range(100)]  # 100 steps at ln 2: lr_too_low (no probes: no ratio)


def test_a_registered_finding_runs_and_hides_what_it_explains(register):
    from labkit.diagnosis import FINDINGS, Explains, Finding, Fix

    assert "lr_too_low" in codes(diagnose(_rows(FLAT)))
    seen = []

    @register("toy_cause", codes={"toy_cause"}, explains=[Explains({"lr_too_low"})])
    def toy(ctx):
        seen.append(ctx.has("lr_too_low"))  # checks registered later see what ran before them, hidden or not
        return Finding("toy_cause", "warn", "Toy cause", "the loss is flat because of the toy", "remove the toy",
                       "learning_curves", fixes=[Fix({"optim.lr": 0.5}, "a toy's fix")])

    assert FINDINGS.names()[-1] == "toy_cause"
    found = diagnose(_rows(FLAT))
    assert "toy_cause" in codes(found) and "lr_too_low" not in codes(found) and seen == [True]
    assert next(f for f in found if f.code == "toy_cause").fix == {"optim.lr": 0.5}
    # a hidden finding still explains others: the flat loss still rules out underfitting
    under = [(0.69, 0.5, 0.69, 0.5)] * 3
    assert "underfitting" in codes(diagnose(_rows([0.693 * 0.99**i for i in range(100)], under)))  # a falling loss
    assert not codes(diagnose(_rows(FLAT, under))) & {"underfitting", "lr_too_low"}


def test_registered_findings_declare_needs_codes_and_can_explain_everything(register, runs):
    from labkit.diagnosis import ALL, FINDINGS, Explains, Finding, Needs, diagnose
    from labkit.diagnosis import not_judged

    ran = []

    @register("toy_inside", codes={"toy_inside", "not_judged"}, needs=Needs(probes=True),
              unjudged=lambda ctx: not_judged("toy_inside", "Toy: not judged", "no probes", "record probes"))
    def inside(ctx):
        ran.append(len(ctx.probes))

    found = diagnose(_rows(FLAT))  # no probes: not run, and its note says so
    assert ran == [] and "toy_inside" in not_judged_checks(found)
    diagnose_run(runs["healthy"].dir)
    assert ran and ran[0] > 0

    @register("toy_everything", codes={"toy_everything"}, explains=[Explains({ALL}, but={"overfitting"})])
    def everything(ctx):
        return Finding("toy_everything", "info", "Toy: explains it all", "", "", "learning_curves")

    falling = [2.3 * 0.99**i for i in range(100)]
    over = [(1.0 - 0.1 * i, 0.5 + 0.1 * i, 1.2 + 0.1 * max(0, i - 1), 0.5) for i in range(5)]
    assert [f.code for f in diagnose(_rows(falling, over, classes=10))] == ["overfitting", "toy_everything"]

    @register("toy_liar", codes={"toy_said"})
    def liar(ctx):
        return Finding("toy_other", "info", "", "", "", "learning_curves")

    diagnose(_rows(FLAT))  # everything is explained already: the liar is not even run
    FINDINGS.remove("toy_everything")
    with pytest.raises(ValueError, match="toy_other"):  # a code a check did not declare is a bug in the check
        diagnose(_rows(FLAT))


def not_judged_checks(findings) -> set[str]:
    return {f.values.get("check") for f in findings if f.code == "not_judged"}


def test_bad_arguments_are_explained():
    with pytest.raises(LabkitError, match="list of metric rows"):
        diagnose("metrics.jsonl")
    with pytest.raises(LabkitError, match="ProbeHistory"):
        diagnose([], probes=[{"step": 0}])


# -- stored runs: partial, killed, probe-less, not a run -------------------------------------------------------
def test_killed_partial_run_says_what_it_cannot_judge(runs, tmp_path):
    src = runs["healthy"].dir
    d = tmp_path / "killed"
    shutil.copytree(src, d)
    (d / "best.pt").unlink()
    lines = (d / "metrics.jsonl").read_text().splitlines()
    (d / "metrics.jsonl").write_text("\n".join(lines[:31]) + '\n{"kind": "step", "st')  # torn last line
    probe_lines = (d / "probes.jsonl").read_text().splitlines()
    (d / "probes.jsonl").write_text("\n".join(probe_lines[:3]) + "\n")
    (d / "summary.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 4321}))  # no such process
    found = diagnose_run(d)
    assert {"run_end", "loss_trend", "generalization"} <= not_judged(found)
    end = next(f for f in found if f.values.get("check") == "run_end")
    assert "killed" in end.title and "30 of 310" in end.evidence
    assert not has_alarms(found)


def test_run_without_probes_says_the_insides_were_not_judged(runs):
    found = diagnose_run(runs["no_probes"].dir)
    note = next(f for f in found if f.values.get("check") == "probes")
    assert "probe.every=0" in note.evidence and note.fix == {"probe.every": 25}
    assert not codes(found) & {"update_ratio_low", "update_ratio_high", "dead_units", "saturated_units"}


def test_missing_or_foreign_directory_is_a_clear_error(tmp_path):
    with pytest.raises(LabkitError, match="does not exist"):
        diagnose_run(tmp_path / "nope")
    (tmp_path / "notes").mkdir()
    with pytest.raises(LabkitError, match="not a labkit run directory"):
        diagnose_run(tmp_path / "notes")
    (tmp_path / "notes" / "config.json").write_text(Config().to_json())  # a run that has not started yet
    found = diagnose_run(tmp_path / "notes")
    assert [f.code for f in found] == ["not_judged"] and "no rows" in found[0].evidence


# -- live ------------------------------------------------------------------------------------------------------
def test_live_diagnosis_matches_the_stored_run(store):
    cfg = spirals(store, **{"optim.lr": 1e-7, "schedule.name": "constant", "train.epochs": 6})
    live = LiveDiagnosis(cfg)
    run = train(cfg, callbacks=[live])
    assert live.ended and len(live.history()) == len(read_probes(run.dir))
    assert len(live.rows()) == len(read_metrics(run.dir))
    got = [(f.code, f.severity, f.values.get("check")) for f in live.findings()]
    want = [(f.code, f.severity, f.values.get("check")) for f in diagnose_run(run.dir)]
    assert got == want and ("lr_too_low", "alarm", None) in got
    live.findings().clear()  # callers get a copy of the cached list
    assert [f.code for f in live.findings()] == [c for c, _, _ in got]


# -- command line --------------------------------------------------------------------------------------------
def test_cli_report_json_and_exit_codes(runs, store, capsys):
    assert main(["diagnose", str(runs["lr_high"].dir)]) == 1
    out = capsys.readouterr().out
    assert "[ALARM] Training diverged" in out and "evidence:" in out and "suggestion:" in out
    assert "plot:       learning_curves.png" in out and "labkit plot" in out
    assert "  try:        --lr 1  (" in out and "--warmup 1" in out and "--grad-clip 1" in out
    assert main(["diagnose", runs["healthy"].id, "--runs", str(store)]) == 0
    assert "no alarms" in capsys.readouterr().out
    assert main(["diagnose", str(runs["lr_low"].dir), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["alarms"] is True and doc["status"] == "completed"
    assert {f["code"] for f in doc["findings"]} >= {"lr_too_low"}
    assert all({"severity", "title", "evidence", "suggestion", "plot", "fix", "fixes"} <= set(f) for f in doc["findings"])
    low = next(f for f in doc["findings"] if f["code"] == "lr_too_low")
    assert low["fixes"][0]["changes"] == low["fix"] and low["fixes"][0]["flags"] == f"--lr {low['fix']['optim.lr']:g}"
    assert main(["diagnose", "no-such-run", "--runs", str(store)]) == 2
    assert "no run directory" in capsys.readouterr().err


def test_cli_prints_a_fix_as_its_flags():
    from labkit.cli.diagnose import flags_for

    assert flags_for({"optim.lr": 0.01, "schedule.warmup_epochs": 1.0}) == "--lr 0.01 --warmup 1"
    assert flags_for({"model.activation": "relu", "model.init": "kaiming"}) == "--activation relu --init kaiming"
    assert flags_for({"reg.flip": True, "schedule.gamma": 0.2}) == "--flip true --set schedule.gamma=0.2"


# -- the lab's panel ---------------------------------------------------------------------------------------
def test_panel_gets_the_lab_run_events_and_shows_findings(tmp_path):
    from labkit.widgets import Lab

    lab = Lab(out=str(tmp_path), query="")
    panel = lab.extra_tabs["Diagnose"]
    w = lab.controls.widgets
    lab.controls.apply_preset("spirals (instant, offline)")
    w["train.epochs"].value, w["probe.every"].value, w["train.batch_size"].value = 3, 5, 100
    w["model.init"].value = "zeros"
    run = lab.train()
    assert run is not None
    lab.wait(60)
    assert panel.wait(60)
    assert panel.live is not None and panel.live.count >= 30 + 2  # every step, start and end reached the panel
    assert panel.findings and panel.findings[0].code == "symmetry"
    text, btn, box = panel.cards[0]
    assert box.layout.display == "" and "Symmetric units" in text.value and "#c62828" in text.value
    assert "1 alarm" in panel.status.value and run.id in panel.status.value
    assert panel.cards[len(panel.findings)][2].layout.display == "none"
    fig = panel.show_plot(0)
    assert fig is not None and panel.plot.value[:4] == b"\x89PNG"
    assert run.id in [Path(v).name for _, v in panel.runs.options]
    panel.diagnose_past(panel.runs.value)
    assert panel.wait(60) and panel.findings[0].code == "symmetry"


def test_panel_check_button_uses_the_suggested_lr(tmp_path):
    import labkit.babysit.checks  # noqa: F401  (the panel's check runs on these: a rename must fail here, not skip)
    import labkit.plots.babysit  # noqa: F401
    from labkit.widgets import Lab
    from labkit.widgets.diagnose import describe_changes

    lab = Lab(out=str(tmp_path), query="")
    lab.controls.apply_preset("spirals (instant, offline)")
    panel = lab.extra_tabs["Diagnose"]
    shown: list[str] = []  # what the status line said while the check ran
    panel.check_status.observe(lambda ch: shown.append(ch["new"]), "value")
    at_done: list[tuple[bool, bool]] = []  # (plot there, button on) the moment the status says it is done
    panel.check_status.observe(lambda ch: "checks passed" in ch["new"] and at_done.append(
        (bool(panel.check_img.value), not panel.use_lr_btn.disabled)), "value")
    report = panel.check()
    assert report is not None and report.text(fix_text=describe_changes) in html.unescape(panel.check_text.value)
    assert panel.check_img.value[:4] == b"\x89PNG"
    assert panel.suggested_lr is not None and not panel.use_lr_btn.disabled
    # the short runs that pick it are announced one by one, and the button offers the best one's rate
    assert at_done == [(True, True)]  # "all checks passed" is shown after the plot and the button, not before
    runs = [v for v in shown if "short run" in v]
    assert [v.split(":")[0] for v in runs] == [f"<i>short run {i} of 4" for i in range(1, 5)]
    assert panel.suggested_lr == min(report.lr.trials, key=lambda t: t["score"])["lr"]
    assert panel.use_lr_btn.description == f"Use suggested LR {panel.suggested_lr:.3g}"  # the rate it applies, not 2 digits of it
    panel.use_lr_btn.click()
    assert lab.config.optim.lr == pytest.approx(panel.suggested_lr, rel=1e-6)


def test_panel_apply_button_sets_the_fix_in_the_lab_controls(runs, store):
    from labkit.widgets import Lab

    lab = Lab(out=str(store), query="")
    panel = lab.extra_tabs["Diagnose"]
    assert panel.apply == lab.apply_fix
    panel.diagnose_past(str(runs["lr_high"].dir))
    assert panel.wait(60) and panel.findings[0].code == "diverged"
    buttons = panel.fix_buttons[0]
    assert buttons[0].layout.display == "" and buttons[0].description == "Apply: learning rate = 1"
    assert buttons[1].description == "Apply: warmup (epochs) = 1" and buttons[1].tooltip
    assert all(b.layout.display == "none" for b in buttons[len(panel.findings[0].fixes):])
    w = lab.controls.widgets
    assert w["optim.lr"].value != 1.0 and w["schedule.warmup_epochs"].value == 0
    buttons[0].click()
    buttons[1].click()
    assert w["optim.lr"].value == 1.0 and w["schedule.warmup_epochs"].value == 1.0
    assert lab.config.optim.lr == 1.0 and lab.config.schedule.warmup_epochs == 1.0
    assert "warmup (epochs) = 1" in panel.status.value and "Applied warmup (epochs) = 1" in lab.message.value
    # sigmoid's fix changes two settings at once
    panel.diagnose_past(str(runs["sigmoid"].dir))
    assert panel.wait(60) and panel.findings[0].code == "saturated_units"
    panel.fix_buttons[0][2].click()
    assert (lab.config.model.activation, lab.config.model.init) == ("relu", "kaiming")
    # without an apply callback the panel offers no Apply buttons
    panel.apply = None
    panel.diagnose_past(str(runs["lr_high"].dir))
    assert panel.wait(60) and all(b.layout.display == "none" for b in panel.fix_buttons[0])


def test_lr_advice_under_the_linear_scaling_rule_names_the_flag_value():
    """Diagnosis reads the rate the run used; under --scale-lr linear the --lr that gives it is that / (batch/128)."""
    from labkit.diagnosis.fixes import lower_lr, offer

    cfg = Config().replace(**{"train.batch_size": 1024, "train.scale_lr": "linear", "optim.lr": 0.1})  # used: 0.8
    words, fixes = offer(cfg, [lower_lr(0.8)])
    assert fixes[0].changes == {"optim.lr": 0.01}  # 0.08 used = --lr 0.01 x 8
    assert "--lr 0.01" in words[0] and "multiplies it by 8" in words[0]
    words, fixes = offer(cfg.replace(**{"train.scale_lr": "none"}), [lower_lr(0.8)])
    assert fixes[0].changes == {"optim.lr": 0.08} and "--lr" not in words[0]
