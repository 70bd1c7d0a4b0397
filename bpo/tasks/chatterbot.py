"""The built-in task "chatterbot": short chit-chat prompts with human answers from `chatterbot-corpus`.

The data is the English part of the PyPI package `chatterbot-corpus` (1.3.3): 21 YAML files
(greetings, emotion, ai, trivia, tech_support, ...), each a list of `conversations`, each a list of
turns written by people for the ChatterBot project. Every two consecutive turns inside a
conversation make an Example (prompt = a turn, reference = the turn that answers it), as ChatterBot
itself learns them. Of the 2,393 pairs, items that are empty (32) or not strings, prompts over
MAX_PROMPT_WORDS words, answers over MAX_REFERENCE_WORDS words and answers holding code blocks (184,
all of coding.yml; whitespace normalisation would destroy their layout) are dropped; whitespace is
collapsed; prompts are deduplicated case-insensitively, keeping the first answer in file order (the
tech-support file, for instance, repeats each of its ten or so prompts about a hundred times). That leaves 918 examples.

`build_task(seed, eval_size)` shuffles them with `random.Random(SPLIT_SEED)` and holds out the
first `eval_size` (64) as eval prompts; the other 854 are the train prompts and, with their human
answers, the SFT demonstrations. The split does not depend on `seed`, so runs with different seeds
are scored on the same held-out prompts against the same references; `seed` only orders the train
prompts. Prompts go through the policy's chat template, and the judge is the VADER
judge (`bpo.annotators.vader.vader_judge`). The initial policy is SmolLM2-135M-Instruct
(`bpo.pretrained.smollm2_folder`).
"""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import yaml

from bpo.annotators.vader import vader_judge
from bpo.tasks.base import Example, Task

PACKAGE = "chatterbot_corpus"
LANGUAGE = "english"
MAX_PROMPT_WORDS = 40
MAX_REFERENCE_WORDS = 60  # the judge penalises longer answers; a reference should not be one
EVAL_SIZE = 64
SPLIT_SEED = 0  # fixed: every run seed sees the same held-out prompts


class CorpusError(RuntimeError):
    """The corpus package is missing or unreadable; the message says how to fix it."""


def corpus_files(language: str = LANGUAGE) -> list[Path]:
    """The package's YAML files for `language`, sorted by name (the order examples are read in)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"the package {PACKAGE!r} is not installed; run `pip install chatterbot-corpus`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / language
    files = sorted(folder.glob("*.yml"))
    if not files:
        raise CorpusError(f"{folder}: no *.yml files")
    return files


def normalise(text: str) -> str:
    """Runs of whitespace (newlines included) become one space; ends are stripped."""
    return re.sub(r"\s+", " ", text).strip()


def _usable(prompt: object, reference: object) -> bool:
    if not isinstance(prompt, str) or not isinstance(reference, str):
        return False  # YAML can hold numbers, nulls or nested lists where a turn should be
    if "```" in reference:
        return False
    n_prompt, n_reference = len(prompt.split()), len(reference.split())
    return 0 < n_prompt <= MAX_PROMPT_WORDS and 0 < n_reference <= MAX_REFERENCE_WORDS


def load_examples(language: str = LANGUAGE) -> list[Example]:
    """All usable (turn, next turn) pairs, one per distinct prompt, in file order."""
    examples: list[Example] = []
    seen: set[str] = set()
    for path in corpus_files(language):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations") or []:
            if not isinstance(conversation, list):
                continue
            for prompt, reference in zip(conversation, conversation[1:]):
                if not _usable(prompt, reference):
                    continue
                prompt, reference = normalise(prompt), normalise(reference)
                key = prompt.casefold()
                if not prompt or not reference or key in seen:
                    continue
                seen.add(key)
                examples.append(Example(prompt, reference))
    return examples


def build_task(seed: int = 0, eval_size: int = EVAL_SIZE) -> Task:
    """The chatterbot task: `eval_size` held-out prompts (a fixed split), the rest for training and SFT."""
    examples = load_examples()
    if not 0 < eval_size < len(examples):
        raise ValueError(f"eval_size must be in 1..{len(examples) - 1}, got {eval_size}")
    random.Random(SPLIT_SEED).shuffle(examples)
    eval_examples, train_examples = examples[:eval_size], examples[eval_size:]
    random.Random(seed).shuffle(train_examples)
    return Task(
        name="chatterbot", train=train_examples, eval=eval_examples, demonstrations=list(train_examples),
        judge=vader_judge, chat_template=True,
    )
