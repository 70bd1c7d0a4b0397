"""bpo.common.seeds.derive_seed gives every stream the integers its formula always gave (worked out by hand)."""

from __future__ import annotations

import pytest

from bpo.common.seeds import (
    ADAPTER_INIT,
    BATCH_ORDER,
    PAIR_ANNOTATION,
    PAIR_SAMPLING,
    PROCESS_STREAM,
    PROMPT_ORDER,
    derive_seed,
)


def test_each_stream_by_hand():
    assert derive_seed(3, 2, weights=PROMPT_ORDER) == 300_011  # 3 * 100003 + 2
    assert derive_seed(3, 2, 5, weights=PAIR_SAMPLING) == 3_002_032  # 3 * 1000003 + 2 * 1009 + 5 = 3000009 + 2018 + 5
    assert (
        derive_seed(3, 2, 5, 64, weights=PAIR_ANNOTATION) == 3_002_596
    )  # 3000009 + 2018 + 5 * 101 + 64 = 3002027 + 505 + 64
    assert derive_seed(3, 2, weights=BATCH_ORDER) == 23_759  # 3 * 7919 + 2
    assert derive_seed(3, 4, weights=ADAPTER_INIT) == 7  # 3 + 4
    assert derive_seed(3, 1, weights=PROCESS_STREAM) == 4_294_967_299  # 3 + 2**32 = 3 + 4294967296
    assert derive_seed(0, 0, 0, weights=PAIR_SAMPLING) == 0


def test_exactly_the_old_expressions():
    """The expressions the sites wrote by hand before, over a range of inputs (big seeds too: no wrapping)."""
    for seed in (0, 1, 7, 12345, 2**32 - 1):
        for phase in (0, 1, 3, 63):
            for r in (0, 1, 5):
                assert derive_seed(seed, r, weights=PROMPT_ORDER) == seed * 100_003 + r
                assert derive_seed(seed, phase, r, weights=PAIR_SAMPLING) == seed * 1_000_003 + phase * 1009 + r
                assert (
                    derive_seed(seed, phase, r, 32, weights=PAIR_ANNOTATION)
                    == seed * 1_000_003 + phase * 1009 + r * 101 + 32
                )
                assert derive_seed(seed, phase, weights=BATCH_ORDER) == seed * 7919 + phase
                assert derive_seed(seed, r, weights=ADAPTER_INIT) == seed + r
                assert derive_seed(seed, r, weights=PROCESS_STREAM) == seed + r * 2**32
    assert type(derive_seed(2, 1, weights=PROCESS_STREAM)) is int


def test_inputs_and_weights_must_match():
    with pytest.raises(ValueError, match="weights"):
        derive_seed(1, 2, 3, weights=BATCH_ORDER)
    with pytest.raises(ValueError, match="weights"):
        derive_seed(1, weights=BATCH_ORDER)
