"""Sampling responses from a policy, recording each response's log-prob under that policy.

The log-prob is read from the raw logits generation computes anyway (before temperature or top-p),
so it is log pi_beta(y|x) of the snapshot itself: BPO's reference log-prob, for free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from bpo.configlib import option
from bpo.device import autocast, model_device
from bpo.logprobs import logprobs_of
from bpo.tokens import collate
from bpo.types import Response


@dataclass(frozen=True)
class SamplingSpec:
    temperature: float = option(1.0, help="sampling temperature")
    top_p: float = option(1.0, help="nucleus sampling threshold")
    max_new_tokens: int = option(32, help="longest response, in tokens")
    batch_size: int = option(16, help="prompts per generation call")
    greedy: bool = option(False, help="greedy decoding instead of sampling")

    def validate(self):
        if not self.greedy and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be positive and finite when sampling (greedy: false), got {self.temperature}")
        if not 0 < self.top_p <= 1 or self.max_new_tokens <= 0 or self.batch_size <= 0:
            raise ValueError("need 0 < top_p <= 1, max_new_tokens > 0, batch_size > 0")


@torch.no_grad()
def generate(
    model, tokenizer, prompt_ids: Sequence[Sequence[int]], n: int, spec: SamplingSpec, desc: str | None = None
) -> list[list[Response]]:
    """n responses per prompt (n = 1 when greedy), each with its summed log-prob under `model`."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = model_device(model)
    out: list[list[Response]] = []
    bar = tqdm(total=len(prompt_ids), desc=desc, disable=desc is None, leave=False)
    for start in range(0, len(prompt_ids), spec.batch_size):
        chunk = prompt_ids[start : start + spec.batch_size]
        ids, attention, _ = collate(chunk, [[] for _ in chunk], pad, side="left")
        kwargs = dict(do_sample=False) if spec.greedy else dict(do_sample=True, temperature=spec.temperature, top_p=spec.top_p, top_k=0)
        with autocast(device):
            result = model.generate(
                input_ids=ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=spec.max_new_tokens,
                num_return_sequences=1 if spec.greedy else n,
                eos_token_id=eos,
                pad_token_id=pad,
                output_logits=True,
                return_dict_in_generate=True,
                **kwargs,
            )
        new_tokens = result.sequences[:, ids.shape[1] :]  # (rows, T)
        # the raw logits (before any warper), one (rows, V) tensor per step: read step by step, so no stacked
        # (rows, T, V) copy and no temporary of that size exist (a phase sampled in one call is large)
        token_logp = torch.stack([logprobs_of(step, new_tokens[:, t]) for t, step in enumerate(result.logits)], dim=1)
        del result
        # A row is alive up to and including its first EOS; later positions are padding.
        after_eos = (new_tokens == eos).long().cumsum(-1) - (new_tokens == eos).long()
        alive = after_eos == 0
        per_prompt = 1 if spec.greedy else n
        for row in range(new_tokens.shape[0]):
            length = int(alive[row].sum())
            resp_ids = new_tokens[row, :length].tolist()
            text_ids = resp_ids[:-1] if resp_ids and resp_ids[-1] == eos else resp_ids
            response = Response(
                text=tokenizer.decode(text_ids, skip_special_tokens=True).strip(),
                ids=resp_ids,
                logp=float(token_logp[row, :length].sum()),
            )
            if row % per_prompt == 0:
                out.append([])
            out[-1].append(response)
        bar.update(len(chunk))
    bar.close()
    return out
