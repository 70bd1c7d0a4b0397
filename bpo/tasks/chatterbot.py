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

`build_task(eval_size)` shuffles them with `random.Random(SPLIT_SEED)` and holds out the
first `eval_size` (64) as eval prompts; the other 854 are the train prompts and, with their human
answers, the SFT demonstrations. The task takes no seed: runs with any seed are scored on the same
held-out prompts against the same references (the run seed orders the train prompts when they are
drawn, in bpo.judging.pairs.PromptStream). Prompts go through the policy's chat template. The initial
policy is SmolLM2-135M-Instruct (`bpo.model.pretrained.smollm2_folder`).

The task's judge (`judge`, `score`, `score_terms`) is built on VADER (vaderSentiment), a rule-based
sentiment model: it likes positive, relevant, sane answers.

VADER (Hutto & Gilbert, 2014) scores English text with a hand-made lexicon of ~7,500 rated words
and emoticons plus rules for negation, intensifiers, "but", capitals and exclamation marks; its
`compound` score lies in [-1, 1]. It is deterministic, needs no download and scores thousands of
texts a second on a CPU, so it can stand in for a reward model on the chatterbot task.

`score(prompt, response)` is the sum of these terms (weights are the module constants):

    sentiment    +1.0  * VADER compound of the response, in [-1, 1]
    relevance    +0.5  * |C(prompt) & C(response)| / |C(prompt)|, in [0, 0.5] (0 when C(prompt) is empty)
    empty        -2.0  if the response has no words
    short        -0.25 per word below 2 (so only a one-word answer pays it, 0.25)
    long         -0.05 per word above 60
    repeats      -1.0  * (1 - distinct / all) over the response's word 3-grams
                 -0.5  * (1 - distinct / all) over its content words
    unprintable  -1.0  if it holds a character that is not printable (newlines and tabs are allowed)
    template     -1.0  per leftover chat-template token such as <|im_start|>, <|im_end|>, <|endoftext|>

Words are the runs of letters, digits and inner apostrophes of the lower-cased text ("don't" is one
word); content words C(text) are the distinct words that are not in STOPWORDS and are longer than one
character. The score is rounded to 6 decimals, so equal sums compare equal.

Calibration, on the 64 eval prompts of the chatterbot task: the human answers are short and mostly
neutral (quartiles -0.25, 0.0, 0.36; one-word trivia answers score -0.25), while SmolLM2-135M-
Instruct's greedy answers (48 new tokens) are chattier and usually friendlier but often apologise,
loop or stray off topic (quartiles -0.15, 0.33, 0.73). SmolLM2 wins 41 of the 64 comparisons
(win rate 0.64, no ties): better than the references on average, but far from always, so
preference optimisation against this judge has room to raise the win rate.

Known ways to game it, which a policy optimised against it may find:
* piling up distinct positive words ("wonderful, amazing, great, lovely ...") drives the compound
  towards 1 whatever the question; only exact repetition is penalised, so varying them is free;
* echoing the prompt's content words earns the relevance term without answering anything;
* exclamation marks, capitals and "very"/"so" intensify VADER's compound;
* being positive about a sad or hostile prompt is rewarded, and a correct but neutral factual answer
  ("Phalanges") scores 0 minus the one-word penalty;
* the length penalty starts only at 60 words, so padding with friendly filler up to there is free.
"""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path
from typing import Sequence

import yaml
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bpo.data.task import Example, Task
from bpo.judging.judges import pointwise_judge

PACKAGE = "chatterbot_corpus"
LANGUAGE = "english"
MAX_PROMPT_WORDS = 40
MAX_REFERENCE_WORDS = 60  # the judge penalises longer answers; a reference should not be one
EVAL_SIZE = 64
SPLIT_SEED = 0  # fixed: every run seed sees the same held-out prompts


# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------

SENTIMENT_WEIGHT = 1.0
RELEVANCE_WEIGHT = 0.5
EMPTY_PENALTY = 2.0
SHORT_PENALTY, MIN_WORDS = 0.25, 2  # per word below MIN_WORDS
LONG_PENALTY, MAX_WORDS = 0.05, 60  # per word above MAX_WORDS (no human reference is longer)
NGRAM_REPEAT_PENALTY, NGRAM = 1.0, 3  # times the repeated share of word 3-grams
WORD_REPEAT_PENALTY = 0.5  # times the repeated share of content words
UNPRINTABLE_PENALTY = 1.0
TEMPLATE_PENALTY = 1.0  # per leftover chat-template token

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
TEMPLATE_TOKEN_RE = re.compile(r"<\|[^<>|]{1,40}\|>")
# Function words that say nothing about the topic (matching them is not relevance, repeating
# them is not degeneration).
STOPWORDS: frozenset[str] = frozenset(
    """a about above after again all am an and any are as at be because been being but by can could
    did do does doing don't for from had has have having he her here hers him his how i i'm if in into
    is it it's its just me more most my no nor not of off on once only or other our ours out over own
    same she should so some such than that that's the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom why
    will with would you you're your yours yourself""".split()
)

# Built once: the analyzer loads its lexicon from disk when constructed.
_ANALYZER = SentimentIntensityAnalyzer()


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS and len(w) > 1}


def _repeated_share(items: Sequence[object]) -> float:
    """1 - distinct/all: 0 for no repeats, approaching 1 when one item fills the text."""
    return 1.0 - len(set(items)) / len(items) if items else 0.0


def score_terms(prompt: str, response: str) -> dict[str, float]:
    """The judge's score of `response` to `prompt`, term by term (the score is their sum)."""
    tokens = words(response)
    n = len(tokens)
    prompt_content = content_words(prompt)
    content = [w for w in tokens if w not in STOPWORDS and len(w) > 1]
    ngrams = [tuple(tokens[i : i + NGRAM]) for i in range(n - NGRAM + 1)]
    overlap = len(prompt_content & set(content)) / len(prompt_content) if prompt_content else 0.0
    unprintable = any(not (c.isprintable() or c in "\n\t") for c in response)
    return {
        "sentiment": SENTIMENT_WEIGHT * _ANALYZER.polarity_scores(response)["compound"],
        "relevance": RELEVANCE_WEIGHT * overlap,
        "empty": -EMPTY_PENALTY if n == 0 else 0.0,
        "short": -SHORT_PENALTY * (MIN_WORDS - n) if 0 < n < MIN_WORDS else 0.0,
        "long": -LONG_PENALTY * max(0, n - MAX_WORDS),
        "repeats": -NGRAM_REPEAT_PENALTY * _repeated_share(ngrams) - WORD_REPEAT_PENALTY * _repeated_share(content),
        "unprintable": -UNPRINTABLE_PENALTY if unprintable else 0.0,
        "template": -TEMPLATE_PENALTY * len(TEMPLATE_TOKEN_RE.findall(response)),
    }


def score(prompt: str, response: str) -> float:
    """The judge's score; rounded so that equal sums in a different order compare equal."""
    return round(sum(score_terms(prompt, response).values()), 6)


judge = pointwise_judge(score)  # the task's Judge


# ---------------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------------


class CorpusError(RuntimeError):
    """The corpus package is missing or unreadable; the message says how to fix it."""


def corpus_files(language: str = LANGUAGE) -> list[Path]:
    """The package's YAML files for `language`, sorted by name (the order examples are read in)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"the package {PACKAGE!r} is not installed: pip install 'bpo[demo]'")
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


def build_task(eval_size: int = EVAL_SIZE) -> Task:
    """The chatterbot task: `eval_size` held-out prompts (a fixed split), the rest for training and SFT.

    It takes no seed: the split, the order of the train prompts and the demonstrations are the same
    for every run (the ones run seed 0 got when the task still took a seed).
    """
    examples = load_examples()
    if not 0 < eval_size < len(examples):
        raise ValueError(f"eval_size must be in 1..{len(examples) - 1}, got {eval_size}")
    random.Random(SPLIT_SEED).shuffle(examples)
    eval_examples, train_examples = examples[:eval_size], examples[eval_size:]
    random.Random(SPLIT_SEED).shuffle(train_examples)  # a fixed order (runs reorder them with their seed)
    return Task(
        name="chatterbot",
        train=train_examples,
        eval=eval_examples,
        demonstrations=list(train_examples),
        judge=judge,
        chat_template=True,
    )
