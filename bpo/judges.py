"""Judges: functions that score a batch of (prompt, response) texts, higher is better.

This module sits below both the tasks (a task may carry its own judge) and the annotators (which
label pairs with a judge); it imports neither.

A judge is named by a string:
    task               the task's own scoring function (e.g. the built-in task's oracle)
    module:function    a user's Python function  f(prompts: list[str], responses: list[str]) -> list[float]
    a folder path      a Hugging Face sequence-classification reward model; it gets texts and
                       re-tokenises them with its own tokenizer, so its vocabulary need not match the policy's
"""

from __future__ import annotations

import importlib
from pathlib import Path
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


class JudgeError(ValueError):
    pass


def import_function(spec: str) -> Judge:
    """'package.module:function' -> the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise JudgeError(f"judge {spec!r}: expected 'module:function'")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise JudgeError(f"judge {spec!r}: cannot import ({err})") from None
    if not callable(fn):
        raise JudgeError(f"judge {spec!r}: {attr} is not callable")
    return fn


class RewardModelJudge:
    """A sequence-classification model's first logit as the score, computed in batches from text."""

    def __init__(self, path: str | Path, batch_size: int = 16, max_length: int = 512, allow_pickle: bool = False):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bpo.models import check_model_folder

        folder = check_model_folder(path, allow_pickle)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def _texts(self, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        if getattr(self.tokenizer, "chat_template", None):
            return [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
                )
                for p, r in zip(prompts, responses)
            ]
        return [f"{p} {r}" for p, r in zip(prompts, responses)]

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        import torch

        texts = self._texts(prompts, responses)
        scores: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                    truncation=True, max_length=self.max_length,
                )
                scores += self.model(**enc).logits[:, 0].float().tolist()
        return scores


def load_judge(spec: str, task_judge: Judge | None = None) -> Judge:
    """The judge named by `spec`; 'task' means `task_judge`, the task's own judge (None if it has none)."""
    if spec == "task":
        if task_judge is None:
            raise JudgeError("judge 'task': this task has no built-in judge; name a module:function or a reward model folder")
        return task_judge
    if Path(spec).is_dir():
        return RewardModelJudge(spec)
    if ":" in spec:
        return import_function(spec)
    raise JudgeError(f"judge {spec!r}: not 'task', a 'module:function', or an existing reward-model folder")
