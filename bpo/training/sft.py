"""Supervised fine-tuning (all parameters) on prompt -> reference demonstrations.

This produces the SFT policy that every alignment method starts from. The loss is the negative
per-token-mean log-prob of the demonstration, so long and short demonstrations weigh the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
from tqdm.auto import tqdm

from bpo.common.configlib import option
from bpo.data.task import Example
from bpo.data.tokens import collate, encode_prompt, encode_response
from bpo.model.logprobs import model_sequence_logprobs
from bpo.training.train_step import lr_factor


@dataclass(frozen=True)
class SFTConfig:
    steps: int = option(0, help="supervised fine-tuning steps before alignment; 0 skips the stage")
    batch_size: int = option(16, help="SFT batch size")
    lr: float = option(1e-3, help="SFT learning rate (all parameters)")
    data: str | None = option(
        None,
        help="a preference file (the layouts data.pairs reads): fine-tune on its chosen responses instead of the "
        "task's demonstrations, as the papers' SFT stage does; needs sft.steps > 0",
    )

    def validate(self):
        if self.steps < 0 or self.batch_size <= 0:
            raise ValueError("steps must be >= 0 and batch_size > 0")
        if self.data and not self.steps:
            raise ValueError(
                f"steps is 0, so sft.data={self.data} would not be used; set sft.steps to the number of SFT steps"
            )
        if not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be positive and finite, got {self.lr}")


Schedule = Literal["cosine", "constant"]

WARMUP_FRACTION = 0.1
MAX_GRAD_NORM = 1.0


def sft_warmup_steps(steps: int) -> int:
    """Warm-up length of SFT: the first 10% of the steps, at least one."""
    return max(1, int(WARMUP_FRACTION * steps))


def sft_lr_factor(schedule: Schedule, steps: int) -> Callable[[int], float]:
    """LR multiplier per step: lr_factor with warm-up over the first 10% of steps, then constant or cosine to 0."""
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    warmup = sft_warmup_steps(steps)
    return lambda step: lr_factor(step, steps, warmup, schedule)


def batch_orders(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Indices of each step's batch: shuffled epochs from a seeded generator (global RNG untouched)."""
    generator = torch.Generator().manual_seed(seed)
    size = min(batch_size, n)
    batches: list[list[int]] = []
    queue: list[int] = []
    while len(batches) < steps:
        if len(queue) < size:  # start a new epoch; the short tail of the old one goes first
            queue += torch.randperm(n, generator=generator).tolist()
        batches.append(queue[:size])
        queue = queue[size:]
    return batches


def preferred_demonstrations(path: str | Path) -> list[Example]:
    """SFT demonstrations from a preference file: each prompt (a conversation kept whole) with its chosen response."""
    from bpo.data.prefdata import read_preferences

    return [Example(r.prompt, r.chosen) for r in read_preferences(path)]


def supervised_finetune(
    model: torch.nn.Module,
    tokenizer,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    chat_template: bool = False,
    progress: bool = True,
    schedule: Schedule = "cosine",
) -> list[float]:
    """Train `model` in place to maximise log pi(reference | prompt); returns the loss of every step."""
    if not examples:
        raise ValueError("supervised_finetune needs at least one example")
    device = next(model.parameters()).device
    # Tokenise once up front: every step reuses the same ids.
    prompts = [encode_prompt(tokenizer, ex.prompt, chat_template) for ex in examples]
    responses = [encode_response(tokenizer, ex.reference) for ex in examples]

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, sft_lr_factor(schedule, steps))
    was_training = model.training
    model.train()

    losses: list[float] = []
    bar = tqdm(batch_orders(len(examples), batch_size, steps, seed), desc="sft", disable=not progress)
    for batch in bar:
        input_ids, attention, response_mask = collate(
            [prompts[i] for i in batch], [responses[i] for i in batch], tokenizer.pad_token_id, "right"
        )
        logps = model_sequence_logprobs(
            model, input_ids.to(device), attention.to(device), response_mask.to(device), reduction="mean"
        )
        loss = -logps.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")

    model.train(was_training)
    return losses
