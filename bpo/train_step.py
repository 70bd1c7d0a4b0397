"""One optimiser step of the ensemble on one batch of pairs: no I/O, no generation.

Every member is trained on the same batch with its own optimiser (as in the BPO reference code);
the loss's reference log-probs are given, already computed (stored data or a reference forward).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from bpo.configlib import option
from bpo.distributed import SINGLE, Ranks
from bpo.logprobs import Reduction, model_sequence_logprobs, reduce_total
from bpo.losses import LossSpec, log_ratio_margin
from bpo.policy import EnsemblePolicy
from bpo.types import PairBatch, split_pairs


@dataclass(frozen=True)
class OptimSpec:
    lr: float = option(3e-3, help="learning rate of each member's AdamW (LoRA factors only; the default suits the built-in task, lower it for large models)")
    weight_decay: float = option(0.0, help="AdamW weight decay")
    warmup_steps: int = option(0, help="linear warm-up steps")
    scheduler: str = option("constant", help="learning-rate decay after warm-up", choices=("constant", "linear", "cosine"))
    max_grad_norm: float = option(1.0, help="gradient clipping norm per member")

    def validate(self):
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive and finite, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0 and finite, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm}")


class NonFiniteError(FloatingPointError):
    """A NaN or infinite loss or gradient; training must stop before anything is saved."""


@dataclass
class StepMetrics:
    loss: float  # mean over members of the batch-mean loss
    reward_margin: float  # mean of beta * h, the implicit reward of chosen minus rejected
    reward_accuracy: float  # fraction of pairs with h > 0
    grad_norm: float  # mean over members, before clipping
    lr: float

    def to_json(self) -> dict:
        return asdict(self)


SCHEDULERS = ("constant", "linear", "cosine")  # the kinds lr_factor knows (OptimSpec.scheduler's choices)


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total`: the one schedule formula.

    Warm-up (step < warmup): (step + 1) / warmup, reaching 1 at step warmup - 1.
    Afterwards, with progress p = (step - warmup) / (total - warmup) from 0 to 1:
        constant: 1;  linear: 1 - p;  cosine: (1 + cos(pi p)) / 2;  clamped at p = 1 past the end.
    """
    if kind not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {kind!r}; choose one of {', '.join(SCHEDULERS)}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class EnsembleOptimizer:
    """One AdamW and one LR schedule per ensemble member."""

    def __init__(self, policy: EnsemblePolicy, spec: OptimSpec, total_steps: int):
        self.spec, self.total_steps = spec, total_steps
        self.optimizers = [
            torch.optim.AdamW(policy.member_parameters(i), lr=spec.lr, weight_decay=spec.weight_decay)
            for i in range(len(policy.members))
        ]
        self.schedulers = [
            torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: lr_factor(s, total_steps, spec.warmup_steps, spec.scheduler)
            )
            for opt in self.optimizers
        ]

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers], "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(s)


def train_step(
    policy: EnsemblePolicy,
    optim: EnsembleOptimizer,
    batch: PairBatch,
    ref_logp_sum: Tensor,
    loss: LossSpec,
    beta: float,
    reduction: Reduction,
    weights: Tensor | None = None,
    ranks: Ranks = SINGLE,
) -> StepMetrics:
    """Train every member one step on `batch`; `weights` (B,) scales each pair's loss (IOPO).

    Several processes (bpo.distributed): `batch` is this process's equal share of the step's pairs; the
    gradients, the loss checked for NaN and the metrics are means over the processes, so each member
    steps as on the whole batch, identically everywhere."""
    ref_w, ref_l = split_pairs(reduce_total(ref_logp_sum.detach(), batch.response_lengths, reduction))
    totals = {"loss": 0.0, "margin": 0.0, "accuracy": 0.0, "grad_norm": 0.0}
    lr = optim.schedulers[0].get_last_lr()[0]
    for i, (opt, sched) in enumerate(zip(optim.optimizers, optim.schedulers)):
        model = policy.train_member(i)
        logp = model_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask, reduction)
        pi_w, pi_l = split_pairs(logp)
        per_pair = loss.fn(pi_w, pi_l, ref_w, ref_l, beta)
        mean_loss = (per_pair * weights).mean() if weights is not None else per_pair.mean()
        loss_value = ranks.mean([mean_loss.item()])[0]  # every process checks the same number
        if not math.isfinite(loss_value):
            raise NonFiniteError(f"non-finite loss {loss_value} (ensemble member {i})")
        opt.zero_grad(set_to_none=True)
        mean_loss.backward()
        ranks.mean_grads(policy.member_parameters(i))
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.member_parameters(i), optim.spec.max_grad_norm)
        if not torch.isfinite(grad_norm):
            raise NonFiniteError(f"non-finite gradient norm {grad_norm.item()} (ensemble member {i})")
        opt.step()
        sched.step()
        with torch.no_grad():
            h = log_ratio_margin(pi_w, pi_l, ref_w, ref_l)
            totals["loss"] += loss_value
            margin, accuracy = ranks.mean([(beta * h).mean().item(), (h > 0).float().mean().item()])
            totals["margin"] += margin
            totals["accuracy"] += accuracy
            totals["grad_norm"] += grad_norm.item()
    policy.refresh_merged()
    n = len(optim.optimizers)
    return StepMetrics(
        loss=totals["loss"] / n, reward_margin=totals["margin"] / n, reward_accuracy=totals["accuracy"] / n,
        grad_norm=totals["grad_norm"] / n, lr=lr,
    )
