"""Judges that count their calls (importable as countjudge:annotate and countjudge:evaluate with tests/ on
the path): a score per text from its hash, so two different responses never tie."""

from __future__ import annotations

import hashlib
from collections import Counter

CALLS: Counter = Counter()
TEXTS: Counter = Counter()


def _scores(name: str, responses) -> list[float]:
    CALLS[name] += 1
    TEXTS[name] += len(responses)
    return [int.from_bytes(hashlib.sha256(r.encode()).digest()[:4], "big") / 2**32 for r in responses]


def annotate(prompts, responses):
    return _scores("annotate", responses)


def evaluate(prompts, responses):
    return _scores("evaluate", responses)


def reset() -> None:
    CALLS.clear()
    TEXTS.clear()
