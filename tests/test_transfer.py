"""Transfer learning: class subsets, starting from a run, freezing (batch norm included), the backbone's LR group,
the linear-probe fast path, the generated 'different' dataset, the four-quadrant demo, and one-line errors.

One tiny source run (CIFAR-10 animals, width 8, one epoch) is shared by the module; every other run is a few
steps on a few dozen images, without test passes where the test does not read them.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import needs_cifar
from labkit import Config, load_run, train
from labkit.cli import main
from labkit.data import load_data
from labkit.data.shapes import CLASSES as SHAPES
from labkit.models import blocks_of, build_model, head_of
from labkit.training import prepare
from labkit.training.transfer import LinearProbe, backbone_scales, split_at_head

pytestmark = needs_cifar

TINY = {"model.width": 8, "train.epochs": 1.0, "train.threads": 1, "probe.every": 0, "train.tta": False,
        "train.test": False, "train.batch_size": 32}


def tiny(out, **over) -> Config:
    return Config().replace(**{**TINY, "train.out": str(out), **over})


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A source trained on three animal classes (the runs below transfer to other classes)."""
    out = tmp_path_factory.mktemp("runs")
    run = train(tiny(out, **{"data.classes": "bird,cat,dog", "data.subset": 96, "data.val_size": 30}))
    assert run.status == "completed"
    return load_run(run.dir)


def target(source, out, **over) -> Config:
    """Two vehicle classes from `source`, 64 images (two steps an epoch)."""
    return tiny(out, **{"data.classes": "airplane,ship", "data.subset": 64, "data.val_size": 20,
                        "model.init_from": str(source.dir), **over})


def test_class_subsets_by_index_or_name():
    d = load_data(Config().replace(**{"data.classes": "ship,0", "data.subset": 40, "data.val_size": 10}).data)
    assert d.classes == ["ship", "airplane"] and d.train_y.bincount().tolist() == [20, 20]
    assert set(d.test_y.tolist()) == {0, 1} and len(d.test_y) == 2000  # the test set keeps those classes only
    assert d.val_y.bincount().tolist() == [5, 5]


def test_loading_keeps_the_backbone_and_makes_a_new_head(source, tmp_path):
    cfg = target(source, tmp_path).validate()
    data, model, _, _ = prepare(cfg)
    src = source.load_state_dict()
    head = head_of(model)
    for k, v in model.state_dict().items():
        if not k.startswith(head + "."):
            assert torch.equal(v.cpu(), src[k].cpu()), k
    fresh = build_model(cfg.model, data.input_shape, 2, seed=cfg.train.seed).state_dict()
    assert model.state_dict()[f"{head}.weight"].shape == (2, src[f"{head}.weight"].shape[1])
    assert torch.equal(model.state_dict()[f"{head}.weight"].cpu(), fresh[f"{head}.weight"])  # the run's own seeded head
    # the same classes: the source's head is kept too
    same = tiny(tmp_path, **{"data.classes": "bird,cat,dog", "data.subset": 30, "data.val_size": 0,
                             "model.init_from": str(source.dir)})
    _, model, _, _ = prepare(same.validate())
    assert torch.equal(model.state_dict()[f"{head}.weight"], src[f"{head}.weight"])


@pytest.fixture(scope="module")
def partial(source, tmp_path_factory):
    """Two epochs from the source with its first three blocks frozen and the rest at a tenth of the rate."""
    out = tmp_path_factory.mktemp("partial")
    return train(target(source, out, **{"model.freeze": "3", "optim.backbone_lr_scale": 0.1, "train.epochs": 2.0}))


def test_frozen_parameters_and_batch_norm_statistics_stay_as_the_source(source, partial):
    """requires_grad=False alone lets batch norm's running averages drift (pytorch issue 86590); frozen blocks
    stay in eval mode, even after each epoch's validation switched the model back to training mode."""
    assert partial.status == "completed" and partial.summary["transfer"]["frozen"] == "the first 3 of 7 blocks"
    src, after = source.load_state_dict(), load_run(partial.dir).load_state_dict()
    blocks = blocks_of(partial.model)
    frozen = [k for k in src if any(k.startswith(m + ".") for m in sum(blocks[:3], []))]
    assert any(k.endswith("running_mean") for k in frozen) and any(k.endswith("running_var") for k in frozen)
    for k in frozen:
        assert torch.equal(after[k], src[k]), k
    later = [f"{blocks[3][0]}.weight"] + [k for k in src if k.startswith(blocks[3][-1] + ".") and "running" in k]
    assert len(later) == 3 and all(not torch.equal(after[k], src[k]) for k in later)  # the next block trained


def test_the_backbone_group_trains_at_its_scale(partial):
    steps = [m for m in partial.metrics if m["kind"] == "step"]
    assert len(steps) == 4
    for s in steps:
        assert set(s["lrs"]) == {"model", "features"} and s["lrs"]["features"] == pytest.approx(0.1 * s["lrs"]["model"])
    assert partial.summary["transfer"]["backbone_groups"] == ["features"]


def test_linear_probe_trains_the_head_on_features_computed_once(source, tmp_path):
    cfg = target(source, tmp_path, **{"model.freeze": "all", "reg.flip": False, "reg.crop": 0,
                                      "train.precision": "fp32", "train.epochs": 3.0})
    run = train(cfg)
    probe = run.summary["transfer"]["linear_probe"]
    assert run.status == "completed" and probe["features"] == 32  # width 8, three stages: 8 * 4 channels
    after, src = load_run(run.dir).load_state_dict(), source.load_state_dict()
    head = head_of(run.model)
    assert all(torch.equal(after[k], src[k]) for k in src if not k.startswith(head + "."))
    # the whole network scores on images what the head scored on their features
    from labkit import evaluate

    data = load_data(cfg.data, cfg.train.seed)
    run.model.load_state_dict(after)
    loss, acc = evaluate(run.model, data, "val", precision="fp32")
    best = next(m for m in run.metrics if m["kind"] == "epoch" and m["epoch"] == run.summary["best_epoch"])
    assert acc == best["val_acc"] and loss == pytest.approx(best["val_loss"], rel=1e-4)


def test_linear_probe_cuts_the_forward_at_the_head_and_its_state_is_the_whole_model():
    """The part from the head's input on keeps what the forward does there: the dropout before the head, and
    whatever follows it (the convnet scales its logits)."""
    model = build_model(Config().replace(**{"model.width": 8, "model.dropout": 0.5}).model, (3, 32, 32), 3, seed=0)
    front, classify = split_at_head(model)
    assert any(isinstance(m, nn.Dropout) for m in classify.modules())
    probe = LinearProbe(model, classify)
    assert [p for _, p in probe.named_parameters()] == [model.head.weight]
    assert probe.state_dict().keys() == model.state_dict().keys()
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(classify(front(x)), model(x))
    assert backbone_scales(model, 0.1) == {"features": 0.1}
    mlp = build_model(Config().replace(**{"model.kind": "mlp", "model.depth": 2}).model, (2,), 2, seed=0)
    assert head_of(mlp) == "net.7" and set(backbone_scales(mlp, 0.5)) == {"net.1", "net.2", "net.4", "net.5"}


def test_blocks_are_read_off_the_module_tree():
    for kind, count in (("convnet", 1 + 2 * 2), ("resnet", 1 + 2 * 2), ("mlp", 2)):
        m = build_model(Config().replace(**{"model.kind": kind, "model.depth": 2, "model.width": 8}).model,
                        (3, 32, 32), 10, seed=0)
        blocks = blocks_of(m)
        assert len(blocks) == count, kind
        named = {n for b in blocks for n in b}
        owned = {n for n, p in m.named_parameters() if not n.startswith(head_of(m) + ".")}
        assert all(any(p.startswith(n + ".") for n in named) for p in owned)  # every parameter but the head's


def test_shapes_are_a_different_offline_dataset():
    cfg = Config().replace(**{"data.dataset": "shapes", "data.subset": 50, "data.val_size": 10}).validate()
    d = load_data(cfg.data, seed=0)
    assert d.classes == list(SHAPES) and d.train_x.shape == (50, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.train_y.bincount().tolist() == [10] * 5 and d.test_y.bincount().tolist() == [200] * 5
    again = load_data(cfg.data, seed=0)
    assert torch.equal(d.train_x, again.train_x)  # a fixed pool: the same images everywhere
    two = load_data(cfg.replace(**{"data.classes": "star,circle", "data.subset": 20}).data, seed=1)
    assert two.classes == ["star", "circle"] and two.train_y.bincount().tolist() == [10, 10]


def test_the_demo_measures_a_column_and_reuses_its_runs(source, tmp_path):
    from labkit import plots
    from labkit.transfer import transfer_demo

    kw = dict(source=source.dir, small=2, small_steps=2, threads=1, targets=("different",), sizes=("small",))
    r = transfer_demo(tmp_path / "runs", **kw)
    assert set(r["cells"]) == {("small", "different")}
    cell = r["cells"][("small", "different")]
    assert set(cell["accuracy"]) == {"scratch", "linear probe", "fine-tune"} and cell["chance"] == 0.2
    assert all(0 <= a <= 1 for a in cell["accuracy"].values()) and not any(cell["cached"].values())
    probe = json.loads((tmp_path / "runs" / "transfer-demo" / cell["runs"]["linear probe"].split("/")[-1]
                        / "summary.json").read_text())
    assert "linear_probe" in probe["transfer"]
    again = transfer_demo(tmp_path / "runs", **kw)
    assert all(again["cells"][("small", "different")]["cached"].values())
    assert again["cells"][("small", "different")]["accuracy"] == cell["accuracy"]
    fig = plots.transfer_quadrants(r)
    texts = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    titles = [ax.get_title(loc="left").replace("\n", " ") for ax in fig.get_axes()]
    assert "not measured" in texts and any("linear classifiers from different stages" in t for t in titles)
    assert main(["demo", "transfer", "--small", "0", "--runs", str(tmp_path / "none")]) == 2
    assert main(["demo", "transfer", "--source", str(tmp_path), "--runs", str(tmp_path / "none")]) == 2


@pytest.mark.parametrize("args, says", [
    (["--init-from", "{missing}"], "does not exist"),
    (["--init-from", "{tmp}"], "is not a labkit run directory"),
    (["--init-from", "{source}", "--width", "16"], "does not fit this one: layer features."),
    (["--init-from", "{source}", "--width", "16"], "there and [16, "),
    (["--init-from", "{source}", "--width", "16"], "here; use the source's model settings (--width 8)"),
    (["--freeze", "8"], "model.freeze=8 is deeper than the model: convnet (depth 3) has 7 blocks"),
    (["--classes", "cat,zebra"], "unknown class 'zebra' of cifar10; allowed: airplane"),
    (["--classes", "cat,3"], "names class 'cat' (index 3) twice"),
    (["--classes", "cat"], "keeps one class"),
])
def test_bad_transfer_input_is_one_line_and_exit_2(args, says, source, tmp_path, capsys):
    args = [a.format(missing=tmp_path / "nope", tmp=tmp_path, source=source.dir) for a in args]
    width = [] if "--width" in args else ["--width", "8"]
    assert main(["train", *args, *width, "--runs", str(tmp_path / "r"), "--subset", "30", "--val-size", "10",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("labkit: error: ") and says in err, err
    assert not (tmp_path / "r").exists()  # nothing was started


def test_the_labs_transfer_section_offers_the_run_store(source, tmp_path):
    from labkit.widgets.controls import SECTIONS, Controls
    from labkit.widgets.transfer import RunPicker, run_choices

    assert SECTIONS["Transfer"] == ("model.init_from", "data.classes", "model.freeze", "optim.backbone_lr_scale")
    controls = Controls(runs=lambda: run_choices(source.dir.parent))
    picker = controls.widgets["model.init_from"]
    assert isinstance(picker, RunPicker) and picker.value == "" and controls.config.model.init_from is None
    assert str(source.dir) in [v for _, v in picker.options] and "cifar10 [bird,cat,dog]" in picker.options[1][0]
    picker.value = str(source.dir)
    controls.widgets["model.freeze"].value = "all"
    cfg = controls.config
    assert cfg.model.init_from == str(source.dir) and cfg.model.freeze == "all"
    elsewhere = str(tmp_path / "moved-run")
    controls.set_config(cfg.replace(**{"model.init_from": elsewhere}))  # e.g. a config loaded from another store
    assert picker.value == elsewhere and controls.config.model.init_from == elsewhere
