"""The task record shared by built-in tasks and tasks read from files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

# A judge scores a batch of (prompt, response) texts; higher is better. Scores are comparable
# across responses to the same prompt (the win rate compares a response with the reference text).
Judge = Callable[[Sequence[str], Sequence[str]], list[float]]


def pointwise_judge(score: Callable[[str, str], float]) -> Judge:
    """A Judge from a scorer of one (prompt, response) pair."""

    def judge(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return [score(p, r) for p, r in zip(prompts, responses)]

    judge.__doc__ = f"Judge built on {score.__module__}.{score.__name__}: one score per pair, higher is better."
    return judge


@dataclass(frozen=True)
class Example:
    prompt: str
    reference: str  # a human-written response to the prompt (the win-rate baseline, or an SFT target)


@dataclass(frozen=True)
class Task:
    name: str
    train: list[Example]  # prompts the policy is aligned on (their references are not shown to it)
    eval: list[Example]  # held-out prompts with human reference texts
    demonstrations: list[Example] = field(default_factory=list)  # SFT targets (defaults to train refs)
    judge: Judge | None = None  # the task's own scoring function, if it has one
    chat_template: bool = False  # wrap prompts in the tokenizer's chat template
