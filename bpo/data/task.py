"""The task record shared by built-in tasks and tasks read from files, and the judge's type it carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from bpo.data.chat import Prompt

# A judge scores a batch of (prompt, response) texts; higher is better. Scores are comparable
# across responses to the same prompt (the win rate compares a response with the reference text).
# The judges themselves are in bpo.judging.
Judge = Callable[[Sequence[str], Sequence[str]], list[float]]


@dataclass(frozen=True)
class Example:
    prompt: Prompt  # a text, or a conversation ending where the response begins (bpo.data.chat)
    reference: str  # a human-written response to the prompt (the win-rate baseline, or an SFT target)


@dataclass(frozen=True)
class Task:
    """A task's data and judge. It does not depend on the run seed: every run of a task, whatever its
    seed, trains on the same prompts and is scored on the same held-out prompts (the run seed orders
    the training prompts later, in bpo.judging.pairs.PromptStream)."""

    name: str
    train: list[Example]  # prompts the policy is aligned on (their references are not shown to it)
    eval: list[Example]  # held-out prompts with human reference texts; disjoint from train and demonstrations
    demonstrations: list[Example] = field(default_factory=list)  # SFT targets (defaults to train refs)
    judge: Judge | None = None  # the task's own scoring function, if it has one
    chat_template: bool = False  # wrap prompts in the tokenizer's chat template
    # Prompts with references for choosing settings (bpo reproduce's learning-rate selection): disjoint
    # from train, eval and the demonstrations, so a setting chosen on them is not chosen on the test prompts.
    dev: list[Example] = field(default_factory=list)

    def split(self, name: str) -> list[Example]:
        """The examples a run evaluates on (eval.split): the held-out prompts or the dev prompts."""
        if name == "heldout":
            return self.eval
        if name == "dev":
            if not self.dev:
                raise ValueError(
                    f"task {self.name!r} has no dev split (a task file names one with its 'dev' key); "
                    "eval.split=dev needs one"
                )
            return self.dev
        raise ValueError(f"unknown split {name!r} (heldout or dev)")
