"""The statistics of `bpo reproduce` on small arrays whose answers are worked out by hand."""

import numpy as np
import pytest

from bpo.experiments.stats import iqm, mean_std, paired_difference, stratified_bootstrap


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
