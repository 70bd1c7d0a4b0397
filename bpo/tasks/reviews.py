"""The built-in task "reviews": a tiny word-level stand-in for TL;DR / helpfulness alignment.

The BPO paper aligns an SFT model on prompts, scores responses with a reward model, and reports the
win rate of the aligned policy against human-written reference texts. This task keeps every piece of
that set-up but makes it small enough to train on two CPU cores in minutes:

* prompts ask for a review of an item, e.g. ``review the pizza recommended by anna :``;
* each prompt has a human-style reference review, moderately positive and on topic
  (``the pizza was good and the taste was nice .``): decent, but well below the best attainable score;
* the judge (`score`) is a fixed rule-based oracle, standing in for the reward model: it likes
  praise, mentions of the reviewed item and of aspects that fit it, and dislikes complaints,
  off-topic items, repeated or unknown words, bad lengths and a missing final full stop;
* the SFT demonstrations come from a noisy crowd: negative, neutral, positive and off-topic
  reviews. A policy fine-tuned on them imitates the crowd and so loses to the references most of
  the time, as an SFT model loses to human-written answers; yet its better samples beat the
  references (best-of-n of SFT samples wins clearly more often), so preference learning with the
  judge as annotator has room to improve the policy.

`build_tiny_policy` makes a word-level tokenizer and a randomly initialised two-layer Llama for this
language (bpo.tasks.wordlm); `sft_policy` fine-tunes it on the demonstrations and caches the result.
The task's data is generated deterministically with `random.Random(DATA_SEED)`; it takes no seed, so
runs with any seed are scored on the same held-out prompts, none of which the SFT policy was trained on.
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
from bpo.tasks.wordlm import SPECIAL_TOKENS, TinyPolicyConfig  # noqa: F401  (re-exported: this task's policy)

# ---------------------------------------------------------------------------------------------
# The language
# ---------------------------------------------------------------------------------------------

ITEMS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "food": ("pizza", "pasta", "burger", "soup", "salad", "sushi", "cake", "coffee", "bread", "tacos"),
    "tech": ("phone", "laptop", "camera", "headphones", "tablet", "keyboard", "speaker", "monitor", "watch", "printer"),
    "place": ("hotel", "museum", "park", "beach", "cafe", "library", "gym", "cinema", "zoo", "market"),
    "media": ("movie", "book", "album", "game", "documentary", "podcast", "novel", "concert", "musical", "series"),
}
# Aspects a review of an item of that category can talk about (the judge rewards fitting ones).
ASPECTS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "food": ("taste", "portion", "price", "service"),
    "tech": ("battery", "screen", "price", "design"),
    "place": ("staff", "view", "location", "price"),
    "media": ("story", "ending", "music", "pacing"),
}
CATEGORY_OF: dict[str, str] = {item: cat for cat, items in ITEMS_BY_CATEGORY.items() for item in items}
ITEMS: tuple[str, ...] = tuple(CATEGORY_OF)

# Sentiment words and the judge's weight for each. Weights are all different so that two reviews
# using different words rarely tie. Mild praise is what the references use; strong praise beats it.
MILD_POSITIVE: dict[str, float] = {
    "good": 1.0,
    "nice": 0.9,
    "pleasant": 0.95,
    "solid": 0.85,
    "decent": 0.8,
    "enjoyable": 1.05,
}
STRONG_POSITIVE: dict[str, float] = {
    "great": 1.2,
    "lovely": 1.1,
    "excellent": 1.4,
    "amazing": 1.3,
    "superb": 1.5,
    "wonderful": 1.25,
    "perfect": 1.35,
    "fantastic": 1.45,
    "brilliant": 1.55,
}
NEUTRAL: dict[str, float] = {
    "okay": 0.12,
    "fine": 0.16,
    "average": 0.04,
    "ordinary": -0.06,
    "standard": 0.07,
    "alright": 0.1,
}
NEGATIVE: dict[str, float] = {
    "bad": -1.0,
    "poor": -1.1,
    "awful": -1.4,
    "terrible": -1.5,
    "boring": -1.2,
    "bland": -1.05,
    "dull": -1.15,
    "disappointing": -1.3,
    "mediocre": -0.8,
    "weak": -0.9,
}
SENTIMENT: dict[str, float] = {**MILD_POSITIVE, **STRONG_POSITIVE, **NEUTRAL, **NEGATIVE}
INTENSIFIERS: tuple[str, ...] = ("very", "really", "quite", "truly")

# Review templates. Slots: {item}, {s} aspect, {a} and {b} sentiment words, {x} intensifier.
TEMPLATES: tuple[str, ...] = (
    "the {item} was {a} .",
    "the {item} was {x} {a} .",
    "the {item} was {a} and the {s} was {b} .",
    "i think the {item} is {a} .",
    "the {s} of the {item} is {a} .",
    "we tried the {item} and it was {x} {a} .",
    "a {a} {item} , the {s} is {b} .",
    "overall the {item} is {a} but the {s} is {b} .",
)

PROMPT_TEMPLATES: tuple[str, ...] = (
    "review the {item} recommended by {name} :",
    "write a review of the {item} recommended by {name} :",
    "what did you think of the {item} recommended by {name} ?",
    "give your opinion on the {item} recommended by {name} :",
)
NAMES: tuple[str, ...] = (
    "anna",
    "ben",
    "carla",
    "dev",
    "emma",
    "finn",
    "gina",
    "hugo",
    "ines",
    "jack",
    "kira",
    "leo",
    "maya",
    "noah",
    "omar",
    "priya",
)

# Words that carry no content: repeating them is free (every sentence needs several "the").
FUNCTION_WORDS: frozenset[str] = frozenset(
    {"the", "a", "was", "is", "and", "but", "it", "i", "we", "of", "think", "tried", "overall"}
)
PUNCTUATION: frozenset[str] = frozenset({".", ",", ":", "?"})


def _template_words() -> set[str]:
    words: set[str] = set()
    for text in TEMPLATES + PROMPT_TEMPLATES:
        words |= {w for w in re.sub(r"\{\w+\}", " ", text).split()}
    return words


# Every word the tokenizer knows; anything else is <unk> to the policy and "unknown" to the judge.
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        _template_words()
        | set(ITEMS)
        | {a for aspects in ASPECTS_BY_CATEGORY.values() for a in aspects}
        | set(SENTIMENT)
        | set(INTENSIFIERS)
        | set(NAMES)
        | PUNCTUATION
    )
)
KNOWN_WORDS: frozenset[str] = frozenset(VOCABULARY)

# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------

ITEM_BONUS = 1.0  # the review mentions the prompt's item
ASPECT_BONUS = 0.25  # per distinct aspect word that fits the item's category
OFF_TOPIC_PENALTY = 0.5  # per distinct other item mentioned
REPEAT_PENALTY = 0.5  # per repeated occurrence of a non-function word
LENGTH_PENALTY = 0.5  # per word below MIN_WORDS or above MAX_WORDS
MIN_WORDS, MAX_WORDS = 4, 12
NO_PERIOD_PENALTY = 1.0  # the review does not end with "."
UNKNOWN_PENALTY = 1.0  # per word outside the vocabulary (including special-token strings)


def split_words(text: str) -> list[str]:
    """Tokens as the word-level tokenizer sees them: runs of word characters, or of punctuation.

    A special-token string such as "<unk>" counts as one token, as it does for the tokenizer.
    """
    return re.findall(r"<\w+>|\w+|[^\w\s]+", text.lower())


def prompt_item(prompt: str) -> str | None:
    """The item a prompt asks about (the first item word in it), or None for a foreign prompt."""
    return next((w for w in split_words(prompt) if w in CATEGORY_OF), None)


def score_terms(prompt: str, response: str) -> dict[str, float]:
    """The judge's score of `response` to `prompt`, term by term (the score is their sum).

    sentiment  sum of SENTIMENT[w] over the distinct sentiment words w in the response
    item       +ITEM_BONUS if the prompt's item is mentioned
    aspects    +ASPECT_BONUS per distinct aspect word of the item's category
    off_topic  -OFF_TOPIC_PENALTY per distinct other item mentioned
    repeats    -REPEAT_PENALTY per extra occurrence of a non-function, non-punctuation word
    length     -LENGTH_PENALTY per word (punctuation excluded) below MIN_WORDS or above MAX_WORDS
    period     -NO_PERIOD_PENALTY unless the last token is "."
    unknown    -UNKNOWN_PENALTY per token outside VOCABULARY
    """
    tokens = split_words(response)
    words = [t for t in tokens if t not in PUNCTUATION]
    item = prompt_item(prompt)
    fitting_aspects = set(ASPECTS_BY_CATEGORY[CATEGORY_OF[item]]) if item else set()
    content = [w for w in words if w not in FUNCTION_WORDS]
    distinct = set(words)
    return {
        "sentiment": sum(SENTIMENT[w] for w in distinct if w in SENTIMENT),
        "item": ITEM_BONUS if item in distinct else 0.0,
        "aspects": ASPECT_BONUS * len(distinct & fitting_aspects),
        "off_topic": -OFF_TOPIC_PENALTY * len({w for w in distinct if w in CATEGORY_OF and w != item}),
        "repeats": -REPEAT_PENALTY * (len(content) - len(set(content))),
        "length": -LENGTH_PENALTY * (max(0, MIN_WORDS - len(words)) + max(0, len(words) - MAX_WORDS)),
        "period": 0.0 if tokens and tokens[-1] == "." else -NO_PERIOD_PENALTY,
        "unknown": -UNKNOWN_PENALTY * sum(t not in KNOWN_WORDS for t in tokens),
    }


def score(prompt: str, response: str) -> float:
    """The judge's score; rounded so that equal sums in a different order compare equal."""
    return round(sum(score_terms(prompt, response).values()), 6)


judge = pointwise_judge(score)  # the task's Judge


# ---------------------------------------------------------------------------------------------
# Prompts, references and demonstrations
# ---------------------------------------------------------------------------------------------

N_TRAIN, N_EVAL = 512, 128
N_DEV = 128  # dev prompts (Task.dev): drawn after the others, with references from a stream of their own
# The seed of the task's data (split, references, demonstrations), fixed so that it does not depend on
# the run seed: the cached SFT policy is trained on these demonstrations, and no run may be evaluated on
# their prompts. Changing it (or anything that build_task draws) changes the data: bump TASK_VERSION.
DATA_SEED = 0
DEV_SEED = 1  # the dev split's references
# Many demonstrations per prompt: the tiny policy overfits 2k demonstrations but generalises from 8k.
DEMOS_PER_PROMPT = 16
# The crowd that wrote the SFT demonstrations: (kind, probability). Only positive ones, and rarely
# off-topic ones, can beat a reference, so imitating the crowd wins ~20-25% against the references,
# while the best of 4 imitations wins over half the time.
DEMO_MIX: tuple[tuple[str, float], ...] = (
    ("positive", 0.4),
    ("neutral", 0.2),
    ("negative", 0.2),
    ("off_topic", 0.2),
)


def _zipf(rng: random.Random, words: Sequence[str]) -> str:
    """A word with probability proportional to 1/rank: formulaic crowds reuse their first words."""
    return rng.choices(list(words), weights=[1.0 / (k + 1) for k in range(len(words))])[0]


def _fill(rng: random.Random, item: str, a: str, b: str) -> str:
    template = rng.choice(TEMPLATES)
    aspect = rng.choice(ASPECTS_BY_CATEGORY[CATEGORY_OF[item]])
    return template.format(item=item, a=a, b=b, s=aspect, x=rng.choice(INTENSIFIERS))


def reference_review(rng: random.Random, item: str) -> str:
    """A human reference: mild praise of the right item (decent, but beatable by strong praise)."""
    mild = list(MILD_POSITIVE)
    a, b = rng.sample(mild, 2)
    return _fill(rng, item, a, b)


def demonstration(rng: random.Random, item: str, kind: str) -> str:
    """One crowd review of `item` of the given kind (positive, neutral, negative or off_topic)."""
    if kind == "positive":  # enthusiastic reviewers vary their praise
        words = list(MILD_POSITIVE) + list(STRONG_POSITIVE)
        a, b = rng.sample(words, 2)
        return _fill(rng, item, a, b)
    if kind == "neutral":
        return _fill(rng, item, _zipf(rng, list(NEUTRAL)), _zipf(rng, list(NEUTRAL)))
    if kind == "negative":
        return _fill(rng, item, _zipf(rng, list(NEGATIVE)), _zipf(rng, list(NEUTRAL) + list(NEGATIVE)))
    if kind == "off_topic":  # a review of some other item, of any sentiment
        other = rng.choice([i for i in ITEMS if i != item])
        return demonstration(rng, other, rng.choice(["positive", "neutral", "negative"]))
    raise ValueError(f"unknown demonstration kind {kind!r}")


def all_prompts() -> list[str]:
    return [t.format(item=item, name=name) for t in PROMPT_TEMPLATES for item in ITEMS for name in NAMES]


def build_task() -> Task:
    """The reviews task: N_TRAIN train and N_EVAL eval prompts with references, and SFT demos.

    The same for every run: the eval prompts are never among the train and demonstration prompts
    (the latter are the train prompts, DEMOS_PER_PROMPT demonstrations each).
    """
    rng = random.Random(DATA_SEED)
    prompts = all_prompts()
    rng.shuffle(prompts)
    eval_prompts, train_prompts = prompts[:N_EVAL], prompts[N_EVAL : N_EVAL + N_TRAIN]

    def with_reference(prompt: str) -> Example:
        return Example(prompt, reference_review(rng, prompt_item(prompt)))

    eval_examples = [with_reference(p) for p in eval_prompts]
    train_examples = [with_reference(p) for p in train_prompts]
    kinds, probs = zip(*DEMO_MIX)
    demos = [
        Example(p, demonstration(rng, prompt_item(p), rng.choices(kinds, weights=probs)[0]))
        for p in train_prompts
        for _ in range(DEMOS_PER_PROMPT)
    ]
    # The dev prompts come after the others in the shuffled order and draw their references from a stream
    # of their own, so adding them left the train, eval and demonstration data (and the SFT policy) unchanged.
    dev_rng = random.Random(DEV_SEED)
    dev_prompts = prompts[N_EVAL + N_TRAIN : N_EVAL + N_TRAIN + N_DEV]
    dev = [Example(p, reference_review(dev_rng, prompt_item(p))) for p in dev_prompts]
    return Task(
        name="reviews",
        train=train_examples,
        eval=eval_examples,
        demonstrations=demos,
        judge=judge,
        chat_template=False,
        dev=dev,
    )


# ---------------------------------------------------------------------------------------------
# The tiny policy
# ---------------------------------------------------------------------------------------------


def build_tokenizer():
    """A word-level fast tokenizer over VOCABULARY (bpo.tasks.wordlm)."""
    return wordlm.build_tokenizer(VOCABULARY)


def build_tiny_policy(out_dir: Path, seed: int = 0, config: TinyPolicyConfig = TinyPolicyConfig()) -> Path:
    """Save a word-level tokenizer and a randomly initialised tiny Llama (fp32) to out_dir."""
    return wordlm.build_tiny_policy(out_dir, VOCABULARY, seed, config)


# ---------------------------------------------------------------------------------------------
# The cached SFT policy
# ---------------------------------------------------------------------------------------------

SFT_STEPS = 1500
SFT_BATCH_SIZE = 32
SFT_LR = 1e-2  # at 3e-3 some seeds learn to copy the prompt's item only late, or not at all
# Bump when the language, the demonstrations or the policy change, so old caches are not reused.
TASK_VERSION = 1


def sft_policy(
    cache_dir: Path,
    seed: int = 0,
    steps: int = SFT_STEPS,
    progress: bool = True,
    batch_size: int = SFT_BATCH_SIZE,
    lr: float = SFT_LR,
) -> Path:
    """The tiny policy fine-tuned on the task's demonstrations, cached under cache_dir; its folder.

    `seed` seeds the policy's initialisation and the SFT batches; the demonstrations are always those
    of `build_task()`. The folder is built once, atomically (bpo.common.cachefolder.cached_folder).
    """
    settings = {
        "task": "reviews",
        "version": TASK_VERSION,
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "policy": asdict(TinyPolicyConfig()),
    }
    if seed != DATA_SEED:
        # Caches made before the data stopped following the seed were trained on the data of `seed`;
        # for seed == DATA_SEED that is today's data, so only the other seeds need a new name.
        settings["data_seed"] = DATA_SEED
    recipe = wordlm.SFTRecipe(steps, batch_size, lr)
    return wordlm.sft_policy(cache_dir, "reviews", settings, VOCABULARY, build_task, recipe, seed, progress)
