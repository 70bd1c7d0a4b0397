"""One optimiser step of the ensemble on one batch of pairs: no I/O, no generation.

Every member has its own AdamW and schedule. By default (`lora.training=independent`) every member is
trained on the same batch, as in the BPO reference code: n forward and backward passes per step. The
variants: `disjoint`, member i on the i-th of n equal shares of the batch (one adapter's cost), and
`joint`, one pass of the mean of the members whose gradient reaches each member (see `_passes`). The
loss's reference log-probs are given, already computed (stored data or a reference forward).

One AdamW per member in every variant: AdamW is elementwise, so for `joint` it equals one AdamW over all
members except for clipping, which stays per member (`optim.max_grad_norm`); the checkpoint's optimiser
layout is the same for every variant.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable

import torch
from torch import Tensor

from bpo.common.configlib import option
from bpo.core.losses import Loss, log_ratio_margin
from bpo.data.records import PairBatch, split_pairs
from bpo.model.distributed import SINGLE, Ranks
from bpo.model.logprobs import pair_sequence_logprobs, reduce_total
from bpo.model.policy import EnsemblePolicy


@dataclass(frozen=True)
class OptimSpec:
    lr: float = option(
        1e-3,
        help="learning rate of each member's AdamW (LoRA factors only; the default is the defaults study's, "
        "docs/defaults-study.md: lower it for large models)",
    )
    weight_decay: float = option(0.0, help="AdamW weight decay")
    warmup_steps: int = option(0, help="linear warm-up steps")
    scheduler: str = option(
        "constant", help="learning-rate decay after warm-up", choices=("constant", "linear", "cosine")
    )
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
        return {
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
        }

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(s)


@dataclass(frozen=True)
class _Pass:
    """One forward and backward of a step: the model to run, the pairs it sees, the members it updates."""

    model: Callable[[], torch.nn.Module]  # makes the pass's adapters active (policy.train_member / train_joint)
    pairs: Tensor | None  # indices into the batch's B pairs; None: all of them
    members: tuple[int, ...]
    weight: float  # the pass's weight in the step's metrics (pairs seen by a disjoint share, else 1)
    label: str  # names the pass in a NonFiniteError


def _passes(policy: EnsemblePolicy, batch_size: int) -> list[_Pass]:
    """The step's passes for `lora.training` (LoraSpec.training):
        independent  n passes, member i on the whole batch (the paper's)
        disjoint     n passes, member i on pairs i, i + n, i + 2n, ... (B / n pairs each: one adapter's pass over B)
        joint        1 pass of the mean of the members (policy.train_joint), every member updated from its gradient
    The disjoint shares are strided so that a batch split over processes (each a multiple of n pairs) gives
    every member the same pairs as on one process. That the batch splits into n equal shares is checked once,
    before a run starts (bpo.loop.online.check_batch_shares)."""
    n, kind = len(policy.members), policy.spec.training
    if kind == "joint":
        return [_Pass(policy.train_joint, None, tuple(range(n)), 1.0, "joint ensemble")]
    if kind == "disjoint":
        return [
            _Pass(
                partial(policy.train_member, i),
                torch.arange(i, batch_size, n),
                (i,),
                batch_size // n,
                f"ensemble member {i}",
            )
            for i in range(n)
        ]
    return [_Pass(partial(policy.train_member, i), None, (i,), 1.0, f"ensemble member {i}") for i in range(n)]


def select_pairs(batch: PairBatch, pairs: Tensor) -> PairBatch:
    """The sub-batch of the given pairs (their chosen and rejected rows), cut to its longest row."""
    rows = torch.cat([pairs, pairs + batch.size]).to(batch.input_ids.device)
    mask = batch.attention_mask[rows]
    length = int(mask.sum(-1).max())
    cut = lambda t: t[rows, :length]  # noqa: E731  (rows are right-padded)
    stored = None if batch.stored_ref_logp is None else batch.stored_ref_logp[rows]
    return PairBatch(
        cut(batch.input_ids),
        mask[:, :length],
        cut(batch.response_mask),
        stored,
        [batch.pair_ids[j] for j in pairs.tolist()] if batch.pair_ids else [],
    )


def _step_member(policy: EnsemblePolicy, optim: EnsembleOptimizer, i: int, ranks: Ranks, label: str) -> float:
    """Average member i's gradient over the processes, clip it, check it, step its AdamW and schedule: its norm before
    clipping."""
    params = policy.member_parameters(i)
    ranks.mean_grads(params)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, optim.spec.max_grad_norm)
    if not torch.isfinite(grad_norm):
        raise NonFiniteError(f"non-finite gradient norm {grad_norm.item()} ({label})")
    optim.optimizers[i].step()
    optim.schedulers[i].step()
    return grad_norm.item()


def train_step(
    policy: EnsemblePolicy,
    optim: EnsembleOptimizer,
    batch: PairBatch,
    ref_logp_sum: Tensor,
    loss: Loss,
    ranks: Ranks = SINGLE,
) -> StepMetrics:
    """Train the ensemble one step on `batch` against the reference log-probs (summed over each response's
    tokens; reduced here as the bound `loss` says), as `lora.training` says (see _passes). Loss, margin and accuracy
    are over the whole batch, each pair counted once (independent:
    the mean over the members of their whole-batch values; disjoint: each pair under the member that trained on
    it; joint: under the mean); grad_norm is the mean over members of each member's norm before clipping.

    Several processes (bpo.model.distributed): `batch` is this process's equal share of the step's pairs; the
    gradients, the loss checked for NaN and the metrics are means over the processes, so each member
    steps as on the whole batch, identically everywhere."""
    beta, reduction = loss.beta, loss.reduction
    ref_w, ref_l = split_pairs(reduce_total(ref_logp_sum.detach(), batch.response_lengths, reduction))
    totals = {"loss": 0.0, "margin": 0.0, "accuracy": 0.0, "weight": 0.0}
    grad_norms = []
    lr = optim.schedulers[0].get_last_lr()[0]
    for p in _passes(policy, batch.size):
        model = p.model()
        part, rw, rl = (
            (batch, ref_w, ref_l) if p.pairs is None else (select_pairs(batch, p.pairs), ref_w[p.pairs], ref_l[p.pairs])
        )
        logp = pair_sequence_logprobs(
            model,
            part.input_ids,
            part.attention_mask,
            part.response_mask,
            reduction,
            share_prompt=policy.shares_prompts,
        )
        pi_w, pi_l = split_pairs(logp)
        mean_loss = loss(pi_w, pi_l, rw, rl).mean()
        loss_value = ranks.mean([mean_loss.item()])[0]  # every process checks the same number
        if not math.isfinite(loss_value):
            raise NonFiniteError(f"non-finite loss {loss_value} ({p.label})")
        for i in p.members:
            optim.optimizers[i].zero_grad(set_to_none=True)
        mean_loss.backward()
        grad_norms += [
            _step_member(policy, optim, i, ranks, p.label if len(p.members) == 1 else f"{p.label}, member {i}")
            for i in p.members
        ]
        with torch.no_grad():
            h = log_ratio_margin(pi_w, pi_l, rw, rl)
            margin, accuracy = ranks.mean([(beta * h).mean().item(), (h > 0).float().mean().item()])
            for key, value in (("loss", loss_value), ("margin", margin), ("accuracy", accuracy), ("weight", 1.0)):
                totals[key] += p.weight * value
    policy.refresh_merged()
    total = totals["weight"]
    return StepMetrics(
        loss=totals["loss"] / total,
        reward_margin=totals["margin"] / total,
        reward_accuracy=totals["accuracy"] / total,
        grad_norm=sum(grad_norms) / len(grad_norms),
        lr=lr,
    )
