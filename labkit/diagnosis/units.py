"""What the probes show inside the network: dead ReLUs, saturated sigmoid/tanh units, activations collapsing with depth.

Saturation and collapse at initialization are causes: a network whose units
sit at their limits, or whose deep layers carry no signal, learns slowly, so
they explain a flat loss, tiny updates and underfitting. A dead layer (an
alarm) caps the accuracy, so it explains underfitting.
"""
from __future__ import annotations

import math

import numpy as np

from ..probe_history import ProbeHistory
from .finding import Finding
from .fixes import BATCH_NORM, HE, RELU_HE, XAVIER, Fix, init_options, join_or, lower_lr, offer
from .fmt import g, num, pct, round3
from .registry import Explains, Needs, finding, is_alarm, is_concern
from .runner import Context
from .thresholds import (COLLAPSE_ALARM, COLLAPSE_RATIO, CONFIDENT, DEAD_ALARM, DEAD_WARN, MIN_COLLAPSE_LAYERS,
                         NARROW_SPREAD, PLOT_FIRST, PLOT_STATS, SAT_INIT, SAT_LATE)


def _loss_note(ctx: Context) -> str:
    return ctx.run.loss_note()


# a bad init is the cause of a flat loss (whose numbers then join the cause's evidence), tiny updates and underfitting
INIT_CAUSE = (Explains({"lr_too_low"}, when=is_concern, note=_loss_note),
              Explains({"update_ratio_low", "underfitting"}, when=is_concern))


def layers_of(h: ProbeHistory, family: str) -> list[str]:
    """The probed layers whose activation belongs to `family` (relu, saturating, ...)."""
    from ..activations import ACTIVATIONS

    out = []
    for name in h.layers:
        act = h.activation(name)
        if act in ACTIVATIONS and ACTIVATIONS.entry(act).traits.get("family") == family:
            out.append(name)
    return out


def _recent(h: ProbeHistory, layer: str, stat: str, n: int = 3) -> float:
    s = h.series(layer, stat)[-n:]
    return float(np.nanmedian(s)) if np.isfinite(s).any() else math.nan


@finding("dead_units", codes={"dead_units"}, needs=Needs(probes=True),
         explains=[Explains({"underfitting"}, when=is_alarm)])
def dead(ctx: Context) -> Finding | None:
    """Dead ReLUs: half or more of a layer's units silent on the whole probe batch."""
    h = ctx.probes
    layers = layers_of(h, "relu")
    dead = {name: _recent(h, name, "dead") for name in layers}
    bad = {k: v for k, v in dead.items() if math.isfinite(v) and v >= DEAD_WARN}
    if not bad:
        return None
    first = {k: float(h.series(k, "dead")[0]) for k in bad}
    step = h.steps[-1]
    ev = ", ".join(f"{k} {pct(v)} dead" for k, v in bad.items()) + \
        f" (median of the last {min(3, len(h))} snapshots, to step {step}; at step {h.steps[0]}: " + \
        ", ".join(f"{pct(v)}" for v in first.values()) + "); a dead unit outputs 0 for every example of the probe batch"
    sev = "alarm" if max(bad.values()) >= DEAD_ALARM else "warn"
    words, fixes = offer(ctx.config, [
        lower_lr(ctx.run.peak_lr, why="dead units often come from one large step"),
        ("use leaky ReLU", Fix({"model.activation": "leaky_relu"}, "a small slope below 0 keeps every unit alive")),
        ("use ELU", Fix({"model.activation": "elu"}, "smooth and non-zero below 0")),
        ("use He (kaiming) init", HE), ("add batch norm", BATCH_NORM)])
    return Finding("dead_units", sev, "Dead ReLUs: units that never fire", ev, join_or(words), PLOT_STATS, step,
                   {"dead": bad}, fixes)


def _collapsed(h: ProbeHistory, i: int) -> tuple[list[tuple[str, float]], int, float] | None:
    """(layer stds, deepest collapsed index, its ratio to the first) when snapshot `i` collapses across depth."""
    snap = h.snapshot(i)
    names = [n for n in h.layers if n in snap]
    pairs = [(n, s) for n, s in ((n, num((snap.get(n) or {}).get("std"))) for n in names) if math.isfinite(s)]
    if len(pairs) < MIN_COLLAPSE_LAYERS or pairs[0][1] <= 0:
        return None
    s = np.array([p[1] for p in pairs])
    j = int(np.argmin(s[1:])) + 1  # the deepest point of the collapse (later layers may have learned a little)
    ratio = float(s[j] / s[0])
    if j + 1 >= MIN_COLLAPSE_LAYERS and ratio < COLLAPSE_RATIO and bool(np.all(np.diff(s[:j + 1]) < 0)):
        return pairs, j, ratio
    return None


def _last_ratio(h: ProbeHistory) -> float:
    snap = h.snapshot(-1)
    s = [num((snap.get(n) or {}).get("std")) for n in h.layers if n in snap]
    s = [v for v in s if math.isfinite(v)]
    return s[-1] / s[0] if len(s) > 1 and s[0] > 0 else math.nan


def narrow(h: ProbeHistory, i: int) -> tuple[list[tuple[str, float]], float, int] | None:
    """(layer spreads, activation range, layers narrow) when snapshot `i`'s deep sigmoid/tanh layers carry no signal.

    A spread is a layer's std as a fraction of its activation's range. Under NARROW_SPREAD every input gives
    nearly the same value: small weights keep a sigmoid at 0.5 (tanh at 0) for every example. The std need not
    shrink layer by layer for that (each unit sits at its own constant), so `_collapsed` alone misses it.
    """
    from ..activations import ACTIVATIONS

    snap = h.snapshot(i)
    pairs: list[tuple[str, float]] = []
    width = math.nan
    for name in layers_of(h, "saturating"):
        act = h.activation(name)
        lo, hi = ACTIVATIONS.entry(act).traits.get("limit", (math.nan, math.nan))
        s = num((snap.get(name) or {}).get("std"))
        if math.isfinite(s) and hi > lo:
            width = hi - lo
            pairs.append((name, s / width))
    if len(pairs) < MIN_COLLAPSE_LAYERS:
        return None
    n = sum(v < NARROW_SPREAD for _, v in pairs)
    # the deepest layer and most of the others: one quiet layer in a healthy stack is not a collapse
    if pairs[-1][1] < NARROW_SPREAD and n >= max(2, (len(pairs) + 1) // 2):
        return pairs, width, n
    return None


def _narrow_finding(ctx: Context) -> Finding | None:
    """Deep sigmoid/tanh layers giving (nearly) the same value for every input, from the init or later."""
    h, cfg = ctx.probes, ctx.config
    at_init = narrow(h, 0) if h.steps[0] == 0 else None
    latest = narrow(h, -1)
    if at_init is None and latest is None:
        return None
    i = -1 if latest is not None else 0
    pairs, width, n = latest if latest is not None else at_init
    act = h.activation(pairs[0][0])
    snap = h.snapshot(i)
    chain = " -> ".join(g(num((snap.get(k) or {}).get("std")), 2) for k, _ in pairs)
    means = [num((snap.get(k) or {}).get("mean")) for k, _ in pairs[1:]]
    ev = (f"{act} std by depth at step {h.steps[i]}: {chain} (mean {g(float(np.nanmedian(means)), 2)}); {n} of "
          f"{len(pairs)} layers spread less than {NARROW_SPREAD:.0%} of {act}'s range ({g(width)}), so every input "
          "gives nearly the same values and the deep layers pass on no signal")
    values = {"spread": dict(pairs), "narrow": n, "when": "latest" if latest is not None else "init", "ratio":
              pairs[-1][1] / pairs[0][1] if pairs[0][1] > 0 else math.nan}
    if latest is not None and at_init is None and h.steps[0] == 0:
        words, fixes = offer(cfg, [lower_lr(ctx.run.peak_lr), ("add batch norm", BATCH_NORM)])
        return Finding("activation_collapse", "warn", "Activations collapse during training: every input gives "
                       "the same values", ev + "; at step 0 they did not, so the init is not the cause",
                       join_or(words), PLOT_STATS, h.steps[i], values, fixes)
    if latest is None:
        ev += f"; by step {h.steps[-1]} it recovered"
    words, fixes = offer(cfg, [*init_options(cfg), ("add batch norm", BATCH_NORM)])
    sug = join_or(words) + f"; {'each' if len(words) > 1 else 'it'} keeps the variance from layer to layer"
    return Finding("activation_collapse", "warn" if latest is not None else "info",
                   "Activations collapse: every input gives nearly the same values (init too small)", ev, sug,
                   PLOT_STATS, h.steps[i], values, fixes)


@finding("activation_collapse", codes={"activation_collapse"}, needs=Needs(probes=True), explains=INIT_CAUSE)
def collapse(ctx: Context) -> Finding | None:
    """Activations collapsing with depth (std shrinking layer by layer, or deep sigmoid/tanh layers without spread)."""
    return _shrinking(ctx) or _narrow_finding(ctx)


def _shrinking(ctx: Context) -> Finding | None:
    """Activation std shrinking layer by layer: blamed on the init only when the init itself collapses."""
    h, cfg = ctx.probes, ctx.config
    at_init = _collapsed(h, 0) if h.steps[0] == 0 else None
    latest = _collapsed(h, -1)
    if at_init is not None:
        i, (pairs, j, ratio), when = 0, at_init, "init"
        if latest is not None:
            i, (pairs, j, ratio), when = -1, latest, "latest"
    elif latest is not None:
        pairs, j, ratio = latest
        snap = h.snapshot(-1)
        if any(num((snap.get(n) or {}).get("dead")) >= DEAD_WARN for n, _ in pairs[:j + 1]):
            return None  # silent (dead) units explain the shrinking: the dead-units finding says so
        i, when = -1, "during"
    else:
        return None
    per = ratio ** (1 / j) if ratio > 0 else 0.0
    chain = " -> ".join(g(float(v)) for _, v in pairs)
    ev = (f"activation std by depth at step {h.steps[i]}: {chain} ({pairs[0][0]} to {pairs[-1][0]}): x{g(per, 2)} "
          f"per layer from {pairs[0][0]} to {pairs[j][0]}, which is at {g(ratio)} of the first")
    values = {"stds": dict((n, float(v)) for n, v in pairs), "ratio": ratio, "when": when}
    if when == "during":  # the init passed the signal through; training shrank it
        wd = cfg.optim.weight_decay if cfg is not None else math.nan
        decay = ((f"lower the weight decay to {g(round3(wd / 10))}, which can shrink the deep layers' weights",
                  Fix({"optim.weight_decay": round3(wd / 10)}, f"a tenth of {g(wd)}")) if wd > 0 else
                 ("lower the weight decay, which can shrink the deep layers' weights", None))
        words, fixes = offer(cfg, [lower_lr(ctx.run.peak_lr), decay, ("add batch norm", BATCH_NORM)])
        return Finding("activation_collapse", "warn", "Activations shrink to zero with depth during training", ev
                       + "; at step 0 they did not collapse, so the init is not the cause",
                       join_or(words), PLOT_STATS, h.steps[i], values, fixes)
    if when == "init" and len(h) > 1:
        ev += f"; by step {h.steps[-1]} it recovered (x{g(float(_last_ratio(h)), 2)})"
    sev = "alarm" if ratio < COLLAPSE_ALARM and when == "latest" else ("warn" if when == "latest" else "info")
    words, fixes = offer(cfg, [*init_options(cfg), ("add batch norm", BATCH_NORM)])
    sug = join_or(words) + f"; {'each' if len(words) > 1 else 'it'} keeps the variance from layer to layer"
    return Finding("activation_collapse", sev, "Activations collapse to zero with depth: init too small", ev, sug,
                   PLOT_STATS, h.steps[i], values, fixes)


@finding("saturated_units", codes={"saturated_units"}, needs=Needs(probes=True), explains=INIT_CAUSE)
def saturated(ctx: Context) -> Finding | None:
    """Saturated sigmoid/tanh units: at step 0 (init too large) or later while the net still fits poorly."""
    h, run = ctx.probes, ctx.run
    layers = layers_of(h, "saturating")
    if not layers:
        return None
    act = h.activation(layers[0])
    if h.steps[0] == 0:
        sat0 = {k: num(h.series(k, "saturated")[0]) for k in layers}
        vals = [v for v in sat0.values() if math.isfinite(v)]
        if vals and float(np.median(vals)) >= SAT_INIT:
            med = float(np.median(vals))
            ev = ("saturated values at step 0 (initialization): " + ", ".join(f"{k} {pct(v)}" for k, v in sat0.items())
                  + f" (median {pct(med)}; a value counts within 2% of the {act} range from a limit, where its "
                  "gradient is ~0)")
            words, fixes = offer(ctx.config, [
                ("use Xavier init, which keeps the variance of tanh and sigmoid layers", XAVIER),
                ("add batch norm", BATCH_NORM), ("switch to ReLU with He init", RELU_HE)])
            sug = join_or(words) + ("; sigmoid is not zero-centred: tanh trains faster" if act == "sigmoid" else "")
            return Finding("saturated_units", "alarm", f"Saturated {act} units from the start: init too large", ev,
                           sug, PLOT_FIRST, 0, {"saturated": sat0, "median": med, "when": "init"}, fixes)
    sat = {k: _recent(h, k, "saturated") for k in layers}
    vals = [v for v in sat.values() if math.isfinite(v)]
    if not vals or float(np.median(vals)) < SAT_LATE:
        return None
    ep = [r for r in run.epochs if math.isfinite(num(r.get("train_acc")))]
    if ep and run.chance is not None and num(ep[-1]["train_acc"]) >= run.chance + CONFIDENT * (1 - run.chance):
        return None  # a confident, well-fitting network saturates by design
    med = float(np.median(vals))
    ev = (f"saturated values to step {h.steps[-1]}: " + ", ".join(f"{k} {pct(v)}" for k, v in sat.items())
          + f" (median {pct(med)})")
    words, fixes = offer(ctx.config, [("add batch norm, which keeps pre-activations near zero", BATCH_NORM),
                                      lower_lr(run.peak_lr), ("switch to ReLU with He init", RELU_HE)])
    return Finding("saturated_units", "warn", f"Saturated {act} units: gradients vanish", ev, join_or(words),
                   PLOT_STATS, h.steps[-1], {"saturated": sat, "median": med, "when": "late"}, fixes)
