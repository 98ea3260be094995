"""labkit: a lab for the craft of training neural networks.

    from labkit import Config, train
    run = train(Config().replace(**{"data.dataset": "spirals", "model.kind": "mlp"}))

The training names load on first use: `import labkit.plots` (or the config alone) does not import the loop.
"""
from .config import Config, DataConfig, ModelConfig, OptimConfig, ProbeConfig, RegConfig, ScheduleConfig, TrainConfig
from .errors import LabkitError
from .events import EndEvent, EpochEvent, Event, ProbeEvent, StartEvent, StepEvent
from .lazy import lazy_exports
from .runs import RunRecord, compare, list_runs, load_run
from .schedules import schedule_curve
from . import validate as _validate  # noqa: F401  (registers Config.validate's checks)

__version__ = "0.1.0"

_LAZY = {"Run": ".training.loop", "train": ".training.loop", "evaluate": ".training.loop",
         "TrainHook": ".training.hooks", "RunLog": ".runlog"}
__getattr__ = lazy_exports(__name__, _LAZY)[0]  # __dir__ below also lists the eager names

__all__ = [
    "Config", "DataConfig", "ModelConfig", "OptimConfig", "ProbeConfig", "RegConfig", "ScheduleConfig",
    "TrainConfig", "LabkitError", "Event", "StartEvent", "StepEvent", "EpochEvent", "ProbeEvent", "EndEvent",
    "Run", "TrainHook", "train", "evaluate", "schedule_curve", "RunRecord", "load_run", "list_runs", "compare",
    "RunLog",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
