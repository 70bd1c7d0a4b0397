"""The built-in task "sorting": sort a short list of numbers, scored by an exact judge.

Unlike `reviews`, whose judge is a hand-weighted heuristic, this task's judge computes a verifiable
quantity: how much of the correctly sorted list the response contains, in order.

* prompts give 4 to 6 distinct numbers from 0 to 19, e.g. ``sort : 14 3 9 0 7``; the answer is
  ``0 3 7 9 14 .``;
* the judge (`score`) is exact: with target = sorted(prompt numbers) and the response's numbers r,
      score = LCS(r, target) - (len(r) - LCS(r, target)) - [no final "."] - (other words)
  (LCS: longest common subsequence): every number in its sorted place counts +1, every other
  number -1, and a missing full stop or a word that is not a number -1 each. A correct answer
  scores n; swapping two neighbours costs 2, dropping a number 1. Scores are integers, so ties are
  common and counted as such (the strict win rate counts them as losses, as the BPO paper does);
* the references come from a hurried human: correct with probability 1 - REFERENCE_SLIP, otherwise
  with one slip (two neighbours swapped, or one number left out). A correct answer beats a slipped
  reference and ties a correct one, so a perfect policy's strict win rate is about REFERENCE_SLIP;
* the SFT demonstrations come from a mixed crowd: correct sorts, sorts with one slip, the numbers
  copied as given, and sorts in descending order. A policy fine-tuned on them mixes these modes,
  so it loses to the references most of the time, while its correct samples beat them: preference
  learning with this judge has room to move the policy towards the correct mode.

Train, held-out eval and demonstration prompts are different *lists* (not only different strings):
no held-out list appears in training under any template. The data do not depend on the run seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from bpo.data.task import Example, Task
from bpo.judging.judges import pointwise_judge
from bpo.tasks import wordlm

NUMBERS: tuple[str, ...] = tuple(str(i) for i in range(20))
MIN_LENGTH, MAX_LENGTH = 4, 6
PROMPT_TEMPLATES: tuple[str, ...] = ("sort : {xs}", "sort these numbers : {xs}", "put in order : {xs}")
PUNCTUATION: tuple[str, ...] = (":", ".")
VOCABULARY: tuple[str, ...] = (
    tuple(sorted({w for t in PROMPT_TEMPLATES for w in t.replace("{xs}", "").split()} | set(PUNCTUATION))) + NUMBERS
)

# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Tokens as the word-level tokenizer sees them: runs of word characters, or of punctuation."""
    return re.findall(r"<\w+>|\w+|[^\w\s]+", text.lower())


def prompt_numbers(prompt: str) -> list[int]:
    return [int(w) for w in split_words(prompt) if w in NUMBERS]


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of a and b (dynamic programming, O(len a * len b))."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def score(prompt: str, response: str) -> int:
    """The exact score of `response` as a sort of the prompt's numbers (see the module docstring)."""
    target = sorted(prompt_numbers(prompt))
    tokens = split_words(response)
    ends_with_period = bool(tokens) and tokens[-1] == "."
    if ends_with_period:
        tokens = tokens[:-1]
    numbers = [int(t) for t in tokens if t in NUMBERS]
    in_place = lcs_length(numbers, target)
    other_words = len(tokens) - len(numbers)
    return in_place - (len(numbers) - in_place) - (0 if ends_with_period else 1) - other_words


judge = pointwise_judge(score)


# ---------------------------------------------------------------------------------------------
# Prompts, references and demonstrations
# ---------------------------------------------------------------------------------------------

N_TRAIN, N_EVAL, N_DEMONSTRATIONS = 512, 128, 8192
N_DEV = 128  # dev prompts (Task.dev), on lists of their own
DATA_SEED = 0  # the task's data; changing it or anything build_task draws: bump TASK_VERSION
DEV_SEED = 1  # the dev split's lists and references: a stream of its own, so the other data stay unchanged
REFERENCE_SLIP = 0.8  # the hurried human's references: one slip in 4 of 5
# The crowd that wrote the SFT demonstrations: (kind, probability).
DEMO_MIX: tuple[tuple[str, float], ...] = (("sorted", 0.3), ("slip", 0.3), ("as_given", 0.2), ("descending", 0.2))


def answer(numbers: list[int]) -> str:
    return " ".join(str(x) for x in numbers) + " ."


def with_slip(rng: random.Random, numbers: list[int]) -> list[int]:
    """The sorted list with one slip: two neighbours swapped, or one number left out (even odds)."""
    out = sorted(numbers)
    i = rng.randrange(len(out) - 1)
    if rng.random() < 0.5:
        out[i], out[i + 1] = out[i + 1], out[i]
    else:
        del out[rng.randrange(len(out))]
    return out


def demonstration(rng: random.Random, numbers: list[int], kind: str) -> str:
    if kind == "sorted":
        return answer(sorted(numbers))
    if kind == "slip":
        return answer(with_slip(rng, numbers))
    if kind == "as_given":
        return answer(numbers)
    if kind == "descending":
        return answer(sorted(numbers, reverse=True))
    raise ValueError(f"unknown demonstration kind {kind!r}")


def reference(rng: random.Random, numbers: list[int]) -> str:
    return answer(with_slip(rng, numbers) if rng.random() < REFERENCE_SLIP else sorted(numbers))


def prompt_of(rng: random.Random, numbers: list[int]) -> str:
    return rng.choice(PROMPT_TEMPLATES).format(xs=" ".join(str(x) for x in numbers))


def distinct_lists(rng: random.Random, n: int, exclude: Sequence[list[int]] = ()) -> list[list[int]]:
    """n lists of MIN_LENGTH..MAX_LENGTH distinct numbers, no two with the same numbers (in any order):
    two such lists share their answer, so they count as the same problem; none with the numbers of a list
    in `exclude`."""
    seen: set[tuple[int, ...]] = {tuple(sorted(xs)) for xs in exclude}
    lists = []
    while len(lists) < n:
        xs = rng.sample(range(len(NUMBERS)), rng.randint(MIN_LENGTH, MAX_LENGTH))
        if tuple(sorted(xs)) not in seen:
            seen.add(tuple(sorted(xs)))
            lists.append(xs)
    return lists


def build_task() -> Task:
    """N_EVAL held-out and N_TRAIN train prompts with references, N_DEMONSTRATIONS SFT demonstrations
    on prompts of their own; the three sets of lists are disjoint. The same for every run."""
    rng = random.Random(DATA_SEED)
    lists = distinct_lists(rng, N_EVAL + N_TRAIN + N_DEMONSTRATIONS)
    eval_lists, train_lists, demo_lists = lists[:N_EVAL], lists[N_EVAL : N_EVAL + N_TRAIN], lists[N_EVAL + N_TRAIN :]
    eval_examples = [Example(prompt_of(rng, xs), reference(rng, xs)) for xs in eval_lists]
    train_examples = [Example(prompt_of(rng, xs), reference(rng, xs)) for xs in train_lists]
    kinds, probs = zip(*DEMO_MIX)
    demos = [
        Example(prompt_of(rng, xs), demonstration(rng, xs, rng.choices(kinds, weights=probs)[0])) for xs in demo_lists
    ]
    dev_rng = random.Random(DEV_SEED)
    dev = [Example(prompt_of(dev_rng, xs), reference(dev_rng, xs)) for xs in distinct_lists(dev_rng, N_DEV, lists)]
    return Task(name="sorting", train=train_examples, eval=eval_examples, demonstrations=demos, judge=judge, dev=dev)


# ---------------------------------------------------------------------------------------------
# The cached SFT policy
# ---------------------------------------------------------------------------------------------

SFT_RECIPE = wordlm.SFTRecipe(steps=1500, batch_size=32, lr=1e-2)
TASK_VERSION = 1


def sft_policy(cache_dir: Path, seed: int = 0, progress: bool = True, recipe: wordlm.SFTRecipe = SFT_RECIPE) -> Path:
    """The tiny word-level Llama fine-tuned on the crowd's demonstrations, cached under cache_dir."""
    settings = {"task": "sorting", "version": TASK_VERSION, "seed": seed, **asdict(recipe)}
    return wordlm.sft_policy(cache_dir, "sorting", settings, VOCABULARY, build_task, recipe, seed, progress)
