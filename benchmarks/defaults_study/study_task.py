"""The defaults study's own task, "reverse": built only for the study, never used to develop bpo.

It reaches bpo the way a user's task does: a task YAML, JSONL files, a judge module (`study_task:score`,
importable when this folder is on sys.path) and a local SFT model folder given as `policy.path`. Its
model is larger than the built-in tasks' (hidden 128, 3 layers against 64 and 2), so a default that only
suits one model size shows up.

* prompts list 3 to 6 colour words, e.g. ``reverse : red blue green``; the answer is ``green blue red .``
* the judge is graded and continuous: with target = the reversed list and r the response's words,
      score = (positions where r agrees with target) / len(target) - 0.25 * |len(r) - len(target)|
              - 0.5 * [no final "."]
  a correct answer scores 1; the list copied as given scores 1/n or less (only a middle word agrees);
* the SFT demonstrations come from a mixed crowd: 35% correct, 35% the list copied unreversed, 30% a
  reversal with two neighbours swapped; the human references are correct with probability 0.85, else
  one swap, so a perfect policy beats them on about 15% of prompts and ties the rest.

Train, eval, dev and demonstration prompts are different lists (as sets of words in order).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Sequence

COLOURS: tuple[str, ...] = (
    "red blue green yellow black white brown pink grey orange purple gold silver teal navy olive"
).split()
TEMPLATES: tuple[str, ...] = ("reverse : {xs}", "say backwards : {xs}", "reverse the list : {xs}")
VOCABULARY: tuple[str, ...] = tuple(
    sorted({w for t in TEMPLATES for w in t.replace("{xs}", "").split()} | {".", ":"} | set(COLOURS))
)
SIZES = {"train": 512, "eval": 128, "dev": 128, "demonstrations": 512}
REFERENCE_SLIP = 0.15


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]+", text.lower())


def prompt_list(prompt: str) -> list[str]:
    return [w for w in words(prompt) if w in COLOURS]


def score_one(prompt: str, response: str) -> float:
    """The module docstring's score, e.g. prompt "reverse : red blue green", response "green red blue .":
    target green blue red, agreeing at position 0 only: 1/3 - 0 - 0 = 0.333."""
    target = prompt_list(prompt)[::-1]
    got = [w for w in words(response) if w != "."]
    agree = sum(a == b for a, b in zip(got, target))
    return agree / len(target) - 0.25 * abs(len(got) - len(target)) - 0.5 * (not response.strip().endswith("."))


def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """The judge, as a task file names it (`judge: study_task:score`)."""
    return [score_one(p, r) for p, r in zip(prompts, responses)]


def swapped(rng: random.Random, xs: list[str]) -> list[str]:
    i = rng.randrange(len(xs) - 1)
    return xs[:i] + [xs[i + 1], xs[i]] + xs[i + 2 :]


def answer(xs: list[str]) -> str:
    return " ".join(xs) + " ."


def distinct_lists(rng: random.Random, n: int, taken: set) -> list[list[str]]:
    out = []
    while len(out) < n:
        xs = rng.sample(COLOURS, rng.randint(3, 6))
        if tuple(xs) not in taken:
            taken.add(tuple(xs))
            out.append(xs)
    return out


def rows() -> dict[str, list[dict]]:
    """Every split's rows, from one seeded stream (the data never depend on a run's seed)."""
    rng, taken = random.Random(20261203), set()
    lists = {split: distinct_lists(rng, n, taken) for split, n in SIZES.items()}

    def prompt(xs):
        return rng.choice(TEMPLATES).format(xs=" ".join(xs))

    def reference(xs):
        target = xs[::-1]
        return answer(swapped(rng, target) if rng.random() < REFERENCE_SLIP else target)

    def demonstration(xs):
        kind = rng.choices(("correct", "copied", "swapped"), (0.35, 0.35, 0.30))[0]
        target = {"correct": xs[::-1], "copied": xs, "swapped": swapped(rng, xs[::-1])}[kind]
        return answer(target)

    out = {s: [{"prompt": prompt(xs), "reference": reference(xs)} for xs in lists[s]] for s in ("train", "eval", "dev")}
    out["demonstrations"] = [{"prompt": prompt(xs), "reference": demonstration(xs)} for xs in lists["demonstrations"]]
    return out


def write_task(folder: Path) -> Path:
    """The task folder: task.yaml and one JSONL per split; returns task.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows().items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    spec = "name: reverse\n" + "".join(f"{s}: {s}.jsonl\n" for s in SIZES) + "judge: study_task:score\n"
    (folder / "task.yaml").write_text(spec)
    return folder / "task.yaml"


def sft_model(folder: Path, cache: Path, progress: bool = True) -> Path:
    """The study task's SFT policy: a word-level Llama (hidden 128, 3 layers) fine-tuned on the
    demonstrations by bpo's own SFT (bpo.tasks.wordlm), cached under `cache`."""
    from bpo.data.task import Example, Task
    from bpo.tasks import wordlm

    task_rows = rows()

    def build_task() -> Task:
        def examples(split):
            return [Example(r["prompt"], r["reference"]) for r in task_rows[split]]

        demos = examples("demonstrations")
        return Task(name="reverse", train=examples("train"), eval=examples("eval"), demonstrations=demos, judge=None)

    size = wordlm.TinyPolicyConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=3)
    recipe = wordlm.SFTRecipe(steps=600, batch_size=32, lr=5e-3, policy=size)
    settings = {"task": "reverse-v1", "recipe": repr(recipe)}
    return wordlm.sft_policy(cache, "reverse", settings, VOCABULARY, build_task, recipe, 0, progress)
