"""Where tensors live: the configured device, mixed precision on a GPU, and the RNG states to save.

`policy.device` names the device of the whole run (model, batches, samplers, reward-model judges and
reference scoring all follow it):
    auto     CUDA (the current device) when torch sees one, else the CPU
    cpu      the CPU, float32 (bfloat16 matmuls are far slower than float32 on common CPUs)
    cuda     the current CUDA device (under a launcher, the process's own: bpo.model.distributed); cuda:N a given one
On CUDA, forward passes run under bfloat16 autocast (weights stay in policy.dtype; log-probs are
taken in float32 by bpo.model.logprobs). Random states: the CPU generator drives LoRA dropout and every
seeded choice; on CUDA, dropout and sampling draw from the device's generator, so a checkpoint keeps
both and a resumed run continues both streams.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import torch
from torch import Tensor

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    if not _DEVICE.match(name):
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {name!r}")


def resolve_device(name: str, cuda_count: int | None = None) -> torch.device:
    """The torch device `name` means here; `cuda_count` (default: what torch sees) makes it testable.

    A CUDA device that is not there is refused with one line (no silent fallback to the CPU).
    """
    check_device_name(name)
    count = torch.cuda.device_count() if cuda_count is None else cuda_count
    if name == "cpu" or (name == "auto" and not count):
        return torch.device("cpu")
    current = torch.cuda.current_device() if cuda_count is None and count else 0  # a launcher sets it per process
    index = int(name.split(":")[1]) if ":" in name else current
    if index >= count:
        seen = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise ValueError(f"device {name!r}: torch sees {seen} (set policy.device=auto or cpu)")
    return torch.device("cuda", index)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA, nothing on the CPU (float32 stays float32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def forked_rng(device: torch.device) -> Iterator[None]:
    """A block whose seeding and sampling leave the caller's random streams (CPU, and the CUDA device's) as they
    were."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def rng_states(device: torch.device) -> dict[str, Tensor]:
    """The random states a checkpoint keeps: the CPU generator's and, on CUDA, the device's."""
    states = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["torch_cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, Tensor], device: torch.device) -> None:
    """Restore `rng_states`; a CUDA state is restored only on CUDA (a run resumed on the CPU has no use for it)."""
    torch.set_rng_state(states["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in states:
        torch.cuda.set_rng_state(states["torch_cuda"], device)
