"""The lab's widgets without a browser: controls -> Config, previews, messages, a run with live views."""
from __future__ import annotations

import json
import time

import pytest

from labkit.config import Config
from labkit.optimizers import OPTIMIZERS
from labkit.schedules import schedule_curve
from labkit.widgets import Lab
from labkit.widgets.controls import PRESETS, Controls
from labkit.widgets.urlstate import config_from_query, query_from_config


@pytest.fixture
def lab(tmp_path):
    return Lab(out=str(tmp_path), query="")


def spirals(lab: Lab, epochs: int = 3) -> None:
    lab.controls.apply_preset("spirals (instant, offline)")
    lab.controls.widgets["train.epochs"].value = epochs
    lab.controls.widgets["probe.every"].value = 5
    lab.controls.widgets["train.batch_size"].value = 100


def test_control_values_make_the_config(lab, tmp_path):
    w = lab.controls.widgets
    w["data.dataset"].value = "circles"
    w["model.kind"].value = "mlp"
    w["model.activation"].value = "tanh"
    w["model.init"].value = "xavier"
    w["optim.name"].value = "adam"
    w["optim.lr"].value = 0.003
    w["optim.beta2"].value = 0.99
    w["schedule.name"].value = "step"
    w["schedule.milestones"].value = "0.5, 0.75"
    w["reg.label_smoothing"].value = 0.1
    w["train.epochs"].value = 7
    cfg = lab.config
    assert (cfg.data.dataset, cfg.model.kind, cfg.model.activation, cfg.model.init) == ("circles", "mlp", "tanh", "xavier")
    assert cfg.optim.name == "adam" and cfg.optim.lr == pytest.approx(0.003) and cfg.optim.beta2 == 0.99
    assert cfg.schedule.milestones == [0.5, 0.75] and cfg.reg.label_smoothing == pytest.approx(0.1)
    assert cfg.train.epochs == 7 and cfg.train.out == str(tmp_path)
    cfg.validate()


def test_dropdowns_come_from_the_registries():
    OPTIMIZERS.add("test_sgd_copy", OPTIMIZERS.get("sgd"), "a copy of sgd for this test", uses=("lr",))
    try:
        c = Controls()
        assert "test_sgd_copy" in c.widgets["optim.name"].options
        c.widgets["optim.name"].value = "test_sgd_copy"
        assert c.widgets["optim.momentum"].layout.display == "none"  # it does not use momentum
        assert c.config.optim.name == "test_sgd_copy"
    finally:
        OPTIMIZERS._entries.pop("test_sgd_copy")


def test_lr_preview_follows_schedule_controls(lab):
    w = lab.controls.widgets
    w["data.dataset"].value = "spirals"
    w["model.kind"].value = "mlp"
    for name, extra in (("cosine", {"schedule.warmup_epochs": 2.0}), ("step", {"schedule.gamma": 0.5}),
                        ("onecycle", {"train.batch_size": 50}), ("restarts", {"train.epochs": 9})):
        w["schedule.name"].value = name
        for path, value in extra.items():
            w[path].value = value
        assert lab.lr_preview == schedule_curve(lab.config)
        assert lab.live.lr.curve == lab.lr_preview
    assert len(lab.lr_preview) == 9 * (1000 // 50)


def test_impossible_settings_are_explained_and_train_is_refused(lab):
    w = lab.controls.widgets
    w["optim.name"].value = "lbfgs"
    w["reg.mixup"].value = 0.4
    assert "lbfgs" in lab.message.value and "mixup" in lab.message.value
    assert lab.train_btn.disabled
    assert lab.train() is None
    w["reg.mixup"].value = 0.0
    w["optim.name"].value = "sgd"
    w["data.dataset"].value = "cifar10"
    w["data.subset"].value = 60000
    assert "larger than" in lab.message.value
    assert lab.train() is None and lab.run is None
    w["data.subset"].value = 1000
    assert lab.message.value == "" and not lab.train_btn.disabled


def test_presets_fill_the_controls(lab):
    for name, overrides in PRESETS.items():
        lab.controls.apply_preset(name)
        for path, value in overrides.items():
            assert lab.config.get(path) == pytest.approx(value) if isinstance(value, float) else lab.config.get(path) == value
        lab.config.validate()


def test_url_query_fills_controls_and_is_not_evaluated(tmp_path):
    lab = Lab(out=str(tmp_path), query="optim.lr=0.02&model.activation=gelu&train.epochs=3&bogus.x=1"
                                        "&train.out=/etc&model.width=__import__('os')")
    assert lab.controls.widgets["model.activation"].value == "gelu"
    assert lab.config.optim.lr == pytest.approx(0.02) and lab.config.train.epochs == 3
    assert lab.config.train.out == str(tmp_path)
    assert "bogus.x" in lab.message.value and "train.out" in lab.message.value and "model.width" in lab.message.value
    q = query_from_config(lab.controls.config)
    assert "optim.lr=0.02" in q and "model.activation=gelu" in q
    assert q in lab.share.value.replace("&amp;", "&")
    again, problems = config_from_query("?" + q)
    assert not problems and again.to_dict() == lab.controls.config.to_dict()


def test_spirals_run_from_the_widgets_feeds_the_views(lab, tmp_path):
    spirals(lab)
    run = lab.train()
    assert run is not None
    assert lab.train() is None and "already going" in lab.message.value
    lab.wait(60)
    assert run.status == "completed"
    counts = lab.live.counts
    assert counts["start"] == 1 and counts["end"] == 1 and counts["step"] == 30 and counts["epoch"] == 3
    assert counts["probe"] >= 2
    assert lab.live.curves.points == 30 and lab.live.curves.image.value[:4] == b"\x89PNG"
    assert lab.live.probes.images[0].value[:4] == b"\x89PNG" and lab.live.probes.slider.max == len(lab.live.probes.events) - 1
    assert lab.live.progress.bar.value == 30 and "completed" in lab.message.value
    assert [e.lr for e in lab.live.steps] == pytest.approx(schedule_curve(run.config))
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert not lab.train_btn.disabled and lab.stop_btn.disabled
    # the finished run is in the Compare tab, with its command and config
    lab.compare.refresh()
    lab.compare.pick.value = (run.id,)
    assert lab.compare.curves.value[:4] == b"\x89PNG"
    assert lab.compare.command.value.startswith("labkit train") and "--data spirals" in lab.compare.command.value
    assert Config.from_json(lab.compare.config_json.value).to_dict() == run.config.to_dict()


def test_stop_button_keeps_the_run_as_stopped(lab):
    spirals(lab, epochs=2000)
    run = lab.train()
    assert run is not None, lab.message.value
    deadline = time.monotonic() + 60
    while not lab.live.steps:
        assert not run.done, f"the run ended ({run.status}) before its first step: {lab.message.value}"
        assert time.monotonic() < deadline, "no training step reached the live views within 60 s"
        run.wait(0.05)
    lab.stop_btn.click()
    lab.wait(30)
    assert run.done, "the run did not stop within 30 s of pressing Stop"
    assert run.status == "stopped" and "stopped" in lab.message.value
    assert json.loads((run.dir / "summary.json").read_text())["status"] == "stopped"


def test_divergence_is_a_readable_message(lab):
    # N(0, 1) weights, no normalization and plain SGD at the slider's top LR (10): the loss is NaN within a
    # few steps (step 3 with seeds 0-4); the seed is pinned so the run is the same every time
    spirals(lab, epochs=20)
    w = lab.controls.widgets
    w["train.seed"].value = 0
    w["optim.name"].value = "sgd"
    w["optim.lr"].value = 10.0
    w["schedule.name"].value = "constant"
    w["model.init"].value = "large"
    w["model.norm"].value = "none"
    run = lab.train()
    assert run is not None, lab.message.value
    lab.wait(60)
    assert run.done, "the run neither diverged nor ended within 60 s"
    assert run.status == "diverged", (run.status, lab.message.value)
    assert lab.live.counts["step"] < 20 * 10  # it ended early, at the divergence, not after its 20 epochs
    assert "diverged" in lab.message.value and "Lower the learning rate" in lab.message.value
    assert "Traceback" not in lab.message.value
    assert json.loads((run.dir / "summary.json").read_text())["status"] == "diverged"


def test_missing_data_is_a_readable_message(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lab = Lab(out=str(tmp_path / "runs"), query="data.dataset=cifar100&data.download=false&data.subset=100"
                                               "&data.val_size=10&train.epochs=1")
    # The settings are valid, so Train starts the run: whether the files exist is found out when the run
    # loads its data on the training thread (looking on the UI thread would freeze the dashboard). The run
    # then fails at once, and the message says in words where labkit looked and how to get the data.
    assert not lab.train_btn.disabled and lab.message.value == ""
    run = lab.train()
    assert run is not None, f"the run was refused up front: {lab.message.value}"
    lab.wait(60)
    assert run.done, "the run neither failed nor ended within 60 s"
    assert run.status == "failed" and lab.live.counts.get("step", 0) == 0
    msg = lab.message.value
    assert "failed" in msg and "cifar100 not found" in msg and str(tmp_path / "nowhere") in msg
    assert "labkit data --download cifar100" in msg and "LABKIT_DATA" in msg
    assert "Traceback" not in msg
    assert json.loads((run.dir / "summary.json").read_text())["status"] == "failed"
    assert not lab.train_btn.disabled and lab.stop_btn.disabled  # ready for the next try


def test_notebook_file_is_the_shipped_notebook():
    from pathlib import Path

    from labkit.widgets.notebook import notebook_dict

    path = Path(__file__).resolve().parents[1] / "notebooks" / "lab.ipynb"
    assert json.loads(path.read_text()) == notebook_dict()


def test_lab_command_serves_the_notebook_with_voila(tmp_path):
    from labkit.cli import build_parser
    from labkit.cli.lab import lab_env, voila_command
    from labkit.widgets.notebook import find_notebook

    args = build_parser().parse_args(["lab", "--port", "9123", "--no-browser", "--runs", str(tmp_path)])
    assert args.port == 9123 and args.no_browser
    nb = find_notebook()
    assert nb.is_file() and nb.suffix == ".ipynb"
    cmd = voila_command(nb, 9123, "127.0.0.1", browser=False)
    assert "voila" in cmd and str(nb) in cmd and "--no-browser" in cmd and "--port=9123" in cmd
    env = lab_env(str(tmp_path))
    assert env["LABKIT_RUNS"] == str(tmp_path.resolve())


def test_lab_command_hands_kernels_an_absolute_data_path(tmp_path, monkeypatch):
    """Voila's kernels start in notebooks/: LABKIT_DATA=../shared/data must still point where the user meant."""
    from labkit.cli.lab import lab_env

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABKIT_DATA", "../shared/data")
    env = lab_env("runs")
    assert env["LABKIT_DATA"] == str((tmp_path / ".." / "shared" / "data").resolve())


def test_figure_images_stay_hidden_until_they_hold_a_png():
    """An empty Image shows as a broken-image icon in the browser: every figure slot is hidden until drawn."""
    from labkit.widgets.live import png_image

    img = png_image(width="100%")
    assert img.layout.display == "none" and img.layout.width == "100%"
    img.value = b"\x89PNG\r\n\x1a\n"
    assert img.layout.display == ""
    img.value = b""
    assert img.layout.display == "none"
