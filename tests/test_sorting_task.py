"""The built-in `sorting` task: its exact judge on hand-worked cases, its data, and its SFT policy.

The judge, with target = sorted(prompt numbers), r = the response's numbers and L = LCS(r, target):
    score = L - (len(r) - L) - [no final "."] - (words that are not numbers)
"""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from bpo.tasks import sorting


@pytest.mark.parametrize(
    "response, expected",
    [
        ("1 2 3 .", 3),  # correct: n
        ("2 1 3 .", 1),  # neighbours swapped: L = 2, one number out of place: 2 - 1
        ("1 3 .", 2),  # one number left out: L = 2, nothing extra
        ("3 1 2 .", 1),  # copied as given: L = 2 ("1 2"), "3" extra
        ("3 2 1 .", -1),  # descending: L = 1, two extra
        ("1 2 3", 2),  # no full stop: 3 - 1
        ("1 2 sort 3 .", 2),  # a word that is not a number: 3 - 1
        ("1 1 2 3 .", 2),  # a repeated number: L = 3, one extra
        ("", -1),  # nothing: L = 0, no full stop
        ("1 2 3 . .", 2),  # only the last "." ends it; the other is a word that is not a number
    ],
)
def test_score_by_hand(response, expected):
    assert sorting.score("sort : 3 1 2", response) == expected


def test_lcs_length():
    assert sorting.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example (BCBA)
    assert sorting.lcs_length([], [1, 2]) == 0
    assert sorting.lcs_length([5, 1, 2], [1, 2, 5]) == 2


def test_references_and_demonstrations():
    """References: correct or one slip (n, n - 1 or n - 2), a slip in about REFERENCE_SLIP of them; the
    demonstrations follow DEMO_MIX; the data are the same on every build."""
    task = sorting.build_task()
    assert (len(task.train), len(task.eval), len(task.demonstrations)) == (sorting.N_TRAIN, sorting.N_EVAL, sorting.N_DEMONSTRATIONS)
    gaps = [len(sorting.prompt_numbers(e.prompt)) - sorting.score(e.prompt, e.reference) for e in task.eval + task.train]
    assert set(gaps) <= {0, 1, 2}
    assert statistics.mean(g > 0 for g in gaps) == pytest.approx(sorting.REFERENCE_SLIP, abs=0.05)

    def kind(e):
        xs = sorting.prompt_numbers(e.prompt)
        answer = [int(w) for w in e.reference.split()[:-1]]
        return {tuple(sorted(xs)): "sorted", tuple(xs): "as_given", tuple(sorted(xs, reverse=True)): "descending"}.get(tuple(answer), "slip")

    counts = Counter(kind(e) for e in task.demonstrations)
    for name, p in sorting.DEMO_MIX:
        assert counts[name] / len(task.demonstrations) == pytest.approx(p, abs=0.03)
    assert sorting.build_task() == task


def test_vocabulary_covers_the_task():
    known = set(sorting.VOCABULARY)
    task = sorting.build_task()
    assert all(set(sorting.split_words(e.prompt + " " + e.reference)) <= known for e in task.eval + task.demonstrations[:500])
