"""This process's part in a run: alone, or one rank of a data-parallel group (see labkit.training.distributed).

The loop asks its `Replicas` for the few things data parallelism changes: the module the step calls (wrapped
in DistributedDataParallel), the global batch's loss and accuracy, agreed stop decisions, and whether this
process is rank 0 (which validates and writes the run). Alone, every answer is the single-process one.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..data.sets import is_image


def default_threads(config: Config | None = None) -> int:
    """Torch threads for train.threads=0: 1 for the 2-D sets, else the cores this process may use.

    The 2-D sets' matmuls are a few thousand multiply-adds: a second thread only adds synchronisation (a spirals
    MLP ran 1.2 s on one thread and 8.7 s on two here). Respects CPU affinity, e.g. a search worker's share.
    """
    if config is not None and not is_image(config.data.dataset):
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Replicas:
    """How this process takes part in a run: alone (this class: every method is the identity) or as one rank."""

    rank, world, local_rank, local_world = 0, 1, 0, 1
    backend = ""
    device: torch.device | None = None  # a rank's own device; None alone: the config's train.device

    @property
    def is_main(self) -> bool:
        """Whether this process validates, tests and writes the run's files (rank 0)."""
        return self.rank == 0

    def threads(self, threads: int) -> int:
        """Torch threads for this process out of the run's `threads`: max(1, threads // processes on this machine)."""
        return max(1, threads // self.local_world)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls (the model itself; DistributedDataParallel around it in a group)."""
        return model

    def reduce_step(self, loss: float, acc: float, stop: bool) -> tuple[float, float]:
        """The global batch's loss and accuracy from this rank's; `stop`: this rank was asked to stop."""
        return loss, acc

    def stop_requested(self, local: bool) -> bool:
        """Whether to stop before the next step: this process's request, or in a group any rank's (agreed)."""
        return local

    def agree(self, message: str | None) -> str | None:
        """Rank 0's epoch-end stop message (early stopping), on every rank."""
        return message

    def describe(self) -> dict[str, Any]:
        """What the run's summary records about the processes."""
        return {"world_size": self.world}


SOLO = Replicas()


class Group(Replicas):
    """One rank of a torch.distributed process group (set up by `init_group`)."""

    def __init__(self, rank: int, world: int, local_rank: int, local_world: int, device: torch.device,
                 backend: str):
        self.rank, self.world, self.local_rank, self.local_world = rank, world, local_rank, local_world
        self.device, self.backend = device, backend
        self._agreed = False

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)  # broadcasts rank 0's weights and buffers now, averages gradients later

    def reduce_step(self, loss: float, acc: float, stop: bool) -> tuple[float, float]:
        import torch.distributed as dist

        t = torch.tensor([loss, acc, float(stop)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        total_loss, total_acc, stops = t.tolist()
        self._agreed = stops > 0
        return total_loss / self.world, total_acc / self.world

    def stop_requested(self, local: bool) -> bool:
        return self._agreed  # every rank read the same all-reduced flag after the last step

    def agree(self, message: str | None) -> str | None:
        import torch.distributed as dist

        box = [message]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world, "local_world_size": self.local_world, "backend": self.backend}
