"""Field declarations: the validator, the CLI flags, command_line() and the lab's widgets agree, field by field."""
from __future__ import annotations

import math
import re
import shlex

import pytest
import torch

from labkit import Config, LabkitError
from labkit.activations import ACTIVATIONS
from labkit.cli import build_parser, main
from labkit.cli.common import FLAGS, apply_args, command_line as cli_command_line, config_from_args
from labkit.config import config_paths
from labkit.data import DATASETS, PREPROCESS, image_stats
from labkit.fields import FIELDS, Field, command_line, flags_for, relevant, value_text
from labkit.initializers import INITIALIZERS
from labkit.models import MODELS, NORMS
from labkit.optimizers import OPTIMIZERS
from labkit.precision import DEVICES, PRECISIONS, autocast
from labkit.babysit.recipe import MAX_LR
from labkit.registry import Registry
from labkit.schedules import SCHEDULES
from labkit.search.space import PRUNERS, SAMPLERS
from labkit.widgets.controls import Controls, LogNumber, field_problem, make_widget

RANGED = [p for p, f in FIELDS.items() if f.is_range]
FLAGGED = [p for p, f in FIELDS.items() if f.flag]


def sample(f: Field) -> object:
    """A valid value of `f` that is not its default (ranges: inside, away from both ends)."""
    d = f.default
    if f.choices is not None:
        return next(n for n in f.choice_names() if n != d)
    if f.is_list:
        return [0.25, 0.5]
    kind = f.widget_kind()
    if kind == "checkbox":
        return not d
    if kind == "int":
        return next(v for v in (int(f.lo) + 1, int(f.lo) + 2) if v != d)
    if f.is_range:
        hi = f.hi if f.hi != math.inf else f.lo + 10
        return next(v for v in (f.lo + 0.375 * (hi - f.lo), f.lo + 0.625 * (hi - f.lo)) if v != d)
    return "some dir/x y"  # a path or a label: the space tests the quoting


def test_every_config_field_is_declared_once():
    assert list(FIELDS) == [p for p in FIELDS if p in config_paths()]
    assert set(FIELDS) == set(config_paths())
    flags = [f.flag for f in FIELDS.values() if f.flag]
    assert len(flags) == len(set(flags))
    for f in FIELDS.values():  # a range or names on every number and every name field
        if f.type in (int, float) or f.is_list:
            assert f.is_range, f.path
        assert f.help


@pytest.mark.parametrize("path", list(FIELDS))
def test_each_widget_offers_what_the_validator_allows(path):
    """Dropdowns offer the field's names; number boxes hold what is typed and their note is the validator's range."""
    f = FIELDS[path]
    w = make_widget(path)
    kind = f.widget_kind()
    if kind == "dropdown":
        assert list(w.options) == [n for n in f.choice_names() if n not in f.hidden]
    elif kind == "log":
        assert isinstance(w, LogNumber)
        # the slider's right end is the field's; its left end is log_min, since a log scale has no 0
        assert 10 ** w.slider.max == pytest.approx(f.hi) and 10 ** w.slider.min == pytest.approx(f.log_min)
        assert f.lo < f.log_min
    if f.is_range and not f.is_list:
        inside = f.default if f.default is not None and f.in_range(f.default) else None
        if inside is not None:
            assert field_problem(path, inside) is None
        for outside in (f.lo - 1, f.hi + 1) if math.isfinite(f.hi) else (f.lo - 1,):
            if f.type is int:
                outside = int(outside)
            assert not f.in_range(outside)
            note = field_problem(path, outside)
            assert note is not None and f.range_text() in note, (path, outside, note)
            with pytest.raises(LabkitError, match=re.escape(path)):
                Config().set(path, outside).validate()
    assert w.value == (value_text(f.default) if f.is_list else "" if f.default is None else f.default)
    if f.section:
        assert w.description == f.widget_label()


def test_dropout_and_lr_controls_reach_the_validators_ends():
    # the issue: the dropout slider stopped at 0.9 and the LR slider spanned 1e-5..10
    assert FIELDS["model.dropout"].range_text() == "[0, 1)"
    assert field_problem("model.dropout", 0.95) is None and field_problem("model.dropout", 1.0) is not None
    lr = make_widget("optim.lr")
    assert 10 ** lr.slider.max == pytest.approx(100) and MAX_LR == 100
    assert field_problem("optim.lr", 100.0) is None and field_problem("optim.lr", 0.0) is not None


def test_typed_lr_stays_exact_and_the_slider_still_drags():
    w = make_widget("optim.lr")
    w.value = 0.003
    assert w.box.value == 0.003 and w.slider.value == pytest.approx(0.003)
    w.slider.value = 10 ** -2.5  # the browser echoes the slider snapped to its 0.05-decade step
    assert w.value == 0.003  # not 3.16e-3
    w.slider.value = 10 ** -1.3  # a drag to another step
    assert w.value == 0.0501
    w.value = 1e-8  # below the slider's left end: the box keeps it, the slider rests at its end
    assert w.value == 1e-8 and w.slider.value == pytest.approx(1e-6)
    c = Controls()
    c.widgets["optim.lr"].value = 0.003
    assert c.config.optim.lr == 0.003


@pytest.mark.parametrize("path", FLAGGED)
def test_each_flag_sets_its_field(path):
    f = FIELDS[path]
    v = sample(f)
    args = build_parser().parse_args(["train", f.flag, value_text(v)])
    assert apply_args(Config(), args).get(path) == v
    assert FLAGS[f.flag][0] == path


def test_command_line_round_trips_every_field():
    cfg = Config()
    for path, f in FIELDS.items():
        cfg.set(path, sample(f))
    cmd = command_line(cfg)
    assert cmd.startswith("labkit train ") and "--set optim.eps=" in cmd
    args = build_parser().parse_args(shlex.split(cmd)[1:])
    assert apply_args(Config(), args) == cfg  # not validated: every field at once breaks cross-field rules


def test_command_line_round_trips_a_valid_config_through_the_cli():
    cfg = Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "optim.name": "adam", "optim.lr": 0.003,
                              "optim.eps": 1e-7, "optim.weight_decay": 1 / 3, "schedule.name": "step",
                              "schedule.milestones": [0.25, 0.5], "reg.flip": False, "train.name": "a b",
                              "train.epochs": 2.5}).validate()
    cmd = cli_command_line(cfg)  # the CLI's name for it is the same function
    assert "--lr 0.003" in cmd and "--name 'a b'" in cmd and "--set schedule.milestones=0.25,0.5" in cmd
    assert config_from_args(build_parser().parse_args(shlex.split(cmd)[1:])) == cfg
    assert command_line(Config()) == "labkit train"
    assert flags_for({"optim.lr": 0.01, "optim.eps": 1e-7}) == "--lr 0.01 --set optim.eps=1e-07"


@pytest.mark.parametrize("path", RANGED)
def test_out_of_range_values_name_the_path_and_the_range(path):
    f = FIELDS[path]
    bad = [f.lo - 1] + ([f.hi + 1] if f.hi != math.inf else []) + [e for e, o in ((f.lo, f.lo_open),
                                                                                  (f.hi, f.hi_open)) if o]
    for v in bad:
        v = int(v) if f.widget_kind() == "int" else float(v)
        with pytest.raises(LabkitError) as e:
            Config().replace(**{path: [v] if f.is_list else v}).validate()
        msg = str(e.value)
        assert path in msg and f.range_text() in msg and repr(v) in msg, msg
    for v, is_open in ((f.lo, f.lo_open), (f.hi, f.hi_open)):  # closed ends are allowed
        if not is_open and v != math.inf:
            f.check([v] if f.is_list else v)
    with pytest.raises(LabkitError, match="not a number"):
        f.check(["x"] if f.is_list else "x")


def test_registry_fields_offer_exactly_their_registry():
    tables = {"data.dataset": DATASETS, "data.preprocess": PREPROCESS, "model.kind": MODELS,
              "model.activation": ACTIVATIONS, "model.init": INITIALIZERS, "model.norm": NORMS,
              "optim.name": OPTIMIZERS, "schedule.name": SCHEDULES, "train.precision": PRECISIONS,
              "train.device": DEVICES}
    assert {p for p, f in FIELDS.items() if isinstance(f.choices, Registry)} == set(tables)
    for path, table in tables.items():
        f = FIELDS[path]
        assert f.choices is table and f.choice_names() == table.names()
        assert ", ".join(table.names()) in f.cli_help()
        with pytest.raises(LabkitError, match=f"unknown {table.kind} 'bogus'; choose one of: {', '.join(table.names())}"):
            Config().replace(**{path: "bogus"}).validate()


def test_a_new_registry_entry_reaches_the_validator_and_the_lab():
    PREPROCESS.add("test_half", lambda x, scale: (torch.zeros(x.shape[1]), torch.full((x.shape[1],), 0.5)), "test")
    try:
        Config().replace(**{"data.preprocess": "test_half"}).validate()
        assert "test_half" in make_widget("data.preprocess").options
    finally:
        PREPROCESS._entries.pop("test_half")


def test_preprocess_registry_computes_the_statistics():
    x = torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8)
    xf = x.float() / 255
    mean, std = image_stats(x, "standardize")
    assert torch.allclose(mean, xf.mean((0, 2, 3))) and torch.allclose(std, xf.std((0, 2, 3)))
    mean, std = image_stats(x, "mean")
    assert torch.allclose(mean, xf.mean((0, 2, 3))) and torch.equal(std, torch.ones(3))
    mean, std = image_stats(x, "none")
    assert torch.equal(mean, torch.zeros(3)) and torch.equal(std, torch.ones(3))
    pts = torch.randn(50, 2)
    mean, std = PREPROCESS.get("standardize")(pts, 1.0)
    assert torch.allclose(mean, pts.mean(0)) and torch.allclose(std, pts.std(0))


def test_precisions_are_a_registry():
    assert PRECISIONS.names() == ["auto", "fp32", "bf16"]
    assert isinstance(autocast("bf16"), torch.autocast)
    with autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_samplers_and_pruners_are_registries(capsys):
    from labkit.search import run as search, storage as search_storage
    from labkit.search.space import Space

    assert SAMPLERS.names() == ["random", "grid", "tpe"] and PRUNERS.names() == ["none", "median", "hyperband"]
    space = Space.parse(["optim.lr=log:1e-3:1"])
    made = {}
    for name in SAMPLERS.names():
        setup = search_storage.SearchSetup(Config(), space, name, 4, "median", "runs", 0, 2)
        made[name] = type(search.make_sampler(setup)).__name__
    assert made == {"random": "RandomSampler", "grid": "GridSampler", "tpe": "TPESampler"}
    assert type(search.make_pruner(search_storage.SearchSetup(Config(), space))).__name__ == "NopPruner"
    with pytest.raises(LabkitError, match="unknown sampler 'sobol'; choose one of: random, grid, tpe"):
        search.run_search(Config(), space, sampler="sobol", trials=2)
    with pytest.raises(LabkitError, match="unknown pruner 'asha'; choose one of: none, median, hyperband"):
        search.run_search(Config(), space, pruner="asha", trials=2)
    assert main(["search", "--space", "optim.lr=log:1e-3:1", "--sampler", "grid,sobol"]) == 2
    assert "unknown sampler 'sobol'; choose one of: random, grid, tpe" in capsys.readouterr().err
    assert main(["search", "--space", "optim.lr=log:1e-3:1", "--pruner", "asha"]) == 2
    assert "unknown pruner 'asha'" in capsys.readouterr().err


def test_relevance_follows_the_optimizer_and_schedule_entries():
    chosen = {"optimizer": "nesterov", "schedule": "onecycle", "dataset": "cifar10"}
    assert relevant("optim.momentum", **chosen) and not relevant("optim.beta1", **chosen)
    assert relevant("schedule.pct_start", **chosen) and not relevant("schedule.gamma", **chosen)
    assert not relevant("schedule.milestones", **{**chosen, "schedule": "constant"})
    assert relevant("schedule.min_lr", **{**chosen, "schedule": "restarts"})
    assert relevant("data.noise", **{**chosen, "dataset": "spirals"}) and not relevant("reg.mixup", **{
        **chosen, "dataset": "spirals"})
    SCHEDULES.add("test_shape", SCHEDULES.get("constant"), "a schedule registered elsewhere", uses=("gamma",))
    try:
        assert relevant("schedule.gamma", **{**chosen, "schedule": "test_shape"})
        assert not relevant("schedule.min_lr", **{**chosen, "schedule": "test_shape"})
    finally:
        SCHEDULES._entries.pop("test_shape")


def test_the_run_store_flag_is_runs_and_command_line_uses_it():
    assert FIELDS["train.out"].flag == "--runs"
    assert command_line(Config().replace(**{"train.out": "my runs"})) == "labkit train --runs 'my runs'"


@pytest.mark.parametrize("path", RANGED)
def test_every_range_error_names_its_fix(path):
    f = FIELDS[path]
    text = f.allowed_text()
    assert text.startswith(f"allowed: {f.range_text()}") and "; fix: " in text
    assert (f.flag or f"--set {path}=X") in text and f"e.g. {value_text(f.default)} (the default)" in text
    assert "fix:" not in f.allowed_text(fix=False)
