"""Annotators: given two responses to each prompt, say which one is preferred.

All annotators are built on a judge (bpo.annotators.judges) and share one interface, `label`:
    score      the higher judge score is chosen; equal scores are a tie (reward model, rule, user function)
    simulated  a noisy rater: P(first preferred) = sigmoid((s_first - s_second) / temperature)
               (Bradley-Terry on the judge's scores); |s_first - s_second| <= tie_band is a tie
Ties are returned as `preferred=None`; the loop drops and counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from bpo.tasks.base import Judge


@dataclass(frozen=True)
class Label:
    preferred: int | None  # 0: the first response, 1: the second, None: a tie
    scores: tuple[float, float]  # the judge's scores of the two responses


class Annotator(Protocol):
    def label(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str], seed: int) -> list[Label]: ...


@dataclass
class ScoreAnnotator:
    judge: Judge

    def _scores(self, prompts, first, second) -> list[tuple[float, float]]:
        scores = self.judge(list(prompts) * 2, list(first) + list(second))
        n = len(prompts)
        return [(float(scores[i]), float(scores[n + i])) for i in range(n)]

    def label(self, prompts, first, second, seed=0):
        return [Label(None if a == b else int(b > a), (a, b)) for a, b in self._scores(prompts, first, second)]


@dataclass
class SimulatedAnnotator(ScoreAnnotator):
    temperature: float = 1.0
    tie_band: float = 0.0

    def label(self, prompts, first, second, seed=0):
        rng = np.random.default_rng(seed)  # seeded per call, so a resumed run asks the same "rater"
        labels = []
        for a, b in self._scores(prompts, first, second):
            u = rng.random()
            if abs(a - b) <= self.tie_band:
                labels.append(Label(None, (a, b)))
            else:
                p_first = 1.0 / (1.0 + math.exp(-(a - b) / self.temperature))
                labels.append(Label(0 if u < p_first else 1, (a, b)))
        return labels
