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

from dataclasses import dataclass

import torch
from torch import Tensor

from bpo.core.losses import Reduction
from bpo.model.device import autocast, model_device
from bpo.model.kvcache import cache_arguments, copy_rows, position_ids_for, run_prompts


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


def sequence_logprobs(logits: Tensor, input_ids: Tensor, response_mask: Tensor, reduction: Reduction = "sum") -> Tensor:
    """log pi(y|x) over the response tokens of each row, (B,): summed, or averaged per token."""
    return reduce_logprobs(token_logprobs(logits, input_ids), response_mask[:, 1:], reduction)


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


@dataclass(frozen=True)
class SharedPromptLayout:
    """2B pair rows regrouped so that each prompt runs once: B prompts (left-padded) and 2B responses
    (right-padded), response row r continuing prompt r mod B (rows 0..B-1 chosen, B..2B-1 rejected)."""

    prompts: Tensor  # (B, P) prompt ids, left-padded (padding id 0: masked)
    prompt_mask: Tensor  # (B, P)
    prompt_lengths: Tensor  # (B,)
    responses: Tensor  # (2B, R) response ids, right-padded
    response_mask: Tensor  # (2B, R) 1 on response tokens


def shared_prompt_layout(input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> SharedPromptLayout | None:
    """The layout of a PairBatch's rows ([prompt | response | padding], rows i and B + i with the same
    prompt), or None when the rows do not have that form (then they run as they are)."""
    rows, length = input_ids.shape
    half = rows // 2
    if rows % 2 or not rows:
        return None
    at = torch.arange(length, device=input_ids.device)
    lengths, response_lengths = attention_mask.sum(-1), response_mask.sum(-1)
    prompt_lengths = lengths - response_lengths
    right_padded = torch.equal(attention_mask.bool(), at < lengths[:, None])
    response_last = torch.equal(response_mask.bool(), (at >= prompt_lengths[:, None]) & (at < lengths[:, None]))
    if not (right_padded and response_last) or int(prompt_lengths.min()) < 1 or int(response_lengths.max()) < 1:
        return None
    first, second = prompt_lengths[:half], prompt_lengths[half:]
    same_prompt = (input_ids[:half] == input_ids[half:]) | (at >= first[:, None])
    if not (torch.equal(first, second) and bool(same_prompt.all())):
        return None
    width, answer = int(first.max()), int(response_lengths.max())
    source = (
        torch.arange(width, device=at.device) - (width - first)[:, None]
    )  # (B, P): where in the row; < 0 on padding
    prompt_mask = source >= 0
    prompts = torch.gather(input_ids[:half], 1, source.clamp(min=0)).masked_fill(~prompt_mask, 0)
    source = (prompt_lengths[:, None] + torch.arange(answer, device=at.device)).clamp(max=length - 1)  # (2B, R)
    taken = torch.arange(answer, device=at.device) < response_lengths[:, None]
    responses = torch.gather(input_ids, 1, source).masked_fill(~taken, 0)
    return SharedPromptLayout(prompts, prompt_mask.long(), first, responses, taken.long())


def pair_sequence_logprobs(
    model: torch.nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    reduction: Reduction = "sum",
    share_prompt: bool = True,
) -> Tensor:
    """model_sequence_logprobs of a PairBatch's 2B rows, each pair's prompt run once for both its responses.

    The prompts run into a key/value cache (B rows), which is copied to the 2B response rows; the
    responses then run against it. Causal attention makes a prompt position's computation independent of
    what follows, so this equals the full pass up to float rounding (tested, gradients included), with
    the prompt's share of the work done once instead of twice. Rows not laid out as pairs, or
    share_prompt=False: the full pass. A model that does not fill the cache (gradient checkpointing in
    training mode) raises: such callers pass share_prompt=False (EnsemblePolicy.shares_prompts)."""
    from transformers import DynamicCache

    layout = shared_prompt_layout(input_ids, attention_mask, response_mask) if share_prompt else None
    if layout is None:
        return model_sequence_logprobs(model, input_ids, attention_mask, response_mask, reduction)
    device, width = input_ids.device, layout.prompts.shape[1]
    with autocast(model_device(model)):
        first, prompt_cache = run_prompts(model, layout.prompts, layout.prompt_mask)
        rows = torch.arange(layout.prompts.shape[0], device=device).repeat(2)  # response row r continues prompt r mod B
        answer = layout.responses.shape[1]
        rest = model(
            input_ids=layout.responses,
            attention_mask=torch.cat([layout.prompt_mask[rows], layout.response_mask], 1),
            position_ids=layout.prompt_lengths[rows, None] + torch.arange(answer, device=device),
            use_cache=True,
            logits_to_keep=answer,
            **cache_arguments(model)(copy_rows(prompt_cache, rows, DynamicCache()), width, answer, device),
        ).logits
    # response token t is predicted by the prompt's last position (t = 0) or by response position t - 1
    per_token = torch.cat(
        [
            logprobs_of(first[rows], layout.responses[:, 0]).unsqueeze(1),
            logprobs_of(rest[:, -answer:][:, :-1], layout.responses[:, 1:]),
        ],
        dim=1,
    )
    return reduce_logprobs(per_token, layout.response_mask, reduction)
