"""Win rates, ties and bootstrap intervals on hand-made score lists; how they are shown to the user.

The two win rates count a tie differently: `win_rate` as half a win, `strict_win_rate` (the BPO paper's)
as no win. Every expected number below is worked out by hand in the test's docstring.
"""

import json
import math
from dataclasses import asdict

import numpy as np
import pytest

from bpo.evaluation.evaluate import (
    EvalResult,
    bootstrap_interval,
    strict_win_outcomes,
    tie_outcomes,
    win_outcomes,
    win_rates,
)

# Five prompts: a win (3 > 1), a loss (1 < 3), and three ties (2 = 2, 0.5 = 0.5, 1 = 1.0 as int vs float).
SCORES = [3, 1, 2, 0.5, 1]
REFERENCE = [1, 3, 2, 0.5, 1.0]


def test_outcomes_by_hand():
    """Per prompt: win, loss, tie, tie, tie.

    win_outcomes (tie = 1/2):   [1, 0, 0.5, 0.5, 0.5]
    strict_win_outcomes (tie = 0): [1, 0, 0, 0, 0]
    tie_outcomes:               [0, 0, 1, 1, 1]
    """
    assert win_outcomes(SCORES, REFERENCE).tolist() == [1.0, 0.0, 0.5, 0.5, 0.5]
    assert strict_win_outcomes(SCORES, REFERENCE).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert tie_outcomes(SCORES, REFERENCE).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_outcomes_are_not_symmetric_in_the_two_scores():
    """Swapping response and reference turns the win into a loss and vice versa; ties stay ties:
    win_outcomes -> [0, 1, 0.5, 0.5, 0.5], strict -> [0, 1, 0, 0, 0]."""
    assert win_outcomes(REFERENCE, SCORES).tolist() == [0.0, 1.0, 0.5, 0.5, 0.5]
    assert strict_win_outcomes(REFERENCE, SCORES).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_win_rates_by_hand():
    """Means over the 5 prompts: win_rate = (1 + 0 + 3 * 0.5) / 5 = 2.5 / 5 = 0.5;
    strict_win_rate = 1 / 5 = 0.2; tie_rate = 3 / 5 = 0.6; and 0.5 = 0.2 + 0.6 / 2."""
    r = win_rates(SCORES, REFERENCE)
    assert (r.win_rate, r.strict_win_rate, r.tie_rate, r.n) == (0.5, 0.2, 0.6, 5)
    assert r.win_rate == pytest.approx(r.strict_win_rate + r.tie_rate / 2)


def test_all_ties():
    """Four ties: win_rate = 4 * 0.5 / 4 = 0.5 with interval (0.5, 0.5) (every resample of a constant
    vector has mean 0.5); strict_win_rate = 0 with interval (0, 0); tie_rate = 1."""
    r = win_rates([1, 2, 3, 4], [1, 2, 3, 4])
    assert (r.win_rate, r.ci_low, r.ci_high) == (0.5, 0.5, 0.5)
    assert (r.strict_win_rate, r.strict_ci_low, r.strict_ci_high) == (0.0, 0.0, 0.0)
    assert r.tie_rate == 1.0


def test_strict_interval_lies_below_the_tie_half_interval():
    """Both intervals come from the same resamples (same seed), and strict outcome <= half-tie outcome
    on every prompt, so every resample's strict mean <= its half-tie mean and so are the quantiles.
    With ties present, the strict rate is lower by exactly tie_rate / 2."""
    rng = np.random.default_rng(1)
    scores, reference = rng.integers(0, 3, 200), rng.integers(0, 3, 200)  # about 1/3 ties
    r = win_rates(scores, reference, seed=3)
    assert r.strict_ci_low <= r.ci_low and r.strict_ci_high <= r.ci_high
    assert r.tie_rate > 0.2 and r.win_rate - r.strict_win_rate == pytest.approx(r.tie_rate / 2)
    assert r.strict_ci_low <= r.strict_win_rate <= r.strict_ci_high


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 scores but 2 reference scores"):
        win_outcomes([1, 2, 3], [1, 2])


def test_bootstrap_of_a_constant_is_the_constant():
    """Every resample of [c] * n has mean c, so both quantiles are c: 0.75 is exact in binary (a sum of
    copies of 0.75 is exact), 0.7 is within rounding of a 40-term mean."""
    assert bootstrap_interval([0.75] * 40) == (0.75, 0.75)
    low, high = bootstrap_interval([0.7] * 40)
    assert low == pytest.approx(0.7, abs=1e-12) and high == pytest.approx(0.7, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_of_half_ones_matches_the_normal_interval(seed):
    """1000 values, 500 ones: mean p = 0.5, standard error sqrt(p (1 - p) / n) = sqrt(0.25 / 1000) =
    0.0158114, so the 95% interval is about 0.5 -+ 1.96 * 0.0158114 = 0.5 -+ 0.0309903,
    i.e. (0.4690, 0.5310).

    Tolerance 0.005. Each resample draws 1000 values that are 1 with probability exactly 1/2, so a
    resample mean is Binomial(1000, 1/2) / 1000, whose 2.5% and 97.5% quantiles are 0.469 and 0.531
    (the normal approximation is good to about the 0.001 grid step of a mean of 1000 zeros and ones).
    The interval's ends are empirical quantiles of 2000 such means: their Monte-Carlo standard
    deviation is sqrt(0.025 * 0.975 / 2000) / f(q) = 0.00349 / 3.69 = 0.00095, where
    f(q) = phi(1.96) / 0.0158 = 3.69 is the density of the mean at the quantile. 0.005 is about five
    such standard deviations plus one grid step; an interval of the wrong width (say 1.96 * sqrt(0.25 / 500)
    = 0.0438, or a 90% interval at 1.645 * 0.0158 = 0.0260) misses it by more than that.
    """
    values = np.array([1.0] * 500 + [0.0] * 500)
    low, high = bootstrap_interval(values, seed=seed)
    half_width = 1.96 * math.sqrt(0.25 / 1000)
    assert low == pytest.approx(0.5 - half_width, abs=0.005)
    assert high == pytest.approx(0.5 + half_width, abs=0.005)


def test_bootstrap_of_nothing_is_nan():
    """No values: no mean, so no interval; (nan, nan) rather than an error. The rates are nan too, n = 0."""
    low, high = bootstrap_interval([])
    assert math.isnan(low) and math.isnan(high)
    r = win_rates([], [])
    assert r.n == 0 and all(math.isnan(x) for x in (r.win_rate, r.strict_win_rate, r.tie_rate, r.strict_ci_low))


def hand_made_result() -> dict:
    """eval.json of the five prompts above, as evaluate_policy builds it (intervals computed, not typed)."""
    return EvalResult(
        **asdict(win_rates(SCORES, REFERENCE)), mean_score=1.5, mean_reference_score=1.5, kl_to_sft=0.25, examples=[]
    ).to_json()


def test_eval_json_has_both_win_rates_and_the_tie_rate():
    result = hand_made_result()
    keys = {"win_rate", "ci_low", "ci_high", "strict_win_rate", "strict_ci_low", "strict_ci_high", "tie_rate", "n"}
    assert keys <= result.keys()
    assert (result["win_rate"], result["strict_win_rate"], result["tie_rate"]) == (0.5, 0.2, 0.6)
    json.dumps(result)  # plain JSON types


def test_summary_shows_the_strict_win_rate_and_ties():
    """0.5 = win rate, 0.2 = strict win rate, 0.6 = tie rate, each printed with three decimals."""
    from bpo.cli import summary

    result = hand_made_result()
    result["before"] = {**hand_made_result(), "win_rate": 0.1}
    text = summary(result, "runs/x")
    r = result
    assert (
        f"(ties 1/2): 0.500 [{r['ci_low']:.3f}, {r['ci_high']:.3f}]; strict 0.200 [{r['strict_ci_low']:.3f}, "
        f"{r['strict_ci_high']:.3f}]; ties 0.600 (n=5)" in text
    )
    assert "initial policy: 0.100 [" in text and text.endswith("run folder: runs/x")


def test_summary_of_an_older_eval_json_without_the_strict_keys():
    from bpo.cli import summary

    old = {"win_rate": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 4}
    assert summary(old, "r").splitlines()[0] == "win rate vs references (ties 1/2): 0.500 [0.250, 0.750] (n=4)"


def test_report_shows_the_strict_win_rate_and_ties(tmp_path):
    from bpo.run.report import write_report

    result = hand_made_result()
    result["before"] = hand_made_result()
    (tmp_path / "eval.json").write_text(json.dumps(result))
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "loss": 0.7, "reward_accuracy": 0.5}) + "\n")
    (tmp_path / "phases.jsonl").write_text(json.dumps({"pairs": 8}) + "\n")
    report = write_report(tmp_path).read_text()
    r = result
    line = (
        f"- after (aligned policy): 0.500 [{r['ci_low']:.3f}, {r['ci_high']:.3f}]; "
        f"strict 0.200 [{r['strict_ci_low']:.3f}, {r['strict_ci_high']:.3f}]; ties 0.600 (n = 5"
    )
    assert line in report and "- before (initial policy): 0.500" in report
    assert "ties count 0, as in the BPO paper" in report
