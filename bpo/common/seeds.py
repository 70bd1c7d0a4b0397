"""The seeds of a run's random streams, derived from the run seed by one pure function.

Every random choice of a run is seeded by the run seed and the indices of the choice (phase, round, ...),
so a resumed run makes the same choices. Each stream combines them with its own integer weights:

    derive_seed(seed, *parts, weights=(w0, w1, ..., wk)) = seed * w0 + parts[0] * w1 + ... + parts[k-1] * wk

(Python integers: exact, never wrapped). The streams and their weights (the formulas they always had):

    PROMPT_ORDER     (seed, epoch)                     seed * 100003 + epoch              training prompts' order in a
    pass
    PAIR_SAMPLING    (seed, phase, draw)               seed * 1000003 + phase * 1009 + draw
                                                                     a phase's sampling round / sampler call
    PAIR_ANNOTATION  (seed, phase, round, first pair)  seed * 1000003 + phase * 1009 + round * 101 + first pair
                                                                     an annotator call on a chunk of a round's pairs
    BATCH_ORDER      (seed, phase)                     seed * 7919 + phase                a phase's pairs shuffled into
    batches
    ADAPTER_INIT     (seed, member)                    seed + member                      a LoRA member's initial
    factors
    PROCESS_STREAM   (seed, rank)                      seed + rank * 2**32                each process's own sampling
    stream

The weights differ from stream to stream and are kept as they are: changing one would change the
random numbers, and so the results, of every run.
"""

from __future__ import annotations

from typing import Sequence

PROMPT_ORDER = (100_003, 1)
PAIR_SAMPLING = (1_000_003, 1009, 1)
PAIR_ANNOTATION = (1_000_003, 1009, 101, 1)
BATCH_ORDER = (7919, 1)
ADAPTER_INIT = (1, 1)
PROCESS_STREAM = (1, 2**32)


def derive_seed(seed: int, *parts: int, weights: Sequence[int]) -> int:
    """seed * weights[0] + parts[0] * weights[1] + ...: the seed of one random stream (see the module)."""
    if len(weights) != len(parts) + 1:
        raise ValueError(
            f"derive_seed: {len(parts) + 1} inputs (the seed and {len(parts)} parts) but {len(weights)} weights"
        )
    return sum(value * weight for value, weight in zip((seed, *parts), weights))
