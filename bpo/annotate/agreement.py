"""How raters agree, and how several raters' labels of one pair become one outcome. Pure functions.

A label is one of CHOICES, in the pair's own orientation ("first"/"second" response as sampled, not
the left/right the page showed), so raters who saw a pair in opposite orders are compared fairly.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import permutations
from typing import Sequence

CHOICES = ("first", "second", "tie", "both_bad")
DECIDED = ("first", "second")
SPLIT = "split"  # the combined outcome when no choice has a strict majority


def combine(choices: Sequence[str]) -> str:
    """The pair's outcome: the choice made by strictly more raters than any other choice, else SPLIT.

    One rater: their choice. Two raters who disagree: SPLIT. Three raters, 2 x first + 1 x tie: first.
    Only "first" and "second" make a training pair; tie, both_bad and SPLIT are undecided.
    """
    if not choices:
        raise ValueError("combine: no labels")
    (top, n), *rest = Counter(choices).most_common()
    return top if not rest or rest[0][1] < n else SPLIT


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels of the same items: (p_o - p_e) / (1 - p_e), p_o the share
    of items they agree on, p_e = sum_k p_a(k) p_b(k) the agreement expected from their own label
    frequencies. NaN when undefined (no items, or p_e = 1: both always gave the same one label)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} vs {len(b)} labels")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    p_e = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    return math.nan if p_e == 1 else (p_o - p_e) / (1 - p_e)


def krippendorff_alpha(units: Sequence[Sequence[str]]) -> float:
    """Krippendorff's alpha for nominal labels, any number of raters, missing labels allowed.

    `units`: the labels each item got (any number; items with fewer than two are not pairable and are
    left out). With the coincidence matrix o_ck = sum_u (ordered pairs of labels (c, k) within u) / (m_u - 1)
    and n_c = sum_k o_ck, n = sum_c n_c:  alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k.
    1 is perfect agreement, 0 agreement at chance; NaN when undefined (nothing pairable, or one label only).
    """
    o: Counter = Counter()
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        for c, k in permutations(labels, 2):
            o[c, k] += 1 / (m - 1)
    n_c: Counter = Counter()
    for (c, _), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    observed = sum(v for (c, k), v in o.items() if c != k)
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k)
    if n == 0 or expected == 0:
        return math.nan
    return 1 - (n - 1) * observed / expected
