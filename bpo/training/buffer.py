"""A phase's labelled pairs as training batches: a seeded order, B pairs a step, each pair once.

N = T * B, so a phase's M = N / F pairs fill exactly its K = T / F steps. The order depends only on
(run seed, phase), never on whether the run was resumed, so a resumed run trains on the same batches.
"""

from __future__ import annotations

import random
from typing import Sequence

from bpo.common.seeds import BATCH_ORDER, derive_seed
from bpo.data.records import Pair


def phase_batches(pairs: Sequence[Pair], batch_size: int, seed: int, phase: int) -> list[list[Pair]]:
    """The phase's pairs shuffled with (seed, phase) and cut into batches of `batch_size`."""
    if len(pairs) % batch_size:
        raise ValueError(f"phase {phase} has {len(pairs)} pairs, not a multiple of the batch size {batch_size}")
    order = list(pairs)
    random.Random(derive_seed(seed, phase, weights=BATCH_ORDER)).shuffle(order)  # batches mix prompts
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
