"""Sequence log-probabilities of response tokens, teacher-forced.

This is the one place where log pi(y|x) is computed from logits; the sampler, the trainer, the
reference scorers and the evaluator all call it.

Conventions (all tensors batch-first):
    input_ids     (B, L) prompt and response tokens, padded on the left, the right, or both
    attention_mask(B, L) 1 on real tokens, 0 on padding
    response_mask (B, L) 1 on the response tokens whose log-prob counts (never on prompt or padding)
The token at position t is predicted by the logits at position t-1, so position 0 never counts.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from bpo.device import autocast, model_device

Reduction = Literal["sum", "mean"]


def logprobs_of(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[target] per position: logits (..., V), targets (...) -> (...), float32.

    Uses gather minus logsumexp rather than a full log_softmax so no second (..., V) tensor exists.
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def token_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """log p(input_ids[:, t] | input_ids[:, :t]) for t >= 1, shape (B, L-1)."""
    return logprobs_of(logits[:, :-1], input_ids[:, 1:])


def reduce_total(total: Tensor, count: Tensor, reduction: Reduction) -> Tensor:
    """A summed sequence log-prob as the loss wants it: the sum itself, or the per-token mean
    (total / count, a count of 0 counting as 1 so an empty response gives 0)."""
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / count.to(total.dtype).clamp(min=1.0)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def reduce_logprobs(per_token: Tensor, mask: Tensor, reduction: Reduction = "sum") -> Tensor:
    """Sum (or per-token mean) of masked per-token log-probs, (B,). An empty mask gives 0."""
    mask = mask.to(per_token.dtype)
    return reduce_total((per_token * mask).sum(-1), mask.sum(-1), reduction)


def sequence_logprobs(
    logits: Tensor, input_ids: Tensor, response_mask: Tensor, reduction: Reduction = "sum"
) -> Tensor:
    """log pi(y|x) over the response tokens of each row, (B,): summed, or averaged per token."""
    return reduce_logprobs(token_logprobs(logits, input_ids), response_mask[:, 1:], reduction)


def position_ids_for(attention_mask: Tensor) -> Tensor:
    """Positions that count only real tokens, so left padding does not shift a row's positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def model_sequence_logprobs(
    model: torch.nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    reduction: Reduction = "sum",
) -> Tensor:
    """Run a causal LM teacher-forced (bfloat16 autocast on CUDA) and return the response log-probs, (B,).

    Only the positions from the batch's first response token on need logits (the prompt's own tokens
    never count), so the model projects onto the vocabulary there only (`logits_to_keep`): with a
    vocabulary of 49k and prompts longer than responses, most of the output layer's work and memory."""
    counted = response_mask[:, 1:].any(0).nonzero()
    start = int(counted[0]) + 1 if len(counted) else input_ids.shape[1] - 1  # first counted position (>= 1)
    keep = input_ids.shape[1] - start + 1  # the logits at positions start - 1 .. L - 1
    with autocast(model_device(model)):
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_for(attention_mask),
            use_cache=False,
            logits_to_keep=keep,
        )
    # (sliced again: a model whose forward takes the keyword in **kwargs and ignores it returns every position)
    per_token = logprobs_of(out.logits[:, -keep:][:, :-1], input_ids[:, start:])
    return reduce_logprobs(per_token, response_mask[:, start:], reduction)
