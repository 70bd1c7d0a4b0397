"""Reference strategies: which model the DAP loss measures the policy against.

Principle: reference log-probs are data. Strategies whose reference is fixed for the life of a pair
(`behavior`, `sft`, `fixed`) write them into the pair once, when it is labelled; `behavior` even reuses
the log-probs the sampler recorded, so BPO needs no reference forward pass at all. Strategies whose
reference moves during training (`ema`, `sync`) hold the reference's weights themselves, as a dense
update delta_ref (out, in) of every adapted linear layer (the reference is W_0 + delta_ref, W_0 the
initial policy's weight), and score each batch with one forward pass of that model
(EnsemblePolicy.use_deltas: adapters off, W_0 + delta_ref passed in, base weights never written).

What each strategy stores:
    sft       the initial policy (adapters disabled), never updated: log-probs stored with each pair
    behavior  BPO: the snapshot pi_beta that sampled the pair, updated at every phase start: the
              sampler's log-probs stored with each pair
    fixed     any given checkpoint (a model folder with the policy's vocabulary), never updated:
              log-probs stored with each pair
    ema       delta_ref <- tau * delta_theta + (1 - tau) * delta_ref after every step, for every adapted
              layer, where delta_theta is the merged policy's weight update (EnsemblePolicy.merged_delta:
              the mean of the members' s_i B_i A_i for the exact merge) and delta_ref starts at 0. Since
              W_ref = W_0 + delta_ref this is the EMA of the weights, theta_ref <- tau * theta +
              (1 - tau) * theta_ref (BPO section 5.4, TR-DPO's soft update). tau = 0: the reference
              never moves (the SFT reference); tau = 1: it is the current policy.
              (Averaging the LoRA factors A and B separately is not this: B @ A is bilinear in them.)
    sync      delta_ref <- delta_theta every `sync_every` steps (TR-DPO's hard update); starts at 0

Both moving references start at delta_ref = 0, the SFT model, which is also the initial policy (the
members' B factors start at 0). They cost one float32 (out, in) matrix per adapted layer: exact, since
a running average of low-rank updates is not low-rank, but more memory than the LoRA factors.

Every strategy records the global steps at which its reference changed in `updated_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from bpo.common.configlib import option
from bpo.data.records import Pair, PairBatch
from bpo.model.logprobs import pair_sequence_logprobs
from bpo.model.policy import EnsemblePolicy, WeightDeltas
from bpo.model.scoring import pair_logprobs

REFERENCE_KINDS = ("sft", "behavior", "fixed", "ema", "sync")


@dataclass(frozen=True)
class ReferenceConfig:
    kind: str = option(
        "auto", help="the loss's reference; auto: behavior for bpo, sft otherwise", choices=("auto",) + REFERENCE_KINDS
    )
    path: str | None = option(
        None,
        may_change_on_resume=True,
        help="model folder or Hub id (owner/name[@revision]) of the `fixed` reference (same vocabulary as the policy)",
    )
    ema_tau: float = option(
        1e-2,
        help="ema: per adapted layer, delta_ref <- tau * delta_theta + (1 - tau) * delta_ref after each step (0: "
        "never moves, the SFT reference; 1: the policy); the default is in the BPO paper's Figure 7 grid",
    )
    sync_every: int = option(4, help="sync: copy the policy into the reference every this many steps")

    def validate(self):
        if self.kind == "fixed" and not self.path:
            raise ValueError("kind=fixed needs reference.path, a model folder")
        if not 0 <= self.ema_tau <= 1:
            raise ValueError(
                "ema_tau must be in [0, 1] (0: the reference never moves; 1: it follows the policy), got "
                f"{self.ema_tau}"
            )
        if self.sync_every <= 0:
            raise ValueError("sync_every must be positive")


@dataclass
class ReferenceStrategy:
    """Base: a reference that is data stored with each pair, never updated (the SFT policy)."""

    updated_at: list[int] = field(default_factory=list)
    score_batch_size: int = 16
    stored = True  # log-probs are written into the pairs once

    def on_phase_start(self, policy: EnsemblePolicy, step: int) -> None:
        pass

    def on_step_end(self, policy: EnsemblePolicy, step: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"updated_at": list(self.updated_at)}

    def load_state_dict(self, policy: EnsemblePolicy, state: dict) -> None:
        self.updated_at = list(state["updated_at"])

    def label_pairs(self, policy: EnsemblePolicy, pairs: Sequence[Pair]) -> None:
        """Write ref_chosen_logp / ref_rejected_logp into pairs (stored strategies)."""
        with policy.use(None) as model:
            self._score_into(model, policy.tokenizer.pad_token_id, pairs)

    def _score_into(self, model, pad_id: int, pairs: Sequence[Pair]) -> None:
        for p, (chosen, rejected) in zip(pairs, pair_logprobs(model, pairs, pad_id, self.score_batch_size)):
            p.ref_chosen_logp, p.ref_rejected_logp = chosen, rejected

    def batch_logprobs(self, policy: EnsemblePolicy, batch: PairBatch) -> Tensor:
        """(2B,) summed reference log-probs for a batch."""
        if batch.stored_ref_logp is None:
            raise RuntimeError("pairs reached training without reference log-probs")
        return batch.stored_ref_logp


class SFTReference(ReferenceStrategy):
    pass


class BehaviorReference(ReferenceStrategy):
    """BPO: the sampler already recorded log pi_beta for each response; copy it, no forward pass."""

    def on_phase_start(self, policy, step):
        self.updated_at.append(step)  # pi_beta <- pi_theta: the sampler will use the current policy

    def label_pairs(self, policy, pairs):
        for p in pairs:
            if p.behavior_chosen_logp is None or p.behavior_rejected_logp is None:
                raise ValueError(f"pair {p.id} has no behavior log-probs; the behavior reference needs sampled pairs")
            p.ref_chosen_logp, p.ref_rejected_logp = p.behavior_chosen_logp, p.behavior_rejected_logp


class FixedReference(ReferenceStrategy):
    """A separately loaded model (e.g. a gold policy for the paper's ablation), scored once per phase."""

    def __init__(self, model, **kw):
        super().__init__(**kw)
        self.model = model.eval()

    def label_pairs(self, policy, pairs):
        self._score_into(self.model, policy.tokenizer.pad_token_id, pairs)


class MovingReference(ReferenceStrategy):
    """Base of references that change during a phase: dense weight deltas, scored per batch."""

    stored = False

    def __init__(self, **kw):
        super().__init__(**kw)
        self.deltas: WeightDeltas | None = None  # {layer path: (out, in) float32}; None before the first phase

    def state_dict(self):
        """updated_at, and `deltas`: a CPU copy of delta_ref (bpo.run.checkpoint writes it to reference.safetensors)."""
        deltas = None if self.deltas is None else {k: v.detach().to("cpu", copy=True) for k, v in self.deltas.items()}
        return {**super().state_dict(), "deltas": deltas}

    def load_state_dict(self, policy, state):
        super().load_state_dict(policy, state)
        if state.get("deltas") is not None:
            self.deltas = policy.as_deltas(state["deltas"])
        elif state.get("states") is not None:  # checkpoints before the deltas held a member snapshot
            self.deltas = policy.merged_deltas(state["states"])  # whose reference was its merge
        else:
            self.deltas = None

    def label_pairs(self, policy, pairs):
        pass  # nothing is stored: the reference moves between now and the step that uses the pair

    def on_phase_start(self, policy, step):
        if self.deltas is None:  # the reference starts as the initial (SFT) policy
            self._set(policy.zero_deltas(), step)

    def _set(self, deltas: WeightDeltas, step: int) -> None:
        self.deltas = deltas
        self.updated_at.append(step)

    @torch.no_grad()
    def batch_logprobs(self, policy, batch):
        if self.deltas is None:
            raise RuntimeError("a moving reference scored a batch before its first phase started")
        with policy.use_deltas(self.deltas) as model:
            return pair_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask).float()


class EMAReference(MovingReference):
    def __init__(self, tau: float, **kw):
        super().__init__(**kw)
        self.tau = tau

    @torch.no_grad()
    def on_step_end(self, policy, step):
        if self.tau == 0:
            return  # the reference never moves
        for path, delta_ref in self.deltas.items():  # in place: no second copy of the deltas
            delta_ref.mul_(1.0 - self.tau).add_(policy.merged_delta(path), alpha=self.tau)
        self.updated_at.append(step + 1)  # takes effect from the next step


class SyncReference(MovingReference):
    def __init__(self, every: int, **kw):
        super().__init__(**kw)
        self.every = every

    def on_step_end(self, policy, step):
        if (step + 1) % self.every == 0:
            self._set(policy.merged_deltas(), step + 1)
