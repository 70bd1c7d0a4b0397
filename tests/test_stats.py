"""The statistics of `bpo reproduce` on small arrays whose answers are worked out by hand."""

import numpy as np
import pytest

from bpo.experiments.stats import (
    iqm,
    mean_std,
    paired_difference,
    paired_two_level,
    population_std,
    stratified_bootstrap,
    stratified_two_level,
    two_level_bootstrap,
    two_level_draws,
)


def test_iqm_by_hand():
    """[1..8]: floor(8/4) = 2 cut from each end, mean(3, 4, 5, 6) = 4.5. [1, 2, 3, 4, 100]: cut
    floor(1.25) = 1 each end, mean(2, 3, 4) = 3 (the outlier 100 is gone). Order does not matter."""
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    assert iqm([100, 1, 2, 3, 4]) == 3.0
    assert iqm([7.0]) == 7.0
    with pytest.raises(ValueError):
        iqm([])


def test_mean_std_uses_the_sample_standard_deviation():
    """[1, 2, 3]: mean 2, sum of squared deviations 2, over n - 1 = 2: variance 1, std 1."""
    assert mean_std([1, 2, 3]) == (2.0, 1.0)
    assert mean_std([5]) == (5.0, 0.0)


def test_stratified_bootstrap_resamples_within_strata():
    """Stratum A is all 0 and stratum B all 1 (4 values each): every stratified resample keeps 4 zeros
    and 4 ones, so the pooled mean is exactly 0.5 in every resample and the interval is [0.5, 0.5].
    Pooled (unstratified) resampling would draw 8 of the 8 values freely and give a wide interval."""
    point, low, high = stratified_bootstrap({"A": [0, 0, 0, 0], "B": [1, 1, 1, 1]})
    assert (point, low, high) == (0.5, 0.5, 0.5)


def test_stratified_bootstrap_interval_of_one_stratum_matches_the_normal_approximation():
    """One stratum of 400 values, half 0 and half 1: the mean's standard error is sqrt(0.25 / 400)
    = 0.025, so the 95% interval is about 0.5 -+ 1.96 * 0.025 = [0.451, 0.549]; a percentile
    bootstrap with 2000 resamples lands within 0.01 of that."""
    point, low, high = stratified_bootstrap({"only": [0, 1] * 200})
    assert point == 0.5
    assert low == pytest.approx(0.451, abs=0.01) and high == pytest.approx(0.549, abs=0.01)


def test_paired_difference_removes_shared_variation():
    """b is a plus 0.1 on every prompt of every seed, while the prompts themselves vary from 0 to 9.
    Every paired difference is -0.1, so the interval is exactly [-0.1, -0.1]; an unpaired comparison
    of the two means would have intervals of width ~2 that overlap almost entirely."""
    rng = np.random.default_rng(0)
    a = {seed: rng.uniform(0, 9, size=50) for seed in range(3)}
    b = {seed: a[seed] + 0.1 for seed in range(3)}
    point, low, high = paired_difference(a, b)
    assert point == pytest.approx(-0.1) and low == pytest.approx(-0.1) and high == pytest.approx(-0.1)
    unpaired_a = stratified_bootstrap(a)
    unpaired_b = stratified_bootstrap(b)
    assert unpaired_a[2] > unpaired_b[1]  # the unpaired intervals overlap: they cannot see the gap


def test_paired_difference_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="same keys"):
        paired_difference({0: [1.0]}, {1: [1.0]})
    with pytest.raises(ValueError, match="same units"):
        paired_difference({0: [1.0, 2.0]}, {0: [1.0]})


def test_two_level_bootstrap_of_seeds_that_disagree_by_hand():
    """Seed A's prompts are all 0, seed B's all 1 (2 x 2). Resampling prompts within a seed changes
    nothing, so a resample's mean is the mean of the 2 drawn seeds: AA -> 0 (probability 1/4), AB or BA
    -> 0.5 (1/2), BB -> 1 (1/4). The 2.5% and 97.5% quantiles are then 0 and 1: the interval is [0, 1]
    around the point 0.5, while the prompt-only (seeds fixed) bootstrap gives exactly [0.5, 0.5]."""
    values = {"A": [0, 0], "B": [1, 1]}
    draws = two_level_draws(values, resamples=4000)
    assert set(np.unique(draws)) == {0.0, 0.5, 1.0}
    assert np.mean(draws == 0.0) == pytest.approx(0.25, abs=0.03)
    assert np.mean(draws == 0.5) == pytest.approx(0.5, abs=0.03)
    assert two_level_bootstrap(values) == (0.5, 0.0, 1.0)
    assert stratified_bootstrap(values) == (0.5, 0.5, 0.5)


def test_two_level_bootstrap_of_identical_seeds_equals_the_prompt_only_one():
    """When every seed holds the same prompt values, drawing seeds changes nothing, and the prompts are
    drawn from the same stream in the same order as stratified_bootstrap (seeds as strata) draws them:
    the two intervals are equal to the last digit."""
    prompts = np.random.default_rng(1).uniform(size=20)
    values = {s: prompts for s in range(3)}
    assert two_level_bootstrap(values, seed=7) == stratified_bootstrap(values, seed=7)


def test_two_level_interval_is_wider_when_seeds_disagree():
    """Three seeds whose prompt values are centred at 0.3, 0.5 and 0.7 (50 prompts each, spread 0.1):
    within a seed the prompts' mean is known to ~0.1 / sqrt(150) overall, but the seeds differ by 0.2, so
    the two-level interval (about 0.5 -+ 1.96 * 0.163 / sqrt(3), width ~0.3) is several times wider than
    the prompt-only one (width ~0.03); both contain the point 0.5."""
    rng = np.random.default_rng(0)
    values = {s: c + rng.uniform(-0.1, 0.1, size=50) for s, c in enumerate((0.3, 0.5, 0.7))}
    point, low, high = two_level_bootstrap(values)
    _, plow, phigh = stratified_bootstrap(values)
    assert low < plow < point < phigh < high
    assert high - low > 5 * (phigh - plow)
    assert high - low > 0.2


def test_paired_two_level_draws_the_same_seeds_and_prompts_for_both():
    """b = a + 0.1 on every prompt of every seed, the seeds and prompts varying widely: every resample
    of the differences is -0.1, so the paired interval is exactly [-0.1, -0.1], even though a's own
    two-level interval is wide. With the seeds' effect on the difference varying (+0.2, 0, -0.2 on
    seeds 0, 1, 2) the paired interval is wide and contains zero."""
    rng = np.random.default_rng(0)
    a = {s: rng.uniform(0, 9, size=30) + 3 * s for s in range(3)}
    b = {s: a[s] + 0.1 for s in range(3)}
    point, low, high = paired_two_level(a, b)
    assert point == pytest.approx(-0.1) and low == pytest.approx(-0.1) and high == pytest.approx(-0.1)
    _, alow, ahigh = two_level_bootstrap(a)
    assert ahigh - alow > 2
    c = {s: a[s] - 0.2 * (1 - s) for s in range(3)}
    point, low, high = paired_two_level(c, a)
    assert point == pytest.approx(0.0, abs=1e-12) and low < -0.1 and high > 0.1
    with pytest.raises(ValueError, match="same keys"):
        paired_two_level({0: [1.0]}, {1: [1.0]})


def test_stratified_two_level_resamples_runs_within_strata():
    """Stratum X has runs all 0 and all 1 (2 prompts each), stratum Y one run all 0.5. A resample's
    runs: X's two drawn runs (00, 01, 10 or 11 -> run means 0/1) plus Y's 0.5; the mean of the three
    run values is 1/6 (X drew 0, 0; probability 1/4), 0.5 (1/2) or 5/6 (1/4): interval [1/6, 5/6]
    around 0.5. With one run per stratum the prompt values decide: identical prompts give no spread."""
    strata = {"X": {0: [0, 0], 1: [1, 1]}, "Y": {0: [0.5, 0.5]}}
    point, low, high = stratified_two_level(strata)
    assert point == pytest.approx(0.5)
    assert low == pytest.approx(1 / 6) and high == pytest.approx(5 / 6)
    assert stratified_two_level({"X": {0: [0.2, 0.2]}, "Y": {0: [0.4, 0.4]}}) == pytest.approx((0.3, 0.3, 0.3))


def test_population_std_is_the_papers_form():
    """[1, 2, 3]: squared deviations sum to 2; over n = 3: variance 2/3, std sqrt(2/3) = 0.8165 (the sample
    std over n - 1 is 1). A single value has std 0 either way."""
    assert population_std([1, 2, 3]) == pytest.approx((2.0, np.sqrt(2 / 3)))
    assert population_std([5]) == (5.0, 0.0)
    assert mean_std([1, 2, 3]) == (2.0, 1.0)
