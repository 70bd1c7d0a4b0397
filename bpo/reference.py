"""Reference strategies: which model the DAP loss measures the policy against.

Principle: reference log-probs are data. Strategies whose reference is fixed for the life of a pair
(`behavior`, `sft`, `fixed`) write them into the pair once, when it is labelled; `behavior` even reuses
the log-probs the sampler recorded, so BPO needs no reference forward pass at all. Strategies whose
reference moves during training (`ema`, `sync`) score each batch with the `reference` adapter slot.

    sft       the initial policy, never updated
    behavior  BPO: the snapshot pi_beta that sampled the pair, updated at every phase start
    fixed     any given checkpoint (a model folder with the policy's vocabulary), never updated
    ema       theta_ref <- tau * theta + (1 - tau) * theta_ref after every step (BPO section 5.4);
              the average runs over the ensemble members' LoRA factors, then merges like the policy
    sync      theta_ref <- theta every `sync_every` steps (TR-DPO's hard update)

Every strategy records the global steps at which its reference changed in `updated_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from bpo.configlib import option
from bpo.logprobs import model_sequence_logprobs
from bpo.policy import REFERENCE, AdapterStates, EnsemblePolicy
from bpo.scoring import response_logprobs
from bpo.types import Pair, PairBatch, pair_rows

REFERENCE_KINDS = ("sft", "behavior", "fixed", "ema", "sync")


@dataclass(frozen=True)
class ReferenceConfig:
    kind: str = option("auto", help="the loss's reference; auto: behavior for bpo, sft otherwise", choices=("auto",) + REFERENCE_KINDS)
    path: str | None = option(None, help="model folder of the `fixed` reference (same vocabulary as the policy)")
    ema_tau: float = option(0.1, help="ema: theta_ref <- tau * theta + (1 - tau) * theta_ref after each step")
    sync_every: int = option(4, help="sync: copy the policy into the reference every this many steps")

    def validate(self):
        if self.kind == "fixed" and not self.path:
            raise ValueError("kind=fixed needs reference.path, a model folder")
        if not 0 < self.ema_tau <= 1:
            raise ValueError("ema_tau must be in (0, 1]")
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
        logps = response_logprobs(model, *pair_rows(pairs), pad_id, self.score_batch_size).tolist()
        for i, p in enumerate(pairs):
            p.ref_chosen_logp, p.ref_rejected_logp = logps[i], logps[len(pairs) + i]

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
    """Base of references that change during a phase: scored per batch with the `reference` slot."""

    stored = False

    def __init__(self, **kw):
        super().__init__(**kw)
        self.states: AdapterStates | None = None

    def state_dict(self):
        return {**super().state_dict(), "states": self.states}

    def load_state_dict(self, policy, state):
        super().load_state_dict(policy, state)
        self.states = state.get("states")
        if self.states is not None:
            policy.set_reference(self.states)

    def label_pairs(self, policy, pairs):
        pass  # nothing is stored: the reference moves between now and the step that uses the pair

    def on_phase_start(self, policy, step):
        if self.states is None:  # the reference starts as the initial policy
            self._set(policy, policy.member_states(), step)

    def _set(self, policy: EnsemblePolicy, states: AdapterStates, step: int) -> None:
        self.states = states
        policy.set_reference(states)
        self.updated_at.append(step)

    @torch.no_grad()
    def batch_logprobs(self, policy, batch):
        with policy.use(REFERENCE) as model:
            return model_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask).float()


class EMAReference(MovingReference):
    def __init__(self, tau: float, **kw):
        super().__init__(**kw)
        self.tau = tau

    def on_step_end(self, policy, step):
        current = policy.member_states()
        blended = [
            {k: self.tau * cur[k] + (1.0 - self.tau) * old[k] for k in cur} for cur, old in zip(current, self.states)
        ]
        self._set(policy, blended, step + 1)  # takes effect from the next step


class SyncReference(MovingReference):
    def __init__(self, every: int, **kw):
        super().__init__(**kw)
        self.every = every

    def on_step_end(self, policy, step):
        if (step + 1) % self.every == 0:
            self._set(policy, policy.member_states(), step + 1)
