"""The built-in `sorting` task: its exact judge on hand-worked cases, its data, and its SFT policy.

The judge, with target = sorted(prompt numbers), r = the response's numbers and L = LCS(r, target):
    score = L - (len(r) - L) - [no final "."] - (words that are not numbers)
"""

from __future__ import annotations

import json
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
    assert (len(task.train), len(task.eval), len(task.demonstrations)) == (
        sorting.N_TRAIN,
        sorting.N_EVAL,
        sorting.N_DEMONSTRATIONS,
    )
    gaps = [
        len(sorting.prompt_numbers(e.prompt)) - sorting.score(e.prompt, e.reference) for e in task.eval + task.train
    ]
    assert set(gaps) <= {0, 1, 2}
    assert statistics.mean(g > 0 for g in gaps) == pytest.approx(sorting.REFERENCE_SLIP, abs=0.05)

    def kind(e):
        xs = sorting.prompt_numbers(e.prompt)
        answer = [int(w) for w in e.reference.split()[:-1]]
        return {tuple(sorted(xs)): "sorted", tuple(xs): "as_given", tuple(sorted(xs, reverse=True)): "descending"}.get(
            tuple(answer), "slip"
        )

    counts = Counter(kind(e) for e in task.demonstrations)
    for name, p in sorting.DEMO_MIX:
        assert counts[name] / len(task.demonstrations) == pytest.approx(p, abs=0.03)
    assert sorting.build_task() == task


def test_vocabulary_covers_the_task():
    known = set(sorting.VOCABULARY)
    task = sorting.build_task()
    assert all(
        set(sorting.split_words(e.prompt + " " + e.reference)) <= known for e in task.eval + task.demonstrations[:500]
    )


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory):
    return sorting.sft_policy(tmp_path_factory.mktemp("cache"), progress=False)


def test_sft_policy_is_below_the_references_with_room_to_improve(sft_dir):
    """Sampled at temperature 1 (the default evaluation), the SFT policy mixes the crowd's modes: it beats
    the references far less often than a correct sorter would (REFERENCE_SLIP), and well below the
    references' mean score, while the best of 4 of its samples wins clearly more often: there is something
    for preference learning to find. (Greedy decoding picks the crowd's plurality, the correct sort, so
    greedy answers already beat most references: on this task greedy win rates say little.)"""
    from test_reviews_task import generate
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(sft_dir).eval()
    tok = AutoTokenizer.from_pretrained(sft_dir)
    task = sorting.build_task()
    prompts = [e.prompt for e in task.eval]
    refs = sorting.judge(prompts, [e.reference for e in task.eval])
    n = 4
    sampled = sorting.judge([p for p in prompts for _ in range(n)], generate(model, tok, prompts, sample=True, n=n))
    per_prompt = [sampled[i * n : (i + 1) * n] for i in range(len(prompts))]
    strict = statistics.mean(s > r for group, r in zip(per_prompt, refs) for s in group)
    best_of_n = statistics.mean(max(group) > r for group, r in zip(per_prompt, refs))
    print(
        f"\nreference mean {statistics.mean(refs):.2f}; sampled mean {statistics.mean(sampled):.2f}, strict win "
        f"{strict:.3f}; "
        f"best-of-{n} strict win {best_of_n:.3f}"
    )
    assert statistics.mean(sampled) < statistics.mean(refs) - 1.0
    assert strict < 0.4
    assert best_of_n > strict + 0.15


def test_bpo_learns_to_sort(sft_dir, tmp_path):
    """`bpo train task=sorting optim.lr=3e-3` (BPO, T = 64, B = 16, beta 0.5; about 25 s on 2 cores): the strict
    win rate rises well above the SFT policy's (measured at 3e-3, the default until 2026-12-04: seeds 0, 1, 2
    give 0.445, 0.469, 0.430 against 0.289, 0.219, 0.258) and above the SFT's value by more than its
    interval's lower half. At the default 1e-3 sorting learns more slowly: 0.234 after 64 steps in the fresh
    clone of 2026-12-04, less than 0.1 above the SFT policy's (docs/defaults-study.md)."""
    from bpo.cli import main

    out = tmp_path / "run"
    args = ["train", "task=sorting", f"policy.path={sft_dir}", f"out={out}", "optim.lr=3e-3", "eval.kl=false"]
    assert main([*args, "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    after, before = result["strict_win_rate"], result["before"]["strict_win_rate"]
    print(
        f"\nsorting, BPO: strict win rate {after:.3f} [{result['strict_ci_low']:.3f}, "
        f"{result['strict_ci_high']:.3f}], SFT {before:.3f}"
    )
    assert after > before + 0.1
    assert result["strict_ci_low"] > before
