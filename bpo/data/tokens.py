"""Turning texts into the token tensors that `bpo.model.logprobs` consumes.

A sequence is prompt tokens followed by response tokens; the response ends with the tokenizer's EOS
token so that stopping is learned and scored. Prompts and responses are tokenised separately (never
the concatenated text) so that the token ids the sampler produced are exactly the ids trained on.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from bpo.data.chat import Prompt, is_conversation, prompt_messages

PaddingSide = Literal["left", "right"]


def encode_prompt(tokenizer, prompt: Prompt, chat_template: bool = False) -> list[int]:
    """Prompt ids. A conversation (bpo.data.chat) goes whole through the tokenizer's chat template, followed
    by the assistant header; so does a plain text with chat_template, as one user turn."""
    if chat_template or is_conversation(prompt):
        ids = tokenizer.apply_chat_template(prompt_messages(prompt), add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return list(ids)
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def encode_response(tokenizer, response: str) -> list[int]:
    """Response ids followed by EOS (no BOS: the response continues the prompt)."""
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    return ids + [tokenizer.eos_token_id]


def strip_eos(ids: Sequence[int], eos_id: int) -> list[int]:
    """Response ids up to (not including) the first EOS, for decoding to text."""
    ids = list(ids)
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def collate(
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    pad_id: int,
    side: PaddingSide = "right",
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad prompt+response rows to one length: (input_ids, attention_mask, response_mask), each (B, L)."""
    rows = [list(p) + list(r) for p, r in zip(prompts, responses)]
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    response = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        n = len(p) + len(r)
        start = length - n if side == "left" else 0
        input_ids[i, start : start + n] = torch.tensor(list(p) + list(r), dtype=torch.long)
        attention[i, start : start + n] = 1
        response[i, start + len(p) : start + n] = 1
    return input_ids, attention, response
