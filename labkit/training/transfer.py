"""Transfer learning: start from a run's best.pt, freeze blocks, a slower backbone, and the linear-probe fast path.

Pretrained weights cannot be downloaded where labkit runs offline, so any run is a source: `model.init_from`
names its directory, and its best.pt is loaded into the new model before training. The classifier head (the
model's last Linear, `labkit.models.head_of`) is kept only when the classes are the same; otherwise the new
run's own freshly initialized head replaces it. Every other tensor must fit, or the error names the first
layer that does not.

`model.freeze` stops gradients to everything but the head ("all") or to the first N blocks
(`labkit.models.blocks_of`). Frozen modules also stay in eval mode, so their batch norms keep the source's
running statistics: `requires_grad=False` alone leaves them updating in every training forward pass
(pytorch/pytorch#86590). `optim.backbone_lr_scale` gives everything but the head its own parameter group at
that fraction of the scheduled rate (labkit.optimizers' per-group scales).

Linear probe fast path: with everything but the head frozen and no augmentation, every training image goes
through the same frozen network in every epoch. Its features (the head's input) are computed once, and the
run trains the head on them as a small dataset of vectors: the same loop, checkpoints and metrics, seconds
instead of minutes. The forward is cut at the head's input with torch.fx, so whatever the model does from
there on (a dropout before the head, a scale after it) still runs. Test-time mirroring carries over exactly:
that part is affine (checked), so the average of its outputs on an image and its mirror is its output on the
average of their features.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.fx
from torch import nn

from ..config import Config
from ..data.sets import Data, dataset_classes, load_data, pick_classes
from ..errors import LabkitError
from ..fields import flags_for
from ..models import MODELS, blocks_of, head_of
from ..precision import autocast, resolve_precision
from ..runs import RunRecord, open_run
from ..validate import freeze_depth
from .hooks import TrainContext, TrainHook

NOT_SHAPING = ("init", "dropout", "dropconnect", "init_from", "freeze")  # model settings that leave its tensors' shapes alone


def uses_transfer(config: Config) -> bool:
    """Whether the run starts from a source, freezes anything, or scales the backbone's rate."""
    m = config.model
    return bool(m.init_from) or freeze_depth(m.freeze) != 0 or config.optim.backbone_lr_scale != 1.0


def linear_probe_applies(config: Config, image: bool = True) -> bool:
    """Whether the fast path applies: everything but the head frozen and no augmentation at all."""
    r = config.reg
    augmented = r.mixup > 0 or (image and (r.flip or r.crop > 0 or r.cutout > 0 or r.cutmix > 0))
    return freeze_depth(config.model.freeze) is None and not augmented


# -- the source run --------------------------------------------------------------------------------------------
def source_run(path: str | Path, what: str = "model.init_from") -> RunRecord:
    """The run at `path`, checked to be one with a best.pt to start from; the error (about `what`, the setting that
    named it) says what is wrong and the fix."""
    fix = "give a run directory that holds best.pt (`labkit runs` lists them)"
    run = open_run(path, fix, prefix=f"{what}: ")
    if run.config is None:
        raise LabkitError(f"{what}: {run.dir} has no readable config.json, so its model is unknown; {fix}")
    if run.checkpoint is None:
        raise LabkitError(f"{what}: run {run.id} has no best.pt (it ended before its first validation); "
                          f"start from a run that completed an epoch")
    return run


def _class_names(config: Config) -> list[str] | None:
    """The class names a run of `config` trains on, or None when its data cannot be found now (no download)."""
    d = dataclasses.replace(config.data, download=False)
    try:
        names = dataset_classes(d)
        return [names[i] for i in pick_classes(d.classes, names, d.dataset)]
    except (LabkitError, KeyError):
        return None


def _mismatch(source: Config, target: Config, src_state: Mapping[str, torch.Tensor],
              state: Mapping[str, torch.Tensor], head: str, run_id: str) -> str | None:
    """The error for the first tensor outside the head that the source does not fill exactly, or None."""
    inside = lambda k: k.startswith(head + ".")  # noqa: E731
    for key, t in state.items():
        if inside(key):
            continue
        if key not in src_state:
            why = f"this model's layer {key} ({list(t.shape)}) is not in that run's checkpoint"
            break
        if tuple(src_state[key].shape) != tuple(t.shape):
            why = f"layer {key} is {list(src_state[key].shape)} there and {list(t.shape)} here"
            break
    else:
        extra = next((k for k in src_state if not inside(k) and k not in state), None)
        if extra is None:
            return None
        why = f"that run's layer {extra} has no place in this model"
    differ = {f"model.{f.name}": getattr(source.model, f.name) for f in dataclasses.fields(source.model)
              if f.name not in NOT_SHAPING and getattr(source.model, f.name) != getattr(target.model, f.name)}
    fix = (f"use the source's model settings ({flags_for(differ)})" if differ else
           "the model code changed since that run: train a new source")
    return f"model.init_from: the model of run {run_id} does not fit this one: {why}; {fix}, or start from another run"


def _head_keys(state: Mapping[str, torch.Tensor], head: str) -> list[str]:
    return [k for k in state if k.startswith(head + ".")]


def load_source(model: nn.Module, config: Config, classes: list[str]) -> dict[str, Any]:
    """Load `config.model.init_from`'s best.pt into `model` (a new head unless the classes are the same).

    Returns what was done, for the run's summary: the source run, whether the head was kept, the tensors loaded.
    Raises LabkitError naming the first layer that does not fit.
    """
    run = source_run(config.model.init_from)
    src_state = run.load_state_dict()
    state = model.state_dict()
    head = head_of(model)
    problem = _mismatch(run.config, config, src_state, state, head, run.id)
    if problem:
        raise LabkitError(problem)
    src_classes = _class_names(run.config)
    head_keys = _head_keys(state, head)
    same_shape = all(k in src_state and src_state[k].shape == state[k].shape for k in head_keys)
    keep_head = same_shape and (src_classes is None or src_classes == list(classes))
    load = {k: v for k, v in src_state.items() if k in state and (keep_head or k not in head_keys)}
    model.load_state_dict(load, strict=False)
    n_src = src_state[head_keys[0]].shape[0] if head_keys and head_keys[0] in src_state else None
    if keep_head:
        head_note = "kept (the same classes)"
    elif n_src is not None and n_src != len(classes):
        head_note = f"new ({n_src} classes there, {len(classes)} here)"
    else:
        head_note = "new (other classes)"
    return {"init_from": str(run.dir), "source": run.id, "source_classes": src_classes, "head": head_note,
            "loaded_tensors": len(load)}


def check_init_from(config: Config) -> None:
    """Before a run starts: the source exists, is a run with best.pt, and its model fits (one line on any failure).

    Builds the model on the meta device (no memory, no initialization): it costs a checkpoint read and the data's
    class count (the data is loaded, from the in-process cache after the first time).
    """
    if not config.model.init_from:
        return
    run = source_run(config.model.init_from)
    data = load_data(config.data, config.train.seed)
    with torch.device("meta"):
        model = MODELS.get(config.model.kind)(config.model, data.input_shape, data.num_classes)
    src_state = torch.load(run.checkpoint, weights_only=True, map_location="meta")
    problem = _mismatch(run.config, config, src_state, model.state_dict(), head_of(model), run.id)
    if problem:
        raise LabkitError(problem)


# -- freezing and the backbone's rate ----------------------------------------------------------------------------
def frozen_blocks(model: nn.Module, freeze: str) -> list[list[str]]:
    """The blocks `freeze` ("none", "all", "N") stops; the error says how many blocks the model has."""
    depth = freeze_depth(freeze)
    blocks = blocks_of(model)
    if depth is None:
        return blocks
    if depth > len(blocks):
        raise LabkitError(f"model.freeze={freeze} is deeper than the model: it has {len(blocks)} blocks below its "
                          f"head; allowed: none, all, or 1 to {len(blocks)}")
    return blocks[:depth]


def freeze(model: nn.Module, freeze: str) -> list[nn.Module]:
    """Stop the gradients of the blocks `freeze` names; returns their modules (to be kept in eval mode)."""
    modules = [model.get_submodule(name) for block in frozen_blocks(model, freeze) for name in block]
    for m in modules:
        m.requires_grad_(False)
        m.eval()
    return modules


def backbone_scales(model: nn.Module, scale: float) -> dict[str, float]:
    """lr_scales giving everything but the head `scale` x the rate: the fewest name prefixes that cover it."""
    head = head_of(model)
    out: dict[str, float] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if full == head or not any(True for _ in child.parameters()):
                continue
            if head.startswith(full + "."):
                visit(full + ".", child)
            else:
                out[full] = scale

    visit("", model)
    return out


# -- the linear-probe fast path ----------------------------------------------------------------------------------
def split_at_head(model: nn.Module) -> tuple[torch.fx.GraphModule, torch.fx.GraphModule] | None:
    """(features, classify): the model's forward cut just before its head (and a dropout feeding the head), by
    torch.fx; classify runs the rest, so anything the forward does after the head (the convnet scales its
    logits) is kept. None when the forward cannot be traced or the rest needs more than the features.
    """
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception:  # data-dependent control flow etc.: no fast path, the run trains the frozen network as is
        return None
    head = head_of(model)
    nodes = list(traced.graph.nodes)
    at = next((n for n in nodes if n.op == "call_module" and n.target == head), None)
    if at is None or not at.args or not isinstance(at.args[0], torch.fx.Node):
        return None
    cut = at.args[0]
    while cut.op == "call_module" and isinstance(traced.get_submodule(cut.target), nn.modules.dropout._DropoutNd):
        cut = cut.args[0]  # dropout keeps working on the features, so it belongs to the trained part
    front, back = torch.fx.Graph(), torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for n in nodes:  # everything up to the cut
        env[n] = front.node_copy(n, lambda a: env[a])
        if n is cut:
            break
    front.output(env[cut])
    env = {cut: back.placeholder("features")}
    try:
        for n in nodes[nodes.index(cut) + 1:]:
            if n.op == "output":
                back.output(torch.fx.map_arg(n.args[0], lambda a: env[a]))
            elif n.op == "get_attr" or all(a in env for a in n.all_input_nodes):
                env[n] = back.node_copy(n, lambda a: env[a])
    except KeyError:  # the output needs a value from before the cut (a skip around the head)
        return None
    return torch.fx.GraphModule(traced, front), torch.fx.GraphModule(traced, back)


class LinearProbe(nn.Module):
    """What a linear probe trains: the model from its head's input on (the head, a dropout before it, anything
    after it), fed the frozen part's features.

    Its parameters are the head's alone; its state dict is the whole model's, so best.pt is a full model
    like any run's, and a later run can start from it.
    """

    def __init__(self, model: nn.Module, classify: nn.Module):
        super().__init__()
        object.__setattr__(self, "full", model)  # not a submodule: its frozen part never runs here
        self.classify = classify  # shares the head's module with `model`

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(features)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.full.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.full.load_state_dict(state_dict, strict=strict, assign=assign)


@torch.no_grad()
def features_of(front: nn.Module, data: Data, split: str, batch_size: int, mirror: bool,
                precision: str) -> torch.Tensor:
    """The features `front` gives every example of `split` (with `mirror`: averaged with the mirror image's)."""
    x_all = getattr(data, f"{split}_x")
    out = []
    for i in range(0, len(x_all), batch_size):
        x = data.to_input(x_all[i:i + batch_size])
        with autocast(precision, x.device):
            f = front(x).float()
            if mirror:
                f = 0.5 * (f + front(x.flip(3)).float())
        out.append(f)
    if not out:
        with autocast(precision, x_all.device):
            return front(data.to_input(data.train_x[:1])).float()[:0]
    return torch.cat(out)


def feature_data(front: nn.Module, data: Data, config: Config) -> Data:
    """`data` as the frozen part's features: train as is, val and test mirrored when TTA is on (the test split
    only when the run has a test pass). The model must be in eval mode."""
    t = config.train
    precision = resolve_precision(config)
    mirror = t.tta and data.kind == "image"
    if not t.test:
        data = dataclasses.replace(data, test_x=data.test_x[:0], test_y=data.test_y[:0])
    parts = {split: features_of(front, data, split, t.eval_batch_size, mirror and split != "train", precision)
             for split in ("train", "val", "test")}
    dev = parts["train"].device  # the identity normalization lives where the features do
    return Data(data.name, "features", list(data.classes), parts["train"], data.train_y, parts["val"], data.val_y,
                parts["test"], data.test_y, torch.zeros(1, device=dev), torch.ones(1, device=dev))


@torch.no_grad()
def _linear(classify: nn.Module, f: torch.Tensor) -> bool:
    """Whether `classify` (in eval mode) is affine in its input, so averaging features averages outputs (TTA)."""
    a, b = f[:4], f.flip(0)[:4]
    mid = classify(0.5 * (a + b))
    return bool(torch.allclose(mid, 0.5 * (classify(a) + classify(b)), rtol=1e-4, atol=1e-5))


# -- setting a run up ---------------------------------------------------------------------------------------------
@dataclass
class Transfer:
    """A run's transfer set-up: the model and data it trains (a LinearProbe on features in the fast path), its
    LR groups, the modules kept in eval mode, and what was done (for summary.json)."""

    model: nn.Module
    data: Data
    lr_scales: dict[str, float] = field(default_factory=dict)
    frozen: list[nn.Module] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def setup_transfer(config: Config, data: Data, model: nn.Module) -> Transfer:
    """Load the source, freeze, and scale the backbone's rate as `config` asks; take the fast path where it applies."""
    info: dict[str, Any] = {}
    if config.model.init_from:
        info.update(load_source(model, config, data.classes))
    frozen = freeze(model, config.model.freeze)
    blocks = len(blocks_of(model))
    depth = freeze_depth(config.model.freeze)
    info["frozen"] = ("everything but the head" if depth is None else
                      f"the first {depth} of {blocks} blocks" if depth else "nothing")
    scale = config.optim.backbone_lr_scale
    scales = backbone_scales(model, scale) if scale != 1.0 and depth is not None else {}
    if scales:
        info["backbone_lr_scale"] = scale
        info["backbone_groups"] = list(scales)
    if not linear_probe_applies(config, data.kind == "image"):
        return Transfer(model, data, scales, frozen, info)
    tick = time.perf_counter()
    parts = split_at_head(model)
    if parts is None or not len(data.train_y):
        info["linear_probe"] = "not available: the model's forward could not be cut at its head; trained as is"
        return Transfer(model, data, scales, frozen, info)
    front, classify = parts
    was = model.training
    model.eval()  # the frozen part as it runs in every epoch: batch norm on its running statistics, no dropout
    try:
        feats = feature_data(front, data, config)
        if config.train.tta and data.kind == "image" and not _linear(classify, feats.train_x):
            info["linear_probe"] = "not available: the head's output is not linear in its input (TTA); trained as is"
            return Transfer(model, data, scales, frozen, info)
    finally:
        model.train(was)
        for m in frozen:
            m.eval()
    info["linear_probe"] = {"features": int(feats.train_x[0].numel()) if len(feats.train_x) else None,
                            "seconds": round(time.perf_counter() - tick, 3)}
    return Transfer(LinearProbe(model, classify), feats, {}, [], info)


class TransferHook(TrainHook):
    """Keeps frozen modules in eval mode before every step (validation switches the model back to training mode)
    and writes what the transfer did into the run's summary."""

    def __init__(self, transfer: Transfer):
        self.transfer = transfer

    def on_start(self, ctx: TrainContext) -> None:
        ctx.summary["transfer"] = dict(self.transfer.info)
        self.before_step(ctx)

    def before_step(self, ctx: TrainContext) -> None:
        for m in self.transfer.frozen:
            if m.training:
                m.eval()
