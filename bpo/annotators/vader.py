"""A judge built on VADER (vaderSentiment), a rule-based sentiment model: positive, relevant, sane answers.

VADER (Hutto & Gilbert, 2014) scores English text with a hand-made lexicon of ~7,500 rated words
and emoticons plus rules for negation, intensifiers, "but", capitals and exclamation marks; its
`compound` score lies in [-1, 1]. It is deterministic, needs no download and scores thousands of
texts a second on a CPU, so it can stand in for a reward model on the chatterbot task.

`vader_score(prompt, response)` is the sum of these terms (weights are the module constants):

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

import re
from typing import Sequence

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bpo.tasks.base import pointwise_judge

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


def vader_score(prompt: str, response: str) -> float:
    return round(sum(score_terms(prompt, response).values()), 6)


vader_judge = pointwise_judge(vader_score)  # a Judge (bpo.tasks.base.Judge)
