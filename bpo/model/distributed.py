"""Data-parallel runs over several processes, through accelerate (DDP's arithmetic, our own loop).

Launched by `accelerate launch --num_processes P` (with `--multi_gpu`, or on CPUs `--cpu`) or `torchrun
--nproc_per_node P`, every process runs the same `bpo train` command:

    set-up     each builds the same policy, reference and optimisers from the same seed; accelerate's
               PartialState joins the processes (gloo on CPUs, NCCL on GPUs: one GPU per process)
    a phase    the phase's M pairs are split among the processes: each samples, annotates and scores
               (stored references) its share from its own prompt window and random stream; the labelled
               pairs are gathered in rank order, so every process holds the phase's M pairs
    a step     the step's batch of B pairs is split into P equal shares (B must be a multiple of P);
               each process computes its share's mean loss and gradients, the gradients are averaged
               over the processes (all-reduce, as DDP does), then clipped and applied by each process's
               AdamW: the adapters stay identical everywhere, and the step equals one process's step on
               the whole batch (the mean of P equal shares' means is the batch mean)
    writing    rank 0 alone writes the run folder (config, pairs, metrics, checkpoints, adapters, eval),
               which has the layout of a single process's; rank 0 evaluates, the others wait

One process (no launcher) is `SINGLE`, whose operations are the identity: the single-process path does
no collective call. The ensemble's members are not wrapped in DDP: peft switches which adapter is
trainable between members, which a DDP wrapper (fixed at wrap time) does not allow, so the gradients of
the member being trained are averaged here, one all-reduce per member and step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class Ranks:
    rank: int = 0  # this process's index
    world: int = 1  # number of processes

    @property
    def main(self) -> bool:
        """The process that writes the run folder and evaluates."""
        return self.rank == 0

    def count(self, n: int) -> int:
        """This process's share of n items: n // P, plus one for the first n % P ranks."""
        return n // self.world + (self.rank < n % self.world)

    def offset(self, n: int) -> int:
        """Where this process's share of n items starts (the shares of lower ranks come first)."""
        return sum(Ranks(r, self.world).count(n) for r in range(self.rank))

    def share(self, items: Sequence) -> list:
        """This process's equal, contiguous share of a training batch (its length must divide evenly)."""
        if len(items) % self.world:
            raise ValueError(f"a batch of {len(items)} pairs does not split evenly over {self.world} processes")
        k = len(items) // self.world
        return list(items[self.rank * k : (self.rank + 1) * k])

    def gather(self, items: list) -> list:
        """Every process's list, concatenated in rank order, on every process."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value, on every process."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value])[0]

    def mean(self, values: Sequence[float]) -> list[float]:
        """The mean over the processes of each number."""
        if self.world == 1:
            return list(values)
        from accelerate.utils import reduce

        return reduce(torch.tensor(values, dtype=torch.float64, device=self._device), reduction="mean").tolist()

    def mean_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its mean over the processes (one all-reduce for all)."""
        if self.world == 1:
            return
        from accelerate.utils import reduce

        grads = [p.grad for p in params]
        flat = reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        for g, part in zip(grads, torch.split(flat, [g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    @property
    def _device(self) -> torch.device:
        from accelerate import PartialState

        return PartialState().device


SINGLE = Ranks()


def launched_processes() -> int:
    """How many processes the launcher started (accelerate launch and torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(cpu: bool) -> Ranks:
    """This process's place among the launched ones (SINGLE without a launcher). On CUDA, accelerate makes
    the local rank's GPU the current device, which policy.device=auto or cuda then resolves to."""
    if launched_processes() <= 1:
        return SINGLE
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    return Ranks(state.process_index, state.num_processes)
