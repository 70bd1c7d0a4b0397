"""Records that flow through the online loop, with the shape and meaning of every field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from bpo.data.tokens import collate


@dataclass
class Response:
    """One sampled response to a prompt."""

    text: str
    ids: list[int]  # response token ids as sampled (EOS included when generation stopped on it)
    logp: float  # sum over response tokens of log pi_beta(y_t | x, y_<t), pi_beta = the sampling policy


@dataclass
class Pair:
    """A labelled preference pair: one line of pairs/phase-NNN.jsonl."""

    id: str  # unique within a run, e.g. "p000-00017" (phase, index)
    phase: int  # annotation phase that produced it
    prompt: str
    chosen: str
    rejected: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    chosen_score: float | None = None  # the annotator's score of each response, if it gives scores
    rejected_score: float | None = None
    behavior_chosen_logp: float | None = None  # sum log pi_beta over response tokens (None: not sampled by us)
    behavior_rejected_logp: float | None = None
    ref_chosen_logp: float | None = None  # sum log pi_ref over response tokens, when the reference is fixed data
    ref_rejected_logp: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Pair":
        return cls(**data)


@dataclass
class PairBatch:
    """B pairs as one padded tensor of 2B rows: chosen rows 0..B-1, rejected rows B..2B-1."""

    input_ids: Tensor  # (2B, L) prompt + response ids, right-padded
    attention_mask: Tensor  # (2B, L)
    response_mask: Tensor  # (2B, L) 1 on response tokens
    stored_ref_logp: Tensor | None  # (2B,) sum log pi_ref per row when stored with the pairs, else None
    pair_ids: list[str] = field(default_factory=list)

    def to(self, device: torch.device) -> "PairBatch":
        """The batch on `device` (the policy's)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PairBatch(
            move(self.input_ids),
            move(self.attention_mask),
            move(self.response_mask),
            move(self.stored_ref_logp),
            self.pair_ids,
        )

    @property
    def size(self) -> int:  # B
        return self.input_ids.shape[0] // 2

    @property
    def response_lengths(self) -> Tensor:  # (2B,) number of response tokens per row
        return self.response_mask.sum(-1)


def pair_rows(pairs: Sequence[Pair]) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, response ids) of the 2B rows of B pairs: chosen rows first, then rejected rows."""
    prompts = [p.prompt_ids for p in pairs] * 2
    responses = [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
    return prompts, responses


def make_batch(pairs: Sequence[Pair], pad_id: int) -> PairBatch:
    input_ids, attention, response = collate(*pair_rows(pairs), pad_id, side="right")
    stored = None
    if all(p.ref_chosen_logp is not None and p.ref_rejected_logp is not None for p in pairs):
        stored = torch.tensor(
            [p.ref_chosen_logp for p in pairs] + [p.ref_rejected_logp for p in pairs], dtype=torch.float32
        )
    return PairBatch(input_ids, attention, response, stored, [p.id for p in pairs])


def split_pairs(rows: Tensor) -> tuple[Tensor, Tensor]:
    """(2B,) -> chosen (B,), rejected (B,)."""
    b = rows.shape[0] // 2
    return rows[:b], rows[b:]
