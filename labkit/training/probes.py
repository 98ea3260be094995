"""Probes: snapshots of a network's insides while it trains, and their history read back.

Every `every` steps (and at step 0 and the last step) `Probes` records, per
activation module: mean, std, a fixed-bin histogram, the fraction of
saturated units (sigmoid/tanh) and of dead units (a unit that outputs <= 0,
or exactly 0 for other families, on the whole probe batch), the gradient
norm of the weight layer feeding it and of its output; and per parameter
tensor: its norm, gradient norm and the update/weight ratio
||w_after - w_before|| / ||w_before|| of the step just taken.

Snapshots are `ProbeEvent`s for live views; the run store writes them to
`probes.jsonl` in the compact form `compact_line` makes (floats rounded to
4 significant digits, histograms as integer counts: a few KB a snapshot),
and `labkit.probe_history.read_probes(run_dir)` gives them back as a `ProbeHistory`.

Step numbering: the snapshot of step s describes the network after s
optimizer steps (step 0 = the initialization): its activations on the probe
batch, then the gradient and the update of the step s -> s + 1.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..activations import ACTIVATIONS, is_activation
from ..config import ProbeConfig
from ..errors import LabkitError
from ..events import ProbeEvent
from ..models import DropConnectLinear
from .hooks import TrainContext, TrainHook

PRE_RANGE = (-4.0, 4.0)  # histogram range of activation inputs (pre-activations), in units of a unit-variance input
SATURATION = 0.02  # a saturating unit counts as saturated within this fraction of its range from a limit
DEAD_EPS = 1e-8  # non-ReLU families: a unit is dead when |output| stays below this on the whole probe batch
SAMPLE = 1 << 18  # values per layer that mean/std/histogram/saturation are computed from


def activation_name(module: nn.Module) -> str:
    """The ACTIVATIONS registry name of an activation module (by its class)."""
    return _ACT_NAMES.get(type(module), type(module).__name__.lower())


_ACT_NAMES: dict[type, str] = {}
for _name in ACTIVATIONS.names():
    _ACT_NAMES.setdefault(type(ACTIVATIONS.get(_name)()), _name)


def _weight_layer(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))


def _nan_stats(bins: int, lo: float, hi: float, family: str) -> dict[str, Any]:
    return {"mean": math.nan, "std": math.nan, "hist": [0] * bins, "lo": lo, "hi": hi,
            "saturated": math.nan if family == "saturating" else None, "dead": math.nan}


def _sample(y: torch.Tensor) -> torch.Tensor:
    """All of `y` as a 1-D tensor, or an evenly strided sample of about SAMPLE values when it is larger.

    A conv layer of the probe batch holds millions of values; statistics of a
    quarter-million-value sample differ in the third digit and cost a
    fraction of the full pass. The stride is odd, so with power-of-two channel
    counts every channel is sampled.
    """
    if y.ndim == 4 and not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last):
        y = y.permute(0, 2, 3, 1)  # a view that is contiguous, so reshape below copies nothing
    flat = y.reshape(-1)
    if flat.numel() <= SAMPLE:
        return flat
    step = (flat.numel() // SAMPLE) | 1
    return flat[::step].contiguous()


@torch.no_grad()
def tensor_stats(y: torch.Tensor, activation: str, bins: int = 40, pre: bool = False) -> dict[str, Any]:
    """Probe statistics of one activation output `y` (N, C, ...): mean, std, histogram, saturated, dead.

    All reductions are whole-tensor torch ops (no Python loops over units). Values
    outside the histogram range are counted in the edge bins, so an exploding
    layer shows as a spike at the edge instead of vanishing from the plot. A
    tensor holding NaN/inf gets statistics of its finite values (NaN when none).
    """
    traits = ACTIVATIONS.entry(activation).traits if activation in ACTIVATIONS else {}
    family = "pre" if pre else traits.get("family", "smooth")
    lo, hi = PRE_RANGE if pre else tuple(float(v) for v in traits.get("range", PRE_RANGE))
    y = y.detach().float()
    flat = _sample(y)  # mean, std, histogram and saturation from a strided sample; dead units from the full tensor
    std, mean = torch.std_mean(flat) if flat.numel() > 1 else (torch.zeros(()), flat.mean())
    if not bool(torch.isfinite(mean) & torch.isfinite(std)):  # one check, then the slow path only when needed
        finite = y[torch.isfinite(y)]
        if finite.numel() == 0:
            return _nan_stats(bins, lo, hi, family)
        out = tensor_stats(finite.view(-1, 1), activation, bins, pre)
        out["dead"] = math.nan  # units cannot be told apart once values are dropped
        return out
    hist = torch.histc(flat.clamp(lo, hi), bins=bins, min=lo, max=hi)
    hist = hist * (y.numel() / max(1, flat.numel()))  # counts in units of the whole tensor
    extra: list[torch.Tensor] = []
    if family == "saturating":
        a, b = (float(v) for v in traits.get("limit", (lo, hi)))
        tol = SATURATION * (b - a)
        extra.append(((flat <= a + tol) | (flat >= b - tol)).float().mean())
    if not pre:
        dims = [0, *range(2, y.ndim)] if y.ndim > 1 else [0]
        peak = y.amax(dim=dims) if family == "relu" else y.abs().amax(dim=dims)
        extra.append((peak <= (0.0 if family == "relu" else DEAD_EPS)).float().mean())
    vals = torch.stack([mean, std, *extra]).tolist()
    sat = vals[2] if family == "saturating" else None
    return {"mean": vals[0], "std": vals[1], "hist": [round(c) for c in hist.tolist()], "lo": lo, "hi": hi,
            "saturated": sat, "dead": None if pre else vals[-1]}


class Probes(TrainHook):
    """A TrainHook recording a ProbeEvent every `cfg.every` steps (and at the first and last step).

    The activation statistics come from a separate forward pass on a FIXED probe
    batch (the first `cfg.batch` examples of a seeded permutation of the training
    set, unaugmented), so snapshots are comparable across steps and runs. That
    pass runs under no_grad with dropout and DropConnect off (they would draw from the global
    RNG) and with batch norm using batch statistics but not updating its running
    averages (track_running_stats is switched off for the pass), so training
    with probes on takes exactly the steps it takes with probes off.
    Gradient norms and update ratios come from the real training step: weight
    gradients after its backward, activation gradients from tensor hooks put on
    that step's activations, the update from weights copied before the step.
    """

    def __init__(self, cfg: ProbeConfig):
        self.cfg = cfg
        self.every = max(1, int(cfg.every))
        self.bins = int(getattr(cfg, "bins", 40))
        if not 2 <= self.bins <= 1000:
            raise LabkitError(f"probe.bins={self.bins} is out of range; allowed: 2 to 1000; try 40")
        self._handles: list[Any] = []
        self._pending: dict[str, Any] | None = None

    # -- set-up ------------------------------------------------------------
    def on_start(self, ctx: TrainContext) -> None:
        data, model = ctx.data, ctx.model
        n = len(data.train_y)
        gen = torch.Generator().manual_seed(12345)  # own generator: the training RNG is never touched
        idx = torch.randperm(n, generator=gen)[: min(self.cfg.batch, n)].sort().values
        self.x = data.to_input(data.train_x[idx])
        self.acts = [(name, m) for name, m in model.named_modules() if is_activation(m)]
        self.act_names = {m: name for name, m in self.acts}
        self.params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.feeds = self._feeding_layers(model)
        self.total = ctx.schedule.total_steps

    def _feeding_layers(self, model: nn.Module) -> dict[str, str | None]:
        """For each activation, the weight layer on its main path: the first one called since the previous activation."""
        order: list[tuple[str, nn.Module]] = []
        names = {m: n for n, m in model.named_modules()}
        hooks = [m.register_forward_hook(lambda mod, i, o: order.append((names[mod], mod)))
                 for m in model.modules() if is_activation(m) or _weight_layer(m)]
        try:
            self._forward(model, self.x)
        finally:
            for h in hooks:
                h.remove()
        feeds: dict[str, str | None] = {}
        first: str | None = None
        for name, m in order:
            if _weight_layer(m):
                first = first or name
            elif name not in feeds:
                feeds[name] = first
                first = None
        return feeds

    # -- the probe forward ---------------------------------------------------
    def _forward(self, model: nn.Module, x: torch.Tensor) -> None:
        changed: list[tuple[nn.Module, str, Any]] = []
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
                changed.append((m, "track_running_stats", True))
                m.track_running_stats = False
            elif isinstance(m, (nn.modules.dropout._DropoutNd, DropConnectLinear)) and m.training:
                changed.append((m, "training", True))
                m.training = False
        try:
            with torch.no_grad():
                model(x)
        finally:
            for m, attr, v in changed:
                setattr(m, attr, v)

    def activation_stats(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        """Per-layer statistics of the activations on the fixed probe batch, in network order."""
        out: dict[str, dict[str, Any]] = {}
        pre = self.cfg.pre_activation

        def hook(mod: nn.Module, inp: tuple, y: torch.Tensor) -> None:
            name, act = self.act_names[mod], activation_name(mod)
            s = tensor_stats(y, act, self.bins)
            s = {"activation": act, **s, "grad_norm": None, "act_grad_norm": None}
            if pre and inp and isinstance(inp[0], torch.Tensor):
                s["pre"] = tensor_stats(inp[0], act, self.bins, pre=True)
            out[name] = s

        handles = [m.register_forward_hook(hook) for _, m in self.acts]
        try:
            self._forward(model, self.x)
        finally:
            for h in handles:
                h.remove()
        return out

    # -- the training step ---------------------------------------------------
    def _due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total - 1

    def before_step(self, ctx: TrainContext) -> None:
        if not self._due(ctx.step):
            return
        layers = self.activation_stats(ctx.model)
        act_grads: dict[str, torch.Tensor] = {}

        def fwd(mod: nn.Module, inp: tuple, y: torch.Tensor) -> None:
            if isinstance(y, torch.Tensor) and y.requires_grad:
                name = self.act_names[mod]
                y.register_hook(lambda g: act_grads.__setitem__(name, torch.linalg.vector_norm(g.detach().float())))

        self._handles = [m.register_forward_hook(fwd) for _, m in self.acts]
        self._pending = {"step": ctx.step, "epoch": ctx.epoch, "layers": layers, "act_grads": act_grads,
                         "before": [p.detach().clone() for _, p in self.params], "grads": None}

    def _grab_grads(self) -> list[torch.Tensor | None]:
        return [None if p.grad is None else torch.linalg.vector_norm(p.grad.detach().float()) for _, p in self.params]

    def after_backward(self, ctx: TrainContext) -> None:
        if self._pending is not None:
            self._pending["grads"] = self._grab_grads()
            self._remove_hooks()

    def after_step(self, ctx: TrainContext) -> None:
        if self._pending is not None:
            self._emit(ctx, updated=True)

    def on_end(self, ctx: TrainContext) -> None:
        # a step that diverged never reaches after_step: its snapshot (often the one with the NaNs) still goes out
        if self._pending is not None:
            self._emit(ctx, updated=False)
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _emit(self, ctx: TrainContext, updated: bool) -> None:
        p = self._pending
        self._pending = None
        self._remove_hooks()
        if p["grads"] is None:  # closure optimizers (L-BFGS) skip after_backward; their last gradients are still there
            p["grads"] = self._grab_grads()
        norms = [torch.linalg.vector_norm(b.float()) for b in p["before"]]
        nan = norms[0].new_tensor(math.nan) if norms else torch.tensor(math.nan)  # same device as the norms
        if updated:
            deltas = [torch.linalg.vector_norm(q.detach().float() - b.float()) for (_, q), b in zip(self.params, p["before"])]
        else:
            deltas = [nan] * len(norms)
        grads = [nan if g is None else g for g in p["grads"]]
        # one tolist() for all numbers: a single sync instead of three per tensor
        flat = torch.stack([torch.stack(norms), torch.stack(deltas), torch.stack(grads)]).tolist() if norms else [[], [], []]
        params: dict[str, dict[str, float]] = {}
        for i, (name, _) in enumerate(self.params):
            w, d, g = flat[0][i], flat[1][i], flat[2][i]
            params[name] = {"norm": w, "grad_norm": g, "update_ratio": d / w if w > 0 else math.nan, "ndim": self.params[i][1].ndim}
        layers = p["layers"]
        act_grads = {k: float(v) for k, v in p["act_grads"].items()}
        for name, s in layers.items():
            feed = self.feeds.get(name)
            if feed is not None and f"{feed}.weight" in params:
                s["grad_norm"] = params[f"{feed}.weight"]["grad_norm"]
            s["act_grad_norm"] = act_grads.get(name)
        ctx.emit(ProbeEvent(p["step"], p["epoch"], layers, params))
