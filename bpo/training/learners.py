"""The learners a run trains: one for BPO and its baselines, two for IOPO (its players, bpo.training.players).

A learner is a LoRA ensemble with its own optimiser and its loss, bound once (function, beta, reduction).
`Learners` says whose turn a training step is and what the step's log row adds about it (IOPO: the round
and the player), and holds their joint state for checkpoints: every learner's members, then every
learner's optimisers, in learner order. The first learner's policy is the run's policy (the one that is
evaluated, exported and compared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from bpo.core.losses import Loss
from bpo.model.policy import AdapterStates, EnsemblePolicy
from bpo.training.train_step import EnsembleOptimizer

OPTIMIZER_KEYS = ("optimizers", "schedulers")  # EnsembleOptimizer.state_dict's lists, one entry per member


@dataclass
class Learner:
    name: str
    policy: EnsemblePolicy
    optim: EnsembleOptimizer  # an AdamW per member; its LR schedule counts only this learner's steps
    loss: Loss


class Learners:
    """The learners of a run in a fixed order, and whose turn each step is."""

    def __init__(
        self,
        learners: Sequence[Learner],
        turn: Callable[[int], int] = lambda step: 0,
        step_fields: Callable[[int], dict] = lambda step: {},
        batch_of: Callable[[int, int], int] = lambda local_step, batches: local_step,
    ):
        self.learners = tuple(learners)
        self._turn, self.step_fields = turn, step_fields  # step_fields(step): what a step's log row adds
        # batch_of(step within its phase, the phase's batches): which batch the step trains on (one learner:
        # the step's own; IOPO's shared pairs: each player's own count, bpo.training.players)
        self.batch_of = batch_of

    def __iter__(self):
        return iter(self.learners)

    def __len__(self) -> int:
        return len(self.learners)

    @property
    def main(self) -> Learner:
        return self.learners[0]

    def turn(self, step: int) -> Learner:
        """The learner that trains at global step `step` (0-based)."""
        return self.learners[self._turn(step)]

    def get(self, name: str) -> Learner:
        return next(learner for learner in self.learners if learner.name == name)

    def member_states(self) -> AdapterStates:
        return [state for learner in self.learners for state in learner.policy.member_states()]

    def load_member_states(self, states: AdapterStates) -> None:
        if len(self.learners) == 1:
            return self.main.policy.load_member_states(states)  # the policy's own checks and messages
        sizes = [len(learner.policy.members) for learner in self.learners]
        if len(states) != sum(sizes):
            raise ValueError(
                f"the checkpoint holds {len(states)} members, the {len(sizes)} learners here {sum(sizes)} "
                f"({', '.join(learner.name for learner in self.learners)})"
            )
        for learner, part in zip(self.learners, _split(states, sizes)):
            learner.policy.load_member_states(part)

    def optimizer_state(self) -> dict:
        states = [learner.optim.state_dict() for learner in self.learners]
        return {key: [entry for state in states for entry in state[key]] for key in OPTIMIZER_KEYS}

    def load_optimizer_state(self, state: dict) -> None:
        sizes = [len(learner.optim.optimizers) for learner in self.learners]
        for learner, *parts in zip(self.learners, *(_split(state[key], sizes) for key in OPTIMIZER_KEYS)):
            learner.optim.load_state_dict(dict(zip(OPTIMIZER_KEYS, parts)))


def _split(items: Sequence, sizes: Sequence[int]) -> list[list]:
    """`items` cut into consecutive runs of the given sizes."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [list(items[start : start + size]) for start, size in zip(starts, sizes)]


def one_learner(policy: EnsemblePolicy, optim: EnsembleOptimizer, loss: Loss) -> Learners:
    """BPO and every baseline but IOPO: the policy is the only learner, at every step."""
    return Learners([Learner("policy", policy, optim, loss)])
