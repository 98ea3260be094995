"""The lab's widgets without a browser: controls -> Config, previews, messages, a run with live views."""
from __future__ import annotations

import html
import json
import time

import pytest

from labkit.config import Config
from labkit.fields import FIELDS
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


def test_a_schedule_drawn_before_is_shown_again_without_drawing_it(lab, monkeypatch):
    """Back to a plan already previewed: the same picture at once, and the preview is not drawn again."""
    w = lab.controls.widgets
    w["schedule.name"].value = "cosine"
    cosine_png, cosine_fig = lab.live.lr.image.value, lab.live.lr.fig
    w["schedule.name"].value = "onecycle"
    assert lab.live.lr.image.value != cosine_png
    import labkit.plots

    drawn = []
    monkeypatch.setattr(labkit.plots, "lr_curve", lambda *a, **k: drawn.append(a) or pytest.fail("drawn again"))
    w["schedule.name"].value = "cosine"
    assert lab.live.lr.image.value == cosine_png and lab.live.lr.fig is cosine_fig and not drawn
    assert lab.live.lr.curve == lab.lr_preview == schedule_curve(lab.config)


def test_impossible_settings_are_explained_and_train_is_refused(lab):
    w = lab.controls.widgets
    w["optim.name"].value = "lbfgs"
    w["reg.mixup"].value = 0.4
    assert "lbfgs" in lab.message.value and "mixup" in lab.message.value
    assert "--" not in lab.message.value  # the lab names its controls, not the command line's flags
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
    note = lab.link_note.value
    assert "bogus.x" in note and "train.out" in note and "model.width" in note
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
    label = lab.live.progress.label.value  # the final status: no "step 31/30", no time left
    assert "completed" in label and "30 steps" in label and "31" not in label and "ETA" not in label
    assert run.id in lab.run_caption.value and "completed" in lab.run_caption.value
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
    assert "stopped (stopped" not in lab.message.value and "stopped stopped" not in lab.message.value
    assert "stopped by request at step" in lab.message.value
    label = lab.live.progress.label.value
    assert "stopped" in label and "ETA" not in label and "steps/s" not in label
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
    assert "diverged" in lab.live.progress.label.value and "ETA" not in lab.live.progress.label.value
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
    label = lab.live.progress.label.value  # not "loading data and building the model..." forever
    assert "failed" in label and "before its first step" in label and "loading" not in label


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
    # pages that are gone do not keep their kernels (the browser tests reload and count them)
    assert "--MappingKernelManager.cull_idle_timeout=120" in cmd and "--MappingKernelManager.cull_connected=False" in cmd
    assert args.cull_idle == 120 and not any("cull" in c for c in voila_command(nb, 1, "127.0.0.1", False, 0))
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


# -- values are never changed silently --------------------------------------------------------------------
@pytest.mark.parametrize("path, value", [("data.subset", -5), ("probe.every", -3), ("optim.lr", 0.0),
                                         ("train.batch_size", 0), ("train.epochs", 0.0)])
def test_an_out_of_range_value_stays_as_typed_and_is_refused_beside_its_control(lab, path, value):
    """-5 images used to become 0 (= all 49,000), probe every -3 became 0 (= probes off): now they are said."""
    w = lab.controls.widgets
    w[path].value = value
    assert lab.controls.config.get(path) == value  # not clamped to something that means another thing
    note = lab.controls.notes[path]
    assert note.layout.display == "" and "out of range" in note.value, note.value
    assert lab.train_btn.disabled and lab.train() is None and lab.run is None
    label = FIELDS[path].widget_label()
    assert "Train is disabled" in lab.message.value and label in html.unescape(lab.message.value)
    assert "--" not in lab.message.value  # the lab names its controls, not command-line flags
    assert lab.live.lr.image.value[:4] == b"\x89PNG" and "?" in lab.share.value  # previews stay
    w[path].value = Config().get(path)
    assert note.layout.display == "none" and not lab.train_btn.disabled and lab.message.value == ""


def test_lr_box_keeps_the_typed_value():
    c = Controls()
    c.widgets["optim.lr"].value = 0.003
    assert c.config.optim.lr == 0.003  # not the slider's 3.16e-3
    c.widgets["optim.lr"].value = 0.0
    assert c.config.optim.lr == 0.0 and "out of range" in c.notes["optim.lr"].value  # not 1e-5 or 1e-6


def test_search_tab_refuses_what_it_used_to_clamp(lab):
    import os

    tab = lab.extra_tabs["Search"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for name, value, words in (("trials", 0, "at least 1"), ("epochs", 0.0, "more than 0"),
                               ("subset", -5, "0 or more"), ("workers", cores + 6, f"{cores} core")):
        getattr(tab, name).value = value
        assert getattr(tab, name).value == value  # kept as typed
        assert words in tab.notes[name].value and tab.notes[name].layout.display == ""
        assert tab.run_btn.disabled and tab.compare_btn.disabled and tab.preview_btn.disabled
        assert words in tab.status.value
        tab.start()
        assert tab._thread is None  # refused: no search started
    tab.trials.value, tab.epochs.value, tab.subset.value, tab.workers.value = 4, 1.0, 500, 1
    assert not tab.run_btn.disabled and all(n.layout.display == "none" for n in tab.notes.values())


def test_a_bad_shared_link_lists_every_bad_key_and_why_train_is_disabled(tmp_path):
    lab = Lab(out=str(tmp_path), query="optim.lr=abc&foo.bar=1&train.batch_size=-5&model.activation=nonsense")
    note = html.unescape(lab.link_note.value)
    for key in ("optim.lr", "foo.bar", "train.batch_size", "model.activation"):
        assert key in note, key
    assert "4 problems" in note and "cannot read 'abc' as a number" in note
    assert "not a setting" in note and "out of range" in note
    assert "nonsense" in note and "activation stays relu" in note  # replaced, and said so
    assert f"learning rate stays {Config().optim.lr:g}" in note  # the default, kept
    assert lab.train_btn.disabled and "Train is disabled" in lab.message.value and "batch size" in lab.message.value
    assert lab.controls.widgets["train.batch_size"].value == -5 and lab.controls.notes["train.batch_size"].value
    assert lab.live.lr.image.value[:4] == b"\x89PNG" and "last settings that could train" in lab.lr_note.value
    assert "train.batch_size=-5" in html.unescape(lab.share.value) and "cannot train" in lab.share.value
    lab.controls.widgets["train.batch_size"].value = 64
    assert not lab.train_btn.disabled and lab.lr_note.value == "" and lab.message.value == ""
    assert "4 problems" in html.unescape(lab.link_note.value)  # what the link asked for is still said


def test_share_box_names_the_defaults_instead_of_an_empty_query(lab):
    assert "query <code" not in lab.share.value and "defaults" in lab.share.value


# -- status that says what is true now --------------------------------------------------------------------
def test_preset_dropdown_shows_a_preset_only_while_the_settings_are_it(lab):
    c = lab.controls
    c.preset.value = "bad init"
    assert c.preset.value == "bad init" and lab.config.model.init == "large"
    c.widgets["model.init"].value = "xavier"  # an edit: no longer the preset
    assert c.preset.value == "(choose a preset)"
    c.preset.value = "bad init"  # picking it again applies it again
    assert lab.config.model.init == "large" and c.preset.value == "bad init"
    lab.load_config(Config())  # "Load into controls" of a run: not a preset
    assert c.preset.value == "(choose a preset)"


def test_curves_say_which_run_they_show_once_the_settings_move_on(lab):
    spirals(lab, epochs=1)
    run = lab.train()
    lab.wait(60)
    assert run.id in lab.run_caption.value and "changed" not in lab.run_caption.value
    lab.load_config(Config().replace(**{"data.dataset": "circles", "model.kind": "mlp"}))
    cap = lab.run_caption.value
    assert run.id in cap and "settings have changed since" in cap and "dataset" in cap


def test_a_completed_run_at_chance_level_is_a_warning_not_a_success(lab):
    """The lectures' failure (10 sigmoid layers, N(0, 0.01) init) runs to its end and learns nothing."""
    spirals(lab, epochs=5)
    w = lab.controls.widgets
    w["model.depth"].value, w["model.activation"].value, w["model.init"].value = 10, "sigmoid", "small"
    w["model.norm"].value, w["optim.name"].value, w["optim.lr"].value = "none", "sgd", 0.1
    run = lab.train()
    lab.wait(60)
    assert run.status == "completed"
    msg = lab.message.value
    assert "at chance level" in msg and "#fff6e0" in msg and "#eaf7ee" not in msg  # warning colours, not green
    assert "Diagnose" in msg and lab.live.progress.bar.bar_style == "warning"
    assert "#1b5e20" not in lab.live.progress.label.value  # the status line is not green either


def test_diagnose_tab_drops_what_belongs_to_other_runs_and_settings(lab):
    panel = lab.extra_tabs["Diagnose"]
    spirals(lab, epochs=2)
    first = lab.train()
    lab.wait(60)
    assert panel.wait(60) and panel.findings
    panel.show_plot(0)
    assert panel.plot.value[:4] == b"\x89PNG" and first.id in panel.plot_title.value
    lab.controls.widgets["train.seed"].value = 1
    second = lab.train()
    assert panel.plot.value == b"" and panel.plot_title.value == ""  # not the first run's plot above the second's
    lab.wait(60)
    assert panel.wait(60) and second.id in panel.status.value
    # a check of these settings, then other settings: its result and button are not for them
    report = panel.check()
    assert report is not None and not panel.use_lr_btn.disabled and not panel.check_stale
    suggested = panel.suggested_lr
    lab.controls.widgets["model.depth"].value = 6
    assert panel.check_stale and panel.use_lr_btn.disabled and "other settings" in panel.check_status.value
    lr = lab.config.optim.lr
    panel.use_suggested_lr()
    assert lab.config.optim.lr == lr and suggested != lr  # the stale suggestion is not applied


def test_using_the_suggested_lr_keeps_the_check_live(lab):
    panel = lab.extra_tabs["Diagnose"]
    lab.controls.apply_preset("spirals (instant, offline)")
    assert panel.check() is not None
    panel.use_lr_btn.click()
    assert lab.config.optim.lr == pytest.approx(panel.suggested_lr, rel=1e-6) and not panel.check_stale


def test_a_search_too_small_to_mean_anything_says_so_and_a_new_one_starts_clean(tmp_path):
    """Budget 4 and 1 epoch: 7 steps per trial, every trial near chance; the plots must not rank parameters."""
    from labkit.plots.search import sampler_planes
    from labkit.search.space import Space
    from labkit.widgets.search import SearchTab, too_small

    base = Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp", "train.threads": 1,
                               "train.out": str(tmp_path / "runs"), "train.test": False, "probe.every": 0,
                               "train.batch_size": 128})
    tab = SearchTab(base, out=str(tmp_path / "runs"))
    tab.trials.value, tab.epochs.value = 4, 1.0
    tab.start("compare")
    tab.wait(120)
    assert tab.compare.value[:4] == b"\x89PNG" and tab.scores.value[:4] == b"\x89PNG"
    assert "only 7 steps" in tab.warnings.value  # 1,000 points / batch 128 = 7 steps in its one epoch
    # a new search: the old search's figures and table go at once, not when the new trials arrive
    tab.start("search")
    assert tab.scores.value == b"" and tab.compare.value == b"" and tab.table.value == ""
    tab.wait(120)
    # scores all alike say the same, and the plane's axes then name no important parameter
    space = Space.parse(["optim.lr=log:1e-3:1", "model.dropout=0:0.5"], base=base)
    rows = [{"value": 0.5 + 0.001 * i, "state": "complete", "params": {"optim.lr": 10 ** -i, "model.dropout": 0.1 * i}}
            for i in range(4)]
    assert any("within 2 points" in w for w in too_small(base.replace(**{"train.epochs": 50.0}), [r["value"] for r in rows]))
    fig = sampler_planes({"random": rows}, space.params[0], space.params[1], ranked=False)
    assert not any("important" in ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes)


def test_figures_carry_two_device_pixels_per_css_pixel_and_fit_their_container():
    """A PNG is drawn at PIXEL_RATIO x its CSS size (sharp on HiDPI screens) and its Image widget is as wide as
    its container up to that CSS size: never stretched past its pixels (blurry), never cut off."""
    from matplotlib.figure import Figure

    from labkit.widgets.live import DPI, PIXEL_RATIO, png, png_css_width, png_image

    fig = Figure(figsize=(9.0, 3.0))
    fig.subplots().plot([0, 1], [0, 1])
    data = png(fig)
    width_px = int.from_bytes(data[16:20], "big")
    assert PIXEL_RATIO >= 2 and width_px == 9 * DPI * PIXEL_RATIO
    assert png_css_width(data) == 9 * DPI and png_css_width(b"not a png") is None
    img = png_image()
    assert img.layout.display == "none"  # nothing to show yet
    img.value = data
    assert (img.layout.width, img.layout.height, img.layout.max_width) == ("100%", "auto", f"{9 * DPI}px")
    assert img.layout.display == ""


def test_lr_preview_keeps_its_axis_labels_when_the_rate_changes_by_decades(monkeypatch):
    """Margins solved for 0.30's tick labels cut 0.00012's (and the axis label) off: the view re-solves them."""
    from collections import OrderedDict

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from labkit.data.sets import train_size_of
    from labkit.schedules import steps_per_epoch
    from labkit.widgets.live import LRView

    cfg = Config()
    size = train_size_of(cfg.data)
    # no picture kept from another test: each plan is drawn here, the next on the margins of the one before
    monkeypatch.setattr(LRView, "_previews", OrderedDict())
    view = LRView()
    for lr in (0.3, 0.000123, 123.0):
        view.set_plan(schedule_curve(cfg.replace(**{"optim.lr": lr}), size), steps_per_epoch(size, 64))
        canvas = FigureCanvasAgg(view.fig)
        canvas.draw()  # as the PNG was drawn: the margins the view chose, no new layout
        renderer, fig = canvas.get_renderer(), view.fig
        for ax in fig.axes:
            for text in (ax.yaxis.label, *ax.get_yticklabels()):
                if text.get_text():
                    assert text.get_window_extent(renderer).x0 >= 0, (lr, text.get_text())
