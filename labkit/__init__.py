"""labkit: a lab for the craft of training neural networks.

    from labkit import Config, train
    run = train(Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp"}))
"""
from .config import Config, DataConfig, ModelConfig, OptimConfig, ProbeConfig, RegConfig, ScheduleConfig, TrainConfig
from .errors import LabkitError
from .events import EndEvent, EpochEvent, Event, ProbeEvent, StartEvent, StepEvent
from .runs import RunRecord, compare, list_runs, load_run
from .schedules import schedule_curve
from .train import Run, TrainHook, evaluate, train

__version__ = "0.1.0"

__all__ = [
    "Config", "DataConfig", "ModelConfig", "OptimConfig", "ProbeConfig", "RegConfig", "ScheduleConfig",
    "TrainConfig", "LabkitError", "Event", "StartEvent", "StepEvent", "EpochEvent", "ProbeEvent", "EndEvent",
    "Run", "TrainHook", "train", "evaluate", "schedule_curve", "RunRecord", "load_run", "list_runs", "compare",
]
