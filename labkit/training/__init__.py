"""The training core: one step (step.py), the hook lifecycle (hooks.py), the loop (loop.py), probes (probes.py),
data parallel (launch.py starts torchrun, distributed.py is a worker's part, replicas.py what the loop asks).

    from labkit.training import train, TrainHook
    run = train(config)                      # or background=True, hooks=[...], callbacks=[...], lr_scales={...}

Names load their module on first use, so importing one part (say the probes' hook) does not load the loop.
"""
from ..lazy import lazy_exports

_EXPORTS = {
    **{n: ".hooks" for n in ("MODEL", "BestCheckpoint", "EarlyStopping", "EpochResult", "TrainContext", "TrainHook")},
    **{n: ".loop" for n in ("DIVERGE_FACTOR", "Run", "build_run_model", "default_threads", "evaluate", "own_threads",
                            "prepare", "train")},
    **{n: ".step" for n in ("StepOutput", "TrainStep", "base_lr", "group_lrs", "loss_fn", "set_lr")},
    "Probes": ".probes",
    **{n: ".averaging" for n in ("EMAHook", "SWAHook", "ema_decay", "recompute_bn")},
    **{n: ".snapshots" for n in ("Snapshots", "log_probs", "score_members")},
    "LaunchedRun": ".launch",  # train() returns one for train.nproc > 1; labkit.training.launch.launch for several machines
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
