"""Scoring many (prompt, response) token sequences with a model, in batches, without gradients."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from bpo.data.records import Pair, make_batch, split_pairs
from bpo.data.tokens import collate
from bpo.model.logprobs import model_sequence_logprobs, pair_sequence_logprobs


@torch.no_grad()
def response_logprobs(
    model, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 16
) -> Tensor:
    """Sum of log p(response tokens | prompt) for each row, (N,) float32."""
    out = []
    for start in range(0, len(prompt_ids), batch_size):
        ids, attention, response = collate(
            prompt_ids[start : start + batch_size], response_ids[start : start + batch_size], pad_id, side="right"
        )
        device = next(model.parameters()).device
        out.append(
            model_sequence_logprobs(model, ids.to(device), attention.to(device), response.to(device)).float().cpu()
        )
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def pair_logprobs(model, pairs: Sequence[Pair], pad_id: int, batch_size: int = 16) -> list[tuple[float, float]]:
    """(log p(chosen | prompt), log p(rejected | prompt)) of each pair, float32, `batch_size` rows (half as
    many pairs) per pass, each pair's prompt run once (bpo.model.logprobs.pair_sequence_logprobs)."""
    device, per_pass, out = next(model.parameters()).device, max(1, batch_size // 2), []
    for start in range(0, len(pairs), per_pass):
        batch = make_batch(pairs[start : start + per_pass], pad_id).to(device)
        chosen, rejected = split_pairs(
            pair_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask).float().cpu()
        )
        out += zip(chosen.tolist(), rejected.tolist())
    return out
