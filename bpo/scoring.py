"""Scoring many (prompt, response) token sequences with a model, in batches, without gradients."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from bpo.logprobs import model_sequence_logprobs
from bpo.tokens import collate


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
        out.append(model_sequence_logprobs(model, ids.to(device), attention.to(device), response.to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
