"""The training core: one step (step.py), the hook lifecycle (hooks.py) and the loop (loop.py).

    from labkit.train import train
    run = train(config)                      # or background=True, hooks=[...], callbacks=[...]
"""
from .hooks import MODEL, BestCheckpoint, EarlyStopping, EpochResult, TrainContext, TrainHook
from .loop import (DIVERGE_FACTOR, Run, build_run_model, default_threads, evaluate, own_threads, prepare,
                   train)
from .step import StepOutput, TrainStep, base_lr, group_lrs, loss_fn, set_lr

_loss = loss_fn  # the name the checks and tests used before the step had a module of its own

__all__ = [
    "MODEL", "BestCheckpoint", "EarlyStopping", "EpochResult", "TrainContext", "TrainHook", "DIVERGE_FACTOR", "Run",
    "build_run_model", "default_threads", "evaluate", "own_threads", "prepare", "train", "StepOutput", "TrainStep",
    "base_lr", "group_lrs", "loss_fn", "set_lr",
]
