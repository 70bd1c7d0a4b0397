"""The preference buffer: labelled pairs tagged by phase, each taken for training exactly once."""

from __future__ import annotations

import random
from typing import Sequence

from bpo.types import Pair


class PreferenceBuffer:
    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self.cursor = 0  # pairs before the cursor have been trained on

    def add(self, pairs: Sequence[Pair], seed: int) -> None:
        """Append a phase's pairs in a seeded random order (batches mix prompts; resume sees the same order)."""
        order = list(pairs)
        random.Random(seed).shuffle(order)
        self.pairs.extend(order)

    def take(self, n: int) -> list[Pair]:
        if self.remaining < n:
            raise RuntimeError(f"buffer has {self.remaining} untrained pairs, a batch needs {n}")
        batch = self.pairs[self.cursor : self.cursor + n]
        self.cursor += n
        return batch

    @property
    def remaining(self) -> int:
        return len(self.pairs) - self.cursor
