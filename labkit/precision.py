"""The device a run computes on, and its numeric precision: fp32, or bfloat16 autocast where it is native.

Device: "auto" is the CUDA GPU when torch sees one, else the CPU; "cuda" on a machine without one is a
config error (labkit.validate), not a silent fallback.


bf16 autocast runs convolutions and matmuls in bfloat16 (8-bit mantissa) while weights, optimizer state,
the loss and the reductions of batch norm stay in float32 (torch.autocast's op lists). On a CPU with
AVX512-BF16 or AMX (and on recent GPUs) the default convnet's step is ~1.7x faster than fp32, at the same
accuracy (benchmarks/train_cifar.py). Without native support bf16 is emulated and slower, so "auto" picks it
only where it helps: image models on hardware that has it. The 2-D sets' tiny MLPs stay fp32.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Callable, ContextManager

import torch

from .config import Config
from .registry import Registry

# device -> the context the forward pass and loss run in; "auto" has none: resolve_precision picks fp32 or bf16
PRECISIONS: Registry[Callable[[str], ContextManager] | None] = Registry("precision")
PRECISIONS.add("auto", None, "bf16 for images where the CPU/GPU computes bfloat16 natively, else fp32")
PRECISIONS.add("fp32", lambda device: contextlib.nullcontext(), "float32 throughout")
PRECISIONS.add("bf16", lambda device: torch.autocast(device, dtype=torch.bfloat16),
               "autocast convolutions and matmuls to bfloat16; weights, optimizer state and loss stay float32")


# the device a run computes on; resolve_device turns a name into a torch.device
DEVICES: Registry[str | None] = Registry("device")
DEVICES.add("auto", None, "the CUDA GPU when there is one, else the CPU")
DEVICES.add("cpu", "cpu", "the CPU")
DEVICES.add("cuda", "cuda", "the (first visible) CUDA GPU; data, augmentation and the model all live on it")


def cuda_available() -> bool:
    """Whether torch can use a CUDA GPU here."""
    return torch.cuda.is_available()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch.device train.device names: auto -> cuda when available, else cpu; a data-parallel rank gets its GPU."""
    kind = DEVICES.get(name) or ("cuda" if cuda_available() else "cpu")
    return torch.device("cuda", local_rank) if kind == "cuda" else torch.device("cpu")


@lru_cache(maxsize=None)
def native_bf16(device: str = "cpu") -> bool:
    """Whether `device` computes bfloat16 convolutions/matmuls natively (not emulated)."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(config: Config, device: str | None = None) -> str:
    """'fp32' or 'bf16': what train.precision means for this config on `device` (default: the config's device)."""
    p = config.train.precision
    if p != "auto":
        return p
    from .data.sets import is_image

    kind = device or resolve_device(config.train.device).type
    return "bf16" if is_image(config.data.dataset) and native_bf16(kind) else "fp32"


def autocast(precision: str, device: str | torch.device = "cpu") -> ContextManager:
    """The context the forward pass and loss run in on `device` (a type or a torch.device): bf16 autocast, or none."""
    make = PRECISIONS.get(precision)
    device = device.type if isinstance(device, torch.device) else device
    # "auto" should have been resolved (resolve_precision); as before, it runs as plain fp32 here
    return make(device) if make is not None else contextlib.nullcontext()
