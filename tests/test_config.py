"""Config: JSON round trip, dotted paths, and every validation message."""
from __future__ import annotations

import json

import pytest

from labkit import Config, LabkitError
from labkit.activations import ACTIVATIONS
from labkit.config import config_paths
from labkit.optimizers import OPTIMIZERS
from labkit.schedules import SCHEDULES


def test_json_round_trip(tmp_path):
    c = Config().replace(**{"optim.lr": 0.05, "schedule.milestones": [0.5, 0.75], "data.root": "/x",
                            "reg.flip": False, "train.name": "a b"})
    assert Config.from_json(c.to_json()) == c
    c.save(tmp_path / "config.json")
    assert Config.load(tmp_path) == c
    assert json.loads((tmp_path / "config.json").read_text())["optim"]["lr"] == 0.05


def test_set_parses_strings_to_field_types():
    c = Config()
    c.set("optim.lr", "0.05").set("train.batch_size", "64").set("reg.flip", "false")
    c.set("schedule.milestones", "0.2,0.4").set("data.root", "none")
    assert c.optim.lr == 0.05 and c.train.batch_size == 64 and c.reg.flip is False
    assert c.schedule.milestones == [0.2, 0.4] and c.data.root is None
    assert c.get("train.batch_size") == 64
    assert Config().replace(**{"optim.lr": 0.01}).optim.lr == 0.01
    assert "optim.lr" in config_paths()


@pytest.mark.parametrize("path,text,expect", [
    ("train.batch_size", "1.5", "an integer"), ("optim.lr", "fast", "a number"), ("reg.flip", "maybe", "true/false"),
])
def test_unparsable_value(path, text, expect):
    with pytest.raises(LabkitError, match=expect):
        Config().set(path, text)


def test_unknown_path_lists_valid_paths():
    with pytest.raises(LabkitError, match="unknown config path 'optim.learning_rate'.*optim.lr"):
        Config().set("optim.learning_rate", "1")


def test_bad_json_and_unknown_keys(tmp_path):
    with pytest.raises(LabkitError, match="not valid JSON"):
        Config.from_json("{")
    with pytest.raises(LabkitError, match="unknown config key.*'speed'.*valid keys: name, lr"):
        Config.from_dict({"optim": {"speed": 1}})
    with pytest.raises(LabkitError, match="must be an object"):
        Config.from_dict({"optim": 3})
    with pytest.raises(LabkitError, match="no config file"):
        Config.load(tmp_path / "nope.json")


@pytest.mark.parametrize("path,value,table", [
    ("model.activation", "relu6", ACTIVATIONS), ("optim.name", "adamax", OPTIMIZERS), ("schedule.name", "poly", SCHEDULES),
])
def test_unknown_names_list_valid_ones(path, value, table):
    with pytest.raises(LabkitError) as e:
        Config().replace(**{path: value}).validate()
    msg = str(e.value)
    assert repr(value) in msg
    for name in table.names():
        assert name in msg


@pytest.mark.parametrize("path,value", [
    ("data.dataset", "mnist"), ("model.kind", "vit"), ("model.init", "magic"), ("model.norm", "instance"),
])
def test_other_unknown_names(path, value):
    with pytest.raises(LabkitError, match=f"'{value}'.*choose one of|'{value}'.*valid|unknown"):
        Config().replace(**{path: value}).validate()


def test_unknown_preprocess_and_monitor():
    with pytest.raises(LabkitError, match="preprocess 'whiten'; choose one of: none, mean, standardize"):
        Config().replace(**{"data.preprocess": "whiten"}).validate()
    with pytest.raises(LabkitError, match="monitor 'acc'; choose one of: val_acc, val_loss"):
        Config().replace(**{"train.monitor": "acc"}).validate()


@pytest.mark.parametrize("path,value,allowed", [
    ("optim.lr", 0.0, "(0, 100]"), ("optim.lr", -1.0, "(0, 100]"), ("model.dropout", 1.0, "[0, 1)"),
    ("reg.label_smoothing", 1.0, "[0, 1)"), ("optim.momentum", 1.5, "[0, 1)"), ("model.depth", 0, "[1, 50]"),
    ("train.batch_size", 0, "[1, 65536]"), ("schedule.pct_start", 0.0, "(0, 1)"), ("reg.crop", 20, "[0, 16]"),
    ("reg.mixup", -0.1, "[0, 100]"), ("train.epochs", 0.0, "(0, 10000]"), ("data.subset", -5, "[0, inf]"),
    ("schedule.gamma", 0.0, "(0, 1]"), ("optim.weight_decay", 2.0, "[0, 1]"), ("schedule.milestones", [1.5], "(0, 1)"),
])
def test_out_of_range_numbers_say_the_range(path, value, allowed):
    with pytest.raises(LabkitError) as e:
        Config().replace(**{path: value}).validate()
    msg = str(e.value)
    assert "out of range" in msg and allowed in msg and path.split(".")[1] in msg


def test_nan_lr_is_rejected():
    with pytest.raises(LabkitError, match="optim.lr"):
        Config().replace(**{"optim.lr": float("nan")}).validate()


def test_lbfgs_with_mixup_or_cutmix_or_dropout_says_why():
    for k in ("reg.mixup", "reg.cutmix"):
        with pytest.raises(LabkitError, match="lbfgs.*mixup/cutmix"):
            Config().replace(**{"optim.name": "lbfgs", k: 0.2}).validate()
    with pytest.raises(LabkitError, match="lbfgs.*--dropout 0"):
        Config().replace(**{"optim.name": "lbfgs", "model.dropout": 0.1}).validate()


def test_incompatible_model_and_batch_norm():
    with pytest.raises(LabkitError, match="needs images.*--model mlp"):
        Config().replace(**{"data.dataset": "spirals", "model.kind": "convnet"}).validate()
    with pytest.raises(LabkitError, match="batch_size >= 2"):
        Config().replace(**{"train.batch_size": 1}).validate()


def test_subset_too_large():
    with pytest.raises(LabkitError, match="data.subset=49500 is larger than the 49000 training images.*--subset between 1 and 49000"):
        Config().replace(**{"data.subset": 49500}).validate()


def test_defaults_validate():
    assert Config().validate() == Config()


def test_out_of_range_errors_say_how_to_fix():
    with pytest.raises(LabkitError) as e:
        Config().replace(**{"model.dropout": 1.5}).validate()
    assert str(e.value) == ("model.dropout=1.5 is out of range; allowed: [0, 1); fix: --dropout X with X in [0, 1), "
                            "e.g. 0 (the default)")
    with pytest.raises(LabkitError, match=r"fix: --set schedule.milestones=X with each item of X in \(0, 1\)"):
        Config().replace(**{"schedule.milestones": [1.5]}).validate()


def test_unreadable_values_say_the_allowed_range_and_the_fix():
    with pytest.raises(LabkitError) as e:
        Config().set("schedule.pct_start", "abc")
    assert str(e.value) == ("schedule.pct_start: cannot read 'abc' as a number; allowed: (0, 1); fix: "
                            "--set schedule.pct_start=X with X in (0, 1), e.g. 0.25 (the default)")
    with pytest.raises(LabkitError, match=r"cannot read 'maybe' as true/false; fix: --flip X with X true or false"):
        Config().set("reg.flip", "maybe")
    with pytest.raises(LabkitError, match=r"cannot read '2.5' as an integer; allowed: \[1, 65536\]; fix: --batch-size X"):
        Config().set("train.batch_size", "2.5")
