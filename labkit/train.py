"""The training loop: one function of a Config, emitting events to subscribers.

`train(config, callbacks=...)` runs to the end and returns a `Run`;
`train(config, background=True)` returns at once with the run going on a
thread, and `run.stop()` ends it within one batch with status `stopped`.
Hooks (`TrainHook`) see the model around each step; probes use them.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .data import Data, load_data
from .errors import LabkitError
from .events import Callback, EndEvent, EpochEvent, Event, StartEvent, StepEvent
from .models import build_model
from .optimizers import build_optimizer, needs_closure
from .pipeline import TrainBatches, eval_batches
from .precision import autocast, resolve_precision
from .runs import RunWriter, new_run_dir
from .schedules import Schedule, make_schedule


def default_threads(config: Config | None = None) -> int:
    """Torch threads for train.threads=0: 1 for the 2-D sets, else the cores this process may use.

    The 2-D sets' matmuls are a few thousand multiply-adds: a second thread only adds synchronisation (a spirals
    MLP ran 1.2 s on one thread and 8.7 s on two here). Respects CPU affinity, e.g. a search worker's share.
    """
    if config is not None:
        from .data import is_image

        if not is_image(config.data.dataset):
            return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@dataclass
class TrainContext:
    """What hooks see: the live objects of a run and the current step."""

    config: Config
    data: Data
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    emit: Callback
    step: int = 0
    epoch: float = 0.0
    loss: float = float("nan")


class TrainHook:
    """Override any of these to look inside training; each gets the TrainContext."""

    def on_start(self, ctx: TrainContext) -> None: ...
    def before_step(self, ctx: TrainContext) -> None: ...
    def after_backward(self, ctx: TrainContext) -> None: ...
    def after_step(self, ctx: TrainContext) -> None: ...
    def on_end(self, ctx: TrainContext) -> None: ...


class Run:
    """A handle on one training run: its directory, status, summary, and a thread-safe stop()."""

    def __init__(self, config: Config, run_dir: Path):
        self.config = config
        self.dir = run_dir
        self.id = run_dir.name
        self.status = "running"
        self.message = ""
        self.summary: dict[str, Any] = {}
        self.model: nn.Module | None = None
        self.data: Data | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self.thread: threading.Thread | None = None

    def stop(self) -> None:
        """Ask the run to stop; honoured before the next batch."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> "Run":
        """Block until the run ends (or `timeout` seconds pass)."""
        self._done.wait(timeout)
        if self._done.is_set() and self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()  # let the thread finish exiting, so interpreter shutdown is clean
        return self

    @property
    def metrics(self) -> list[dict]:
        from .runs import read_metrics

        return read_metrics(self.dir)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"


def _loss(logits: torch.Tensor, target: torch.Tensor, cfg: Config, model: nn.Module) -> torch.Tensor:
    loss = F.cross_entropy(logits, target, label_smoothing=cfg.reg.label_smoothing)
    if cfg.optim.l1 > 0:
        loss = loss + cfg.optim.l1 * sum(p.abs().sum() for p in model.parameters() if p.ndim > 1)
    return loss


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, split: str, batch_size: int = 1000, tta: bool = False,
             precision: str = "fp32") -> tuple[float, float]:
    """(mean loss, accuracy) on `split` in eval mode; with tta, images are averaged with their mirror."""
    was = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    for x, y in eval_batches(data, split, batch_size):
        with autocast(precision):
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


def build_run_model(config: Config, data: Data) -> nn.Module:
    """The seeded model a run of `config` trains on `data` (channels-last for images, as the pipeline feeds them)."""
    model = build_model(config.model, data.input_shape, data.num_classes, seed=config.train.seed)
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


def prepare(config: Config) -> tuple[Data, nn.Module, torch.optim.Optimizer, Schedule]:
    """Load data and build the seeded model, optimizer and schedule a run of `config` uses."""
    data = load_data(config.data, config.train.seed)
    model = build_run_model(config, data)
    opt = build_optimizer(model, config.optim)
    return data, model, opt, make_schedule(config, len(data.train_y))


def train(
    config: Config,
    callbacks: Iterable[Callback] = (),
    *,
    hooks: Sequence[TrainHook] = (),
    out: str | os.PathLike | None = None,
    background: bool = False,
    progress: bool = False,
) -> Run:
    """Validate `config`, create its run directory, and train (on a thread if `background`).

    Returns the Run; in the foreground a LabkitError (bad data, divergence is not
    an error) is raised after the run's files are written.
    """
    config = config.copy().validate()
    run_dir = new_run_dir(out if out is not None else config.train.out, config)
    run = Run(config, run_dir)
    subscribers: list[Callback] = [RunWriter(run_dir, config), *callbacks]
    if progress:
        from .progress import ProgressBar

        subscribers.append(ProgressBar())
    all_hooks = list(hooks)
    if config.probe.every > 0:
        from .probes import Probes

        all_hooks.insert(0, Probes(config.probe))
    if background:
        run.thread = threading.Thread(target=_execute, args=(run, subscribers, all_hooks), daemon=True,
                                      name=f"labkit-{run.id}")
        run.thread.start()
        return run
    _execute(run, subscribers, all_hooks)
    if run.status == "failed" and isinstance(run.error, LabkitError):
        raise run.error
    if run.status == "failed" and run.error is not None:
        raise run.error
    return run


def _execute(run: Run, subscribers: list[Callback], hooks: list[TrainHook]) -> None:
    cfg = run.config
    t = cfg.train

    def emit(event: Event) -> None:
        for s in subscribers:
            s(event)

    ctx: TrainContext | None = None
    summary: dict[str, Any] = {"run_id": run.id}
    status, message = "completed", ""
    try:
        torch.set_num_threads(t.threads or default_threads(cfg))
        data, model, opt, sched = prepare(cfg)
        run.model, run.data = model, data
        ctx = TrainContext(cfg, data, model, opt, sched, emit)
        batches = TrainBatches(data, cfg.reg, t.batch_size, t.seed + 1)
        spe, total = len(batches), sched.total_steps
        emit(StartEvent(run.id, str(run.dir), total, spe, len(data.train_y), data.num_classes,
                        sum(p.numel() for p in model.parameters())))
        for h in hooks:
            h.on_start(ctx)
        status, message, summary = _loop(run, ctx, batches, hooks, emit, summary)
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
        run.status, run.message, run.summary = status, message, dict(summary, status=status, message=message)
        try:
            emit(EndEvent(status, message, summary))
        except Exception as e:  # e.g. disk full while writing the summary
            if run.error is None:
                run.status, run.error = "failed", e
                run.message = str(e)
        run._done.set()


def _loop(run: Run, ctx: TrainContext, batches: TrainBatches, hooks: list[TrainHook], emit: Callback,
          summary: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    cfg, data, model, opt, sched = ctx.config, ctx.data, ctx.model, ctx.optimizer, ctx.schedule
    t = cfg.train
    spe, total = len(batches), sched.total_steps
    closure_opt = needs_closure(cfg.optim.name)
    precision = resolve_precision(cfg)
    summary["precision"] = precision
    higher_better = t.monitor == "val_acc"
    best_score, best_epoch, bad_epochs = None, -1, 0
    best_path = run.dir / "best.pt"
    step, start = 0, time.perf_counter()
    status, message = "completed", ""
    last_epoch: dict[str, Any] = {}
    train_seconds = 0.0
    model.train()
    epoch = 0
    while step < total and status == "completed":
        loss_sum, acc_sum, n_steps = 0.0, 0.0, 0
        tick = time.perf_counter()
        for x, target, y in batches.epoch():
            if step >= total:
                break
            if run.stop_requested:
                status, message = "stopped", f"stopped by request at step {step} (epoch {step / spe:.2f})"
                break
            lr = sched(step)
            for g in opt.param_groups:
                g["lr"] = lr
            ctx.step, ctx.epoch = step, step / spe
            for h in hooks:
                h.before_step(ctx)
            if closure_opt:
                holder: dict[str, torch.Tensor] = {}

                def closure() -> torch.Tensor:
                    opt.zero_grad(set_to_none=True)
                    with autocast(precision):
                        out = model(x)
                        l = _loss(out, target, cfg, model)
                    l.backward()
                    holder["out"], holder["loss"] = out.detach(), l.detach()
                    return l

                opt.step(closure)
                logits, loss = holder["out"], holder["loss"]
            else:
                with autocast(precision):
                    logits = model(x)
                    loss = _loss(logits, target, cfg, model)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for h in hooks:
                    h.after_backward(ctx)
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                opt.step()
            loss_v = float(loss.detach())
            if not math.isfinite(loss_v):
                status = "diverged"
                message = (f"loss became {loss_v} at step {step} (epoch {step / spe:.2f}) with lr {lr:.3g}; "
                           f"lower the learning rate (try --lr {cfg.optim.lr / 10:.3g}), add warmup, or clip gradients")
                break
            acc = float((logits.argmax(1) == target.argmax(1)).float().mean())
            ctx.loss = loss_v
            step += 1
            ctx.step, ctx.epoch = step, step / spe
            emit(StepEvent(step, step / spe, loss_v, acc, lr, time.perf_counter() - start))
            for h in hooks:
                h.after_step(ctx)
            loss_sum, acc_sum, n_steps = loss_sum + loss_v, acc_sum + acc, n_steps + 1
        train_seconds += time.perf_counter() - tick
        if n_steps == 0:
            break
        epoch += 1
        val_loss, val_acc = evaluate(model, data, "val", t.eval_batch_size, t.tta, precision) if len(data.val_y) else (None, None)
        score = (val_acc if higher_better else val_loss) if val_loss is not None else -step
        improved = score is not None and math.isfinite(score) and (
            best_score is None or (score > best_score if (higher_better or val_loss is None) else score < best_score))
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            torch.save(model.state_dict(), best_path)
        else:
            bad_epochs += 1
        last_epoch = {"train_loss": loss_sum / n_steps, "train_acc": acc_sum / n_steps,
                      "val_loss": val_loss, "val_acc": val_acc}
        emit(EpochEvent(epoch, step, loss_sum / n_steps, acc_sum / n_steps, val_loss, val_acc, sched(max(0, step - 1)),
                        time.perf_counter() - start, improved))
        if status == "completed" and t.patience and bad_epochs >= t.patience and step < total:
            summary["early_stopped"] = True
            message = f"early stop at epoch {epoch}: no {t.monitor} improvement for {t.patience} epochs"
            break
    summary.update({
        "steps": step, "epochs": round(step / spe, 3), "best_epoch": best_epoch,
        "train_seconds": round(train_seconds, 3), "seconds": round(time.perf_counter() - start, 3),
        "images_per_second": round(step * batches.batch_size / train_seconds, 1) if train_seconds > 0 else None,
        "final": dict(last_epoch),
    })
    if status == "completed" and t.test and best_path.exists():
        model.load_state_dict(torch.load(best_path, weights_only=True))
        test_loss, test_acc = evaluate(model, data, "test", t.eval_batch_size, t.tta, precision)
        summary["final"].update(test_loss=test_loss, test_acc=test_acc)
    if status == "completed" and not message:
        acc = summary["final"].get("test_acc", summary["final"].get("val_acc"))
        message = f"completed {step} steps in {summary['seconds']:.1f} s" + (f"; accuracy {acc:.3f}" if acc is not None else "")
    return status, message, summary
