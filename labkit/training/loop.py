"""The training loop: one function of a Config, emitting events to subscribers.

`train(config, callbacks=...)` runs to the end and returns a `Run`;
`train(config, background=True)` returns at once with the run going on a
thread, and `run.stop()` ends it within one batch with status `stopped`.
Capabilities take part through hooks (`TrainHook`, see hooks.py): probes, the best
checkpoint and early stopping are hooks themselves.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import traceback
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data.sets import Data, ensure_available, load_data
from ..errors import LabkitError
from ..events import Callback, EndEvent, EpochEvent, Event, StartEvent, StepEvent
from ..models import build_model
from ..optimizers import build_optimizer
from ..data.pipeline import TrainBatches, eval_batches
from ..precision import autocast, resolve_device, resolve_precision
from ..runs import RunWriter, new_run_dir
from ..schedules import Schedule, make_schedule
from .handle import Run
from .replicas import SOLO, Replicas, default_threads
from .hooks import MODEL, BestCheckpoint, EarlyStopping, EpochResult, TrainContext, TrainHook
from .step import TrainStep, base_lr, group_lrs, set_lr
from .transfer import TransferHook, check_init_from, setup_transfer, uses_transfer

# A loss this many times the first step's (and ln C's) is a divergence even while it stays finite: with batch
# norm, lr 10 on spirals sends the loss from 1.0 to 1e13 and back to ~5 without ever overflowing, and no
# learning run recovers a useful model from there.
DIVERGE_FACTOR = 1e4


@torch.inference_mode()  # no autograd bookkeeping at all: ~10% faster than no_grad on the default convnet (CPU)
def evaluate(model: nn.Module, data: Data, split: str, batch_size: int = 1000, tta: bool = False,
             precision: str = "fp32") -> tuple[float, float]:
    """(mean loss, accuracy) on `split` in eval mode; with tta, images are averaged with their mirror. Batches go
    to the model's device (a trained run's model may sit on the GPU while freshly loaded data is on the CPU)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    total, loss_sum, correct = 0, 0.0, 0
    for x, y in eval_batches(data, split, batch_size):
        x, y = x.to(device), y.to(device)
        with autocast(precision, x.device):
            logits = model(x)
            if tta and data.kind == "image":
                logits = 0.5 * (logits + model(x.flip(3)))
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    model.train(was)
    if total == 0:
        return float("nan"), float("nan")
    return loss_sum / total, correct / total


FIT_IMAGES = 5000  # training images a model's data-fitted layers see (the whitening stem: ~4.8M patches)


def build_run_model(config: Config, data: Data) -> nn.Module:
    """The seeded model a run of `config` trains on `data`, on the data's device (channels-last for images)."""
    model = build_model(config.model, data.input_shape, data.num_classes, seed=config.train.seed)
    model = model.to(data.train_x.device)
    if hasattr(model, "fit_to_data"):  # layers set from the data (the convnet's whitening stem)
        model.fit_to_data(data.to_input(data.train_x[:FIT_IMAGES]))
    return model.to(memory_format=torch.channels_last) if data.kind == "image" else model


@contextlib.contextmanager
def own_threads(config: Config) -> Iterator[None]:
    """Run a side job (checks, LR test) on `config`'s thread count; give back the caller's threads and RNG stream."""
    threads, rng = torch.get_num_threads(), torch.get_rng_state()  # building a model reseeds the global RNG
    torch.set_num_threads(config.train.threads or default_threads(config))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)


def prepare(config: Config, lr_scales: Mapping[str, float] | None = None
            ) -> tuple[Data, nn.Module, torch.optim.Optimizer, Schedule]:
    """Load data and build the seeded model, optimizer (groups scaled by `lr_scales`) and schedule of a run.

    With transfer settings (model.init_from, model.freeze, optim.backbone_lr_scale) the model starts from the
    source, frozen as asked, and a linear probe trains its head on precomputed features (labkit.training.transfer).
    """
    return _prepare(config, lr_scales)[:4]


def _prepare(config: Config, lr_scales: Mapping[str, float] | None = None, device: torch.device | None = None
             ) -> tuple[Data, nn.Module, torch.optim.Optimizer, Schedule, Any]:
    """prepare(), and the run's Transfer set-up (None without transfer settings) for its hook.

    The data (the whole in-memory subset) and the model go to `device`, by default the config's train.device.
    """
    data = load_data(config.data, config.train.seed).to(device or resolve_device(config.train.device))
    model = build_run_model(config, data)
    transfer = None
    if uses_transfer(config):
        transfer = setup_transfer(config, data, model)
        data, model = transfer.data, transfer.model
        given = dict(lr_scales or {})  # the caller's prefixes first: the first one a name matches is its group
        lr_scales = {**given, **{k: v for k, v in transfer.lr_scales.items() if k not in given}} or None
    opt = build_optimizer(model, config.optim, lr_scales)
    return data, model, opt, make_schedule(config, len(data.train_y)), transfer


def train(
    config: Config,
    callbacks: Iterable[Callback] = (),
    *,
    hooks: Sequence[TrainHook] = (),
    out: str | os.PathLike | None = None,
    background: bool = False,
    progress: bool = False,
    lr_scales: Mapping[str, float] | None = None,
) -> Run:
    """Validate `config`, create its run directory, and train (on a thread if `background`).

    `lr_scales` gives parts of the model their own fraction of the scheduled rate, by parameter-name
    prefix (e.g. {"features": 0.1}); each step then records every group's rate.
    Returns the Run; in the foreground a LabkitError (bad data; divergence is not
    an error) is raised after the run's files are written. In the foreground the data is found (or
    downloaded) before the run directory is made, so missing data leaves no failed run behind; a background
    run returns at once and finds its data on its thread (a download must not block the caller), so there
    missing data is a failed run with its message (`labkit train` checks first, as the foreground does).
    """
    config = config.copy().validate()
    if config.train.nproc > 1:  # data parallel: torchrun starts the processes; this one follows the run's files
        if hooks or lr_scales:
            raise LabkitError("hooks and lr_scales live in this process, but a run with train.nproc > 1 trains in "
                              "worker processes; use train.nproc 1 with them (or config fields such as "
                              "optim.backbone_lr_scale)")
        from .launch import launch

        return launch(config, callbacks, out=out, background=background, progress=progress)
    if not background:
        ensure_available(config.data)
        check_init_from(config)  # a missing or unfitting source is one error, before any run directory exists
    run_dir = new_run_dir(out if out is not None else config.train.out, config)
    run = Run(config, run_dir)
    subscribers: list[Callback] = [RunWriter(run_dir, config), *callbacks]
    if progress:
        from .progress import ProgressBar

        subscribers.append(ProgressBar())
    all_hooks = default_hooks(config) + list(hooks)
    if background:
        run.thread = threading.Thread(target=_execute, args=(run, subscribers, all_hooks, lr_scales), daemon=True,
                                      name=f"labkit-{run.id}")
        run.thread.start()
        return run
    _execute(run, subscribers, all_hooks, lr_scales)
    if run.status == "failed" and run.error is not None:
        raise run.error
    return run


def default_hooks(config: Config) -> list[TrainHook]:
    """The hooks the config asks for: best checkpoint, early stopping, probes, EMA / SWA / snapshots."""
    t = config.train
    hooks: list[TrainHook] = [BestCheckpoint(t.monitor), EarlyStopping(t.patience, t.monitor)]
    if config.probe.every > 0:
        from .probes import Probes

        hooks.append(Probes(config.probe))
    if t.ema > 0 or t.swa_start > 0 or t.snapshots > 1:
        from .averaging import config_hooks

        hooks += config_hooks(config)  # EMA, SWA, snapshot ensembles
    return hooks


def _execute(run: Run, subscribers: list[Callback], hooks: list[TrainHook],
             lr_scales: Mapping[str, float] | None = None, replicas: Replicas = SOLO) -> None:
    """Set the run up, loop, and always finish it: hooks' on_end, the end event and summary.json.

    `replicas`: this process's part in a data-parallel run (labkit.training.distributed); alone by default.
    """
    cfg = run.config

    def emit(event: Event) -> None:
        for s in subscribers:
            s(event)

    ctx: TrainContext | None = None
    summary: dict[str, Any] = {"run_id": run.id}
    status, message = "completed", ""
    try:
        torch.set_num_threads(replicas.threads(cfg.train.threads or default_threads(cfg)))
        device = replicas.device or resolve_device(cfg.train.device)
        summary.update({"device": str(device), **replicas.describe()})
        data, model, opt, sched, transfer = _prepare(cfg, lr_scales, device)
        run.model, run.data = getattr(model, "full", model), data  # a linear probe's whole network
        if transfer is not None:
            hooks = [TransferHook(transfer), *hooks]  # first: frozen modules are back in eval before others look
        ctx = TrainContext(cfg, data, model, opt, sched, emit, run.dir)
        batches = TrainBatches(data, cfg.reg, cfg.train.batch_size, cfg.train.seed + 1, replicas.rank,
                               replicas.world, cfg.train.batch_order)
        emit(StartEvent(run.id, str(run.dir), sched.total_steps, len(batches), len(data.train_y), data.num_classes,
                        sum(p.numel() for p in model.parameters())))
        for h in hooks:
            h.on_start(ctx)
        ctx.weights = {MODEL: model}
        for h in hooks:
            ctx.weights.update(h.eval_weights(ctx))
        status, message = _loop(run, ctx, batches, hooks, summary, replicas)
    except LabkitError as e:
        status, message, run.error = "failed", str(e), e
    except Exception as e:  # a bug or an unexpected torch error: keep the run's files, report plainly
        status, message, run.error = "failed", f"{type(e).__name__}: {e}", e
        summary["traceback"] = traceback.format_exc()
    finally:
        if ctx is not None:
            for h in hooks:
                try:
                    h.on_end(ctx)
                except Exception:
                    pass
            summary.update(ctx.summary)
        run.status, run.message, run.summary = status, message, dict(summary, status=status, message=message)
        try:
            emit(EndEvent(status, message, summary))
        except Exception as e:  # e.g. disk full while writing the summary
            if run.error is None:
                run.status, run.error = "failed", e
                run.message = str(e)
        run._done.set()


def _loop(run: Run, ctx: TrainContext, batches: TrainBatches, hooks: list[TrainHook],
          summary: dict[str, Any], replicas: Replicas = SOLO) -> tuple[str, str]:
    """Epochs of steps, each epoch ending in validation and the hooks' epoch end; then the test pass.

    In a data-parallel group every rank takes the same decisions at the same step: the loss that decides
    divergence and the stop request are the group's (`replicas.reduce_step`), and rank 0's epoch-end
    decision reaches the others (`replicas.agree`).
    """
    cfg, opt, sched, t = ctx.config, ctx.optimizer, ctx.schedule, ctx.config.train
    spe, total = len(batches), sched.total_steps
    device = next(iter(ctx.model.parameters()), torch.empty(0)).device
    precision = summary["precision"] = resolve_precision(cfg, device.type)
    def after_backward() -> None:
        for h in hooks:
            h.after_backward(ctx)

    step_fn = TrainStep(replicas.wrap(ctx.model), opt, cfg, precision, [after_backward])
    status, message, start, train_seconds, last_epoch, epoch = "completed", "", time.perf_counter(), 0.0, {}, 0
    blowup = math.inf  # DIVERGE_FACTOR x max(first loss, ln C), set once the first loss is known
    ctx.model.train()
    while ctx.step < total and status == "completed" and ctx.stop_message is None:
        loss_sum, acc_sum, n_steps, tick = 0.0, 0.0, 0, time.perf_counter()
        for x, target, _ in batches.epoch():
            if ctx.step >= total or ctx.stop_message is not None:
                break
            if replicas.stop_requested(run.stop_requested):
                status, message = "stopped", f"stopped by request at step {ctx.step} (epoch {ctx.epoch:.2f})"
                break
            set_lr(opt, sched(ctx.step))
            for h in hooks:
                h.before_step(ctx)
            out = step_fn(x, target)
            loss = float(out.loss)
            acc = float((out.logits.argmax(1) == target.argmax(1)).float().mean())
            loss, acc = replicas.reduce_step(loss, acc, run.stop_requested)  # the global batch's, in a group
            if blowup == math.inf and math.isfinite(loss):
                blowup = DIVERGE_FACTOR * max(loss, math.log(ctx.data.num_classes))
            if not math.isfinite(loss) or loss > blowup:
                lr = base_lr(opt)
                status = "diverged"
                message = (f"loss became {loss:.3g} at step {ctx.step} (epoch {ctx.epoch:.2f}) with lr {lr:.3g}; "
                           f"lower the learning rate (try {cfg.optim.lr / 10:.3g}), add warmup, or clip gradients")
                break
            ctx.loss, ctx.step = loss, ctx.step + 1
            ctx.epoch = ctx.step / spe
            lrs = group_lrs(opt)  # read back from the optimizer: the rates this step really used
            ctx.emit(StepEvent(ctx.step, ctx.epoch, loss, acc, base_lr(opt), time.perf_counter() - start,
                               lrs if len(set(lrs.values())) > 1 else None))
            for h in hooks:
                h.after_step(ctx)
            loss_sum, acc_sum, n_steps = loss_sum + loss, acc_sum + acc, n_steps + 1
        train_seconds += time.perf_counter() - tick
        if n_steps == 0:
            break
        epoch += 1
        val = _validate(ctx, precision) if replicas.is_main else {MODEL: (None, None)}  # rank 0 validates
        result = EpochResult(epoch, ctx.step, loss_sum / n_steps, acc_sum / n_steps, val)
        for h in hooks:
            h.on_epoch_end(ctx, result)
        val_loss, val_acc = result.val[MODEL]
        last_epoch = {"train_loss": result.train_loss, "train_acc": result.train_acc, "val_loss": val_loss,
                      "val_acc": val_acc}
        others = {name: {"val_loss": v[0], "val_acc": v[1]} for name, v in result.val.items() if name != MODEL}
        ctx.emit(EpochEvent(epoch, ctx.step, result.train_loss, result.train_acc, val_loss, val_acc, base_lr(opt),
                            time.perf_counter() - start, result.improved, others))
        ctx.stop_message = replicas.agree(ctx.stop_message)
    summary.update({
        "steps": ctx.step, "epochs": round(ctx.step / spe, 3),
        "best_epoch": next((h.epoch for h in hooks if isinstance(h, BestCheckpoint)), -1),
        "train_seconds": round(train_seconds, 3), "seconds": round(time.perf_counter() - start, 3),
        "images_per_second": round(ctx.step * batches.batch_size / train_seconds, 1) if train_seconds > 0 else None,
        "final": dict(last_epoch),
    })
    if status == "completed" and t.test:
        summary["final"].update(_test(ctx, precision))
    if status == "completed":
        acc = summary["final"].get("test_acc", summary["final"].get("val_acc"))
        message = ctx.stop_message or (f"completed {ctx.step} steps in {summary['seconds']:.1f} s"
                                       + (f"; accuracy {acc:.3f}" if acc is not None else ""))
    return status, message


def _validate(ctx: TrainContext, precision: str) -> dict[str, tuple[float | None, float | None]]:
    """Validation (loss, accuracy) of every evaluated weights; (None, None) without a validation split."""
    t = ctx.config.train
    if not len(ctx.data.val_y):
        return {name: (None, None) for name in ctx.weights}
    # without test-time augmentation: every epoch validates, so it stays cheap (the mirror pass would double it)
    return {name: evaluate(m, ctx.data, "val", t.eval_batch_size, False, precision) for name, m in ctx.weights.items()}


def _test(ctx: TrainContext, precision: str) -> dict[str, float]:
    """Test metrics of best.pt (loaded into the model), and of each other evaluated weights as they ended."""
    t, best = ctx.config.train, (ctx.run_dir / BestCheckpoint.FILE) if ctx.run_dir else None
    out: dict[str, float] = {}
    if best is None or not best.exists():
        return out
    ctx.model.load_state_dict(torch.load(best, weights_only=True))
    out["test_loss"], out["test_acc"] = evaluate(ctx.model, ctx.data, "test", t.eval_batch_size, t.tta, precision)
    for name, m in ctx.weights.items():
        if name != MODEL and name != ctx.monitor:
            out[f"{name}_test_loss"], out[f"{name}_test_acc"] = evaluate(m, ctx.data, "test", t.eval_batch_size,
                                                                         t.tta, precision)
    return out
