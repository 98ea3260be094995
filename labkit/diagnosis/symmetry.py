"""Zero (or constant) init: every unit of a layer computes the same thing, gets the same gradient, and stays so.

Seen two ways: in the probes (weight tensors of norm exactly 0, activations
with no spread) and, given the model, by running it on a batch and comparing
the units' outputs. Symmetry is the cause of what follows from it (silent
units, no collapse worth naming, a flat loss), so it explains those.
"""
from __future__ import annotations

from typing import Any

from ..errors import LabkitError
from ..probe_history import ProbeHistory
from .finding import Finding, not_judged
from .fixes import Fix, init_options, join_or, offer
from .fmt import num
from .registry import Explains, finding, is_concern
from .runner import Context
from .thresholds import PLOT_STATS, PROBE_EVERY, SYMMETRY_TOL


def _symmetry_probes(h: ProbeHistory) -> dict[str, Any]:
    params = h.snapshot_params(-1)
    zero_w = [p for p in h.weight_params() if num((params.get(p) or {}).get("norm")) == 0.0]
    snap = h.snapshot(-1)
    flat = [n for n in h.layers if num((snap.get(n) or {}).get("std")) == 0.0]
    return {"zero_weights": zero_w, "zero_spread": flat, "step": h.steps[-1]}


def unit_symmetry(model: Any, x: Any) -> dict[str, dict[str, int]]:
    """Per activation layer: units, distinct units (outputs compared on the batch `x`), and all-zero units.

    Runs a copy of the model in eval mode (no running statistics change, no
    dropout), so it is safe on a model another thread is training. Two units
    are the same when their outputs on every example agree to SYMMETRY_TOL.
    Weight layers whose rows are all identical are reported under "weights".
    """
    import copy

    import torch
    from torch import nn

    from ..activations import is_activation

    m = copy.deepcopy(model).float().eval()
    outs: dict[str, torch.Tensor] = {}
    names = {mod: n for n, mod in m.named_modules()}
    hooks = [mod.register_forward_hook(lambda mod, i, y: outs.__setitem__(names[mod], y.detach()))
             for mod in m.modules() if is_activation(mod)]
    try:
        with torch.no_grad():
            m(x.float() if x.dtype != torch.uint8 else x)
    finally:
        for hk in hooks:
            hk.remove()
    res: dict[str, dict[str, int]] = {}
    for name, y in outs.items():
        if y.ndim < 2 or y.shape[1] < 2:
            continue
        units = y.transpose(0, 1).reshape(y.shape[1], -1).double()  # (C, N * spatial)
        scale = float(units.abs().max())
        zero = (units.abs().amax(dim=1) <= SYMMETRY_TOL * max(scale, 1e-30)).sum().item() if scale > 0 else units.shape[0]
        if scale == 0:
            distinct = 1
        else:
            q = torch.round(units / (scale * SYMMETRY_TOL * 10))
            distinct = int(torch.unique(q, dim=0).shape[0])
        res[name] = {"units": int(units.shape[0]), "distinct": distinct, "zero": int(zero)}
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)) and mod.weight.shape[0] > 1:
                w = mod.weight.reshape(mod.weight.shape[0], -1).double()
                same = bool((w - w[:1]).abs().max() <= SYMMETRY_TOL * max(float(w.abs().max()), 1e-30))
                if same:
                    res.setdefault("weights", {})[f"{name}.weight"] = int(w.shape[0])  # type: ignore[index]
    return res


def probe_input(data: Any, n: int = 64) -> Any:
    """A batch the symmetry check runs the model on: a Data's first training examples, or a tensor as given."""
    import torch

    if data is None:
        return None
    if isinstance(data, torch.Tensor):
        return data
    if hasattr(data, "train_x") and hasattr(data, "to_input"):
        return data.to_input(data.train_x[:n])
    raise LabkitError(f"data must be a labkit Data or an input tensor, got {type(data).__name__}")


def _batch(ctx: Context, notes: list[Finding]) -> Any:
    """The batch to run ctx.model on: ctx.data, else the config's data (a note when it cannot be loaded)."""
    if ctx.model is None:
        return None
    x = probe_input(ctx.data)
    if x is None and ctx.config is not None:
        try:
            from ..data.sets import load_data

            x = probe_input(load_data(ctx.config.data, ctx.config.train.seed))
        except LabkitError as e:
            notes.append(not_judged("symmetry", "Unit symmetry: the model could not be checked",
                                    f"the data to run it on could not be loaded: {e}", "pass data=", PLOT_STATS))
    return x


@finding("symmetry", codes={"symmetry", "not_judged"}, explains=[
    Explains({"dead_units", "activation_collapse", "saturated_units", "vanishing_gradients"}),
    Explains({"lr_too_low", "update_ratio_low", "underfitting"}, when=is_concern)])
def symmetry(ctx: Context) -> list[Finding]:
    """Symmetric units: zero-norm weights in the probes, identical unit outputs on a batch."""
    notes: list[Finding] = []
    x = _batch(ctx, notes)
    h, model = ctx.probes, ctx.model
    ev, vals, step = [], {}, None
    if h is not None and len(h):
        s = _symmetry_probes(h)
        step = s["step"]
        if s["zero_weights"]:
            ev.append(f"weight tensors with norm exactly 0 at step {s['step']}: {', '.join(s['zero_weights'])}")
            if s["zero_spread"]:
                ev.append(f"activations with zero spread (std 0 on the probe batch): {', '.join(s['zero_spread'])}")
            vals.update(s)
    if model is not None and x is not None:
        try:
            res = unit_symmetry(model, x)
        except Exception as e:  # a model this diagnosis cannot run (wrong input shape...): say so, do not fail
            probes_fix = [Fix({"probe.every": PROBE_EVERY}, "probe snapshots show zero-norm weights")] if h is None else []
            notes.append(not_judged("symmetry", "Unit symmetry: the model could not be checked",
                                    f"running the model on a batch failed: {type(e).__name__}: {e}",
                                    f"diagnose from the probes (a snapshot every {PROBE_EVERY} steps)", PLOT_STATS,
                                    probes_fix))
            res = {}
        weights = res.pop("weights", {}) if isinstance(res.get("weights"), dict) else {}
        same = {k: v for k, v in res.items() if v["units"] > 1 and v["distinct"] == 1}
        if weights and same:
            ev.append("on a batch of the training data, every unit of " +
                      ", ".join(f"{k} ({v['units']} units{', all outputting 0' if v['zero'] == v['units'] else ''})"
                                for k, v in same.items()) + " gives the same output")
            ev.append(f"weight tensors whose rows are all identical: {', '.join(weights)}")
            vals.update({"identical_layers": same, "identical_weights": weights})
    if not ev:
        return notes
    note = ctx.run.loss_note()
    if note:
        ev.append(note)
    words, fixes = offer(None, init_options(ctx.config))  # the init is zeros: any random init is a change
    sug = ("initialize with random weights: " + join_or(words) +
           "; identical units get identical gradients, so symmetry never breaks")
    return [Finding("symmetry", "alarm", "Symmetric units: zero (or constant) init makes every unit the same",
                    "; ".join(ev), sug, PLOT_STATS, step, vals, fixes), *notes]
