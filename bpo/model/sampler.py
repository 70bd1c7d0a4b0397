"""Sampling responses from a policy, recording each response's log-prob under that policy.

The log-prob is read from the raw logits each decoding step computes anyway (before temperature or
top-p), so it is log pi_beta(y|x) of the snapshot itself: BPO's reference log-prob, for free.

The decoding loop is our own rather than transformers' `generate`: profiled on the standard benchmark
model (issue 12), `generate` spent most of a phase's sampling growing its key/value cache by
concatenation (a copy of the whole cache per layer and token) and drawing a random number per
vocabulary entry (`torch.multinomial`). Here each prompt runs once and its cache is copied to its n
rows, the cache is preallocated for prompt + response (transformers' StaticCache), each row draws one
uniform number per token (inverse CDF), and only the per-row log-prob sum is kept, never a step's
logits. The model's generation_config (a repetition penalty, say) is not applied: the tokens are drawn
from the policy's own distribution shaped only by bpo's temperature and top-p (none at 1 and 1), and the
recorded log-prob is the policy's own, whatever those are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from bpo.common.configlib import option
from bpo.data.records import Response
from bpo.data.tokens import collate
from bpo.model.device import autocast, model_device
from bpo.model.kvcache import cache_arguments, copy_rows, position_ids_for, run_prompts
from bpo.model.logprobs import logprobs_of


@dataclass(frozen=True)
class SamplingSpec:
    temperature: float = option(1.0, help="sampling temperature")
    top_p: float = option(1.0, help="nucleus sampling threshold")
    max_new_tokens: int = option(32, help="longest response, in tokens")
    batch_size: int = option(
        64,
        may_change_on_resume=True,
        help="prompts per generation call (two responses each); 64: the cost per pair on the standard benchmark "
        "model fell from 8 to 128 prompts per call and rose again at 256 (docs/performance.md, the cost curve)",
    )
    greedy: bool = option(False, help="greedy decoding instead of sampling")

    def validate(self):
        if not self.greedy and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(
                f"temperature must be positive and finite when sampling (greedy: false), got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        for key, value in (("max_new_tokens", self.max_new_tokens), ("batch_size", self.batch_size)):
            if value <= 0:
                raise ValueError(f"{key} must be positive, got {value}")


def sample_tokens(logits: Tensor, temperature: float, top_p: float, uniform: Tensor) -> Tensor:
    """One token per row of `logits` (rows, V), drawn by inverse CDF with one uniform number per row.

    The distribution is softmax(logits / temperature) cut to its nucleus: the most probable tokens,
    in decreasing order, up to and including the first at which their mass reaches top_p, renormalised.
    `uniform` (rows,) in [0, 1) selects the token whose cumulative interval contains it (a pure function
    of its inputs, so it can be checked by hand).
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        mass_before = probs.cumsum(-1) - probs
        probs = probs.masked_fill(mass_before >= top_p, 0.0)  # the first token always stays (its mass_before is 0)
    cdf = probs.cumsum(-1)
    picked = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(-1), right=True).clamp(max=probs.shape[-1] - 1)
    # float rounding can leave the draw at the very end of the CDF, on a token of probability 0: take the mode
    picked = torch.where(probs.gather(-1, picked) > 0, picked, probs.argmax(-1, keepdim=True)).squeeze(-1)
    return order.gather(-1, picked.unsqueeze(-1)).squeeze(-1) if top_p < 1.0 else picked


@torch.no_grad()
def decode(
    model, ids: Tensor, attention: Tensor, n: int, spec: SamplingSpec, eos: int, pad: int
) -> tuple[Tensor, Tensor]:
    """Sample n continuations of up to max_new_tokens after each (left-padded) prompt row.

    Returns the new tokens (rows * n, <= T), row i * n + j being prompt i's j-th sample, padded with `pad`
    after its first EOS, and each row's summed log-prob up to and including that EOS. The prompts run
    through the model once, their cache then repeated n times (not n copies of each prompt).
    """
    from transformers import DynamicCache, StaticCache

    with_cache = cache_arguments(model)
    last, prefix = run_prompts(model, ids, attention)
    # On the CPU, one preallocated cache for all rows and every step: no per-token copy of the whole cache
    # (the cost profiled). On CUDA the copies are cheap and a preallocated cache under bfloat16 autocast
    # depends on the transformers version's dtype handling (4.56 fails: float32 keys, bfloat16 values).
    cache = (
        StaticCache(config=model.config, max_cache_len=ids.shape[1] + spec.max_new_tokens)
        if ids.device.type == "cpu"
        else DynamicCache()
    )
    copy_rows(prefix, torch.arange(ids.shape[0], device=ids.device).repeat_interleave(n), cache)
    del prefix
    logits = last.repeat_interleave(n, 0)
    attention, positions = attention.repeat_interleave(n, 0), position_ids_for(attention).repeat_interleave(n, 0)
    rows, device = logits.shape[0], logits.device
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    total = torch.zeros(rows, dtype=torch.float32, device=device)
    tokens = []
    for step in range(spec.max_new_tokens):
        if spec.greedy:
            token = logits.argmax(-1)
        else:
            token = sample_tokens(logits, spec.temperature, spec.top_p, torch.rand(rows, device=device))
        token = token.masked_fill(finished, pad)
        total += logprobs_of(logits, token).masked_fill(finished, 0.0)
        tokens.append(token)
        finished |= token == eos
        if bool(finished.all()) or step == spec.max_new_tokens - 1:
            break
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        logits = model(
            input_ids=token.unsqueeze(-1),
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            **with_cache(cache, attention.shape[1] - 1, 1, device),
        ).logits[:, -1]
    return torch.stack(tokens, dim=1), total


def generate(
    model, tokenizer, prompt_ids: Sequence[Sequence[int]], n: int, spec: SamplingSpec, desc: str | None = None
) -> list[list[Response]]:
    """n responses per prompt (n = 1 when greedy), each with its summed log-prob under `model`."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = model_device(model)
    per_prompt = 1 if spec.greedy else n
    out: list[list[Response]] = []
    bar = tqdm(total=len(prompt_ids), desc=desc, disable=desc is None, leave=False)
    for start in range(0, len(prompt_ids), spec.batch_size):
        chunk = prompt_ids[start : start + spec.batch_size]
        ids, attention, _ = collate(chunk, [[] for _ in chunk], pad, side="left")
        with autocast(device):
            new_tokens, logp = decode(model, ids.to(device), attention.to(device), per_prompt, spec, eos, pad)
        for row, row_tokens in enumerate(new_tokens.tolist()):
            resp_ids = row_tokens[: row_tokens.index(eos) + 1] if eos in row_tokens else row_tokens
            text_ids = resp_ids[:-1] if resp_ids and resp_ids[-1] == eos else resp_ids
            if row % per_prompt == 0:
                out.append([])
            out[-1].append(
                Response(
                    text=tokenizer.decode(text_ids, skip_special_tokens=True).strip(),
                    ids=resp_ids,
                    logp=float(logp[row]),
                )
            )
        bar.update(len(chunk))
    bar.close()
    return out
