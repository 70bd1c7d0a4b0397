"""A prompt's key/value cache reused by several continuations, across transformers versions.

Two places run a prompt once and continue it several times: the sampler (n responses per prompt) and
the pair log-probs (a pair's chosen and rejected responses share its prompt, bpo.model.logprobs). Both run
the prompts into a DynamicCache, then copy its rows, as many times as there are continuations, into
the cache the continuations use. Indexing keeps the autograd graph, so a training pass's gradient
reaches the prompt's keys and values (and the LoRA factors that made them) from every continuation.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch
from torch import Tensor


def position_ids_for(attention_mask: Tensor) -> Tensor:
    """Positions that count only real tokens, so left padding does not shift a row's positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@functools.lru_cache(maxsize=None)
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def cache_arguments(model) -> Callable[..., dict]:
    """f(cache, start, length, device) -> the keyword arguments that hand `cache` to this model's forward
    for `length` new positions from `start`: transformers 5.24 names it `cache` (before: `past_key_values`,
    with the write positions given as `cache_position` rather than read from the cache)."""
    from transformers import PreTrainedModel

    inner = model
    while not isinstance(inner, PreTrainedModel):  # under peft's PeftModel and bpo.model.policy's forward wrappers
        inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner.model
    parameters = _forward_parameters(type(inner))

    def arguments(cache, start: int, length: int, device: torch.device) -> dict:
        given = {"cache" if "cache" in parameters else "past_key_values": cache}
        if "cache_position" in parameters:
            given["cache_position"] = torch.arange(start, start + length, device=device)
        return given

    return arguments


def run_prompts(model, ids: Tensor, attention: Tensor):
    """Run left-padded prompts (B, P) once: (the logits at each prompt's last position (B, V), a DynamicCache
    of their keys and values). A model that leaves the cache empty (gradient checkpointing in training
    mode) is refused rather than continued without its prompts."""
    from transformers import DynamicCache

    cache = DynamicCache()
    out = model(
        input_ids=ids,
        attention_mask=attention,
        position_ids=position_ids_for(attention),
        use_cache=True,
        logits_to_keep=1,
        **cache_arguments(model)(cache, 0, ids.shape[1], ids.device),
    )
    if cache.get_seq_length() != ids.shape[1]:
        raise RuntimeError(
            "the model did not fill its key/value cache for the prompts (gradient checkpointing?): run the rows whole"
        )
    return out.logits[:, -1], cache


def copy_rows(prefix, rows: Tensor, into):
    """Fill the empty cache `into` with prefix's rows `rows` (row j of `into` is prefix row rows[j]), layer by layer.
    The write positions go along as `cache_position` (transformers 4.56's sliding-window layers read them)."""
    for layer, held in enumerate(prefix.layers):
        positions = torch.arange(held.keys.shape[-2], device=held.keys.device)
        into.update(held.keys[rows], held.values[rows], layer, {"cache_position": positions})
    return into
