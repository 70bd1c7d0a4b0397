"""Combining raters' labels, Cohen's kappa and Krippendorff's alpha against numbers worked out by hand."""

import math

import pytest

from bpo.annotate.agreement import SPLIT, cohen_kappa, combine, krippendorff_alpha

F, S, T, X = "first", "second", "tie", "both_bad"


def test_combine_takes_a_strict_majority_only():
    assert combine([F]) == F
    assert combine([T]) == T
    assert combine([F, S]) == SPLIT  # two raters who disagree decide nothing
    assert combine([F, F, T]) == F
    assert combine([F, S, T]) == SPLIT
    assert combine([X, X, F]) == X
    with pytest.raises(ValueError):
        combine([])


def test_cohen_kappa_by_hand():
    """a = F F S S T, b = F S S S T: they agree on items 1, 3, 4, 5, so p_o = 4/5.
    Marginals a: F 2/5, S 2/5, T 1/5; b: F 1/5, S 3/5, T 1/5, so p_e = (2 + 6 + 1) / 25 = 0.36.
    kappa = (0.8 - 0.36) / (1 - 0.36) = 0.44 / 0.64 = 0.6875."""
    assert cohen_kappa([F, F, S, S, T], [F, S, S, S, T]) == pytest.approx(0.6875)


def test_cohen_kappa_limits():
    assert cohen_kappa([F, S, T], [F, S, T]) == pytest.approx(1.0)
    # always opposite on two balanced labels: p_o = 0, p_e = 1/2, kappa = -1
    assert cohen_kappa([F, S], [S, F]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa([F, F], [F, F]))  # p_e = 1: undefined
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa([F], [F, S])


def test_krippendorff_alpha_two_raters_by_hand():
    """Units [F,F], [F,S], [S,S] (m = 2, so each ordered pair counts 1/(m-1) = 1):
    o_FF = 2, o_FS = o_SF = 1, o_SS = 2; n_F = n_S = 3, n = 6.
    alpha = 1 - (n - 1) * (o_FS + o_SF) / (n_F n_S + n_S n_F) = 1 - 5 * 2 / 18 = 4/9."""
    assert krippendorff_alpha([[F, F], [F, S], [S, S]]) == pytest.approx(4 / 9)


def test_krippendorff_alpha_three_raters_and_missing_labels_by_hand():
    """Units [F,F,S] (m = 3: ordered pairs FF x2, FS x2, SF x2, each / 2), [S,S] and [T] (one label:
    not pairable, left out). o_FF = 1, o_FS = o_SF = 1, o_SS = 0 + 2 = 2; n_F = 2, n_S = 3, n = 5.
    alpha = 1 - 4 * 2 / (2*3 + 3*2) = 1 - 8/12 = 1/3."""
    assert krippendorff_alpha([[F, F, S], [S, S], [T]]) == pytest.approx(1 / 3)


def test_krippendorff_alpha_limits():
    assert krippendorff_alpha([[F, F], [S, S, S], [T, T]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[F, F], [F, F]]))  # one label value only: no expected disagreement
    assert math.isnan(krippendorff_alpha([[F], [S]]))  # nothing pairable
