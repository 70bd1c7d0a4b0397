"""Loss values against numbers worked out by hand, limits, and the chosen/rejected swap."""

import math

import pytest
import torch

from bpo.core.losses import LOSSES, dpo, get_loss, iopo_weight, ipo, kto_pair, slic

t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731


def test_dpo_by_hand():
    """pi_w=-1, pi_l=-3, ref_w=ref_l=-2: h = (-1+2) - (-3+2) = 2; beta=0.5 -> -log sigmoid(1) = log(1+e^-1) =
    0.3132617."""
    assert dpo(t(-1.0), t(-3.0), t(-2.0), t(-2.0), 0.5).item() == pytest.approx(0.3132617, abs=1e-7)


def test_dpo_zero_margin_is_log2():
    """Equal log-ratios (h = 0) give -log sigmoid(0) = log 2 whatever beta."""
    for beta in (0.01, 0.1, 1.0, 10.0):
        assert dpo(t(-5.0), t(-7.0), t(-5.0), t(-7.0), beta).item() == pytest.approx(math.log(2))


def test_dpo_swap_differs_by_beta_h():
    """-log s(-x) = x - log s(x), so swapping chosen and rejected adds exactly beta * h."""
    pw, pl, rw, rl = t(-1.0, -4.0), t(-3.0, -2.0), t(-2.0, -2.5), t(-2.0, -1.0)
    beta = 0.3
    h = (pw - rw) - (pl - rl)
    swapped = dpo(pl, pw, rl, rw, beta)
    assert torch.allclose(swapped - dpo(pw, pl, rw, rl, beta), beta * h)


def test_ipo_by_hand_and_zero_at_target():
    """h = 2; beta=0.5: target 1/(2*0.5)=1, (2-1)^2 = 1. beta=0.25: target 2, loss 0."""
    args = (t(-1.0), t(-3.0), t(-2.0), t(-2.0))
    assert ipo(*args, 0.5).item() == pytest.approx(1.0)
    assert ipo(*args, 0.25).item() == pytest.approx(0.0)


def test_ipo_swap_symmetric_around_target():
    """Swap: h -> -h, so loss = (h + 1/(2b))^2; with h = 2, beta = 0.5: (2 + 1)^2 = 9."""
    assert ipo(t(-3.0), t(-1.0), t(-2.0), t(-2.0), 0.5).item() == pytest.approx(9.0)


def test_slic_and_hinge_by_hand():
    """h = 2, beta = 0.5: max(0, 1 - 1) = 0; swapped (h = -2): max(0, 1 + 1) = 2; h = 1: 0.5."""
    assert slic(t(-1.0), t(-3.0), t(-2.0), t(-2.0), 0.5).item() == 0.0
    assert slic(t(-3.0), t(-1.0), t(-2.0), t(-2.0), 0.5).item() == pytest.approx(2.0)
    assert LOSSES["hinge"].fn(t(-1.0), t(-2.0), t(-2.0), t(-2.0), 0.5).item() == pytest.approx(0.5)


def test_kto_pair_by_hand():
    """r_w = [1, -1], r_l = [0, 2], beta = 1: z_w = max(0, 0) = 0, z_l = max(0, 1) = 1.
    desirable = 1 - s(r_w - z_l) = 1 - s([0, -2]) = [0.5, 0.8807971]
    undesirable = 1 - s(z_w - r_l) = 1 - s([0, -2]) = [0.5, 0.8807971]; loss = mean of the two."""
    zero = t(0.0, 0.0)
    loss = kto_pair(t(1.0, -1.0), t(0.0, 2.0), zero, zero, 1.0)
    assert torch.allclose(loss, t(0.5, 0.8807971), atol=1e-7)


def test_kto_pair_zero_rewards_is_half():
    zero = t(0.0, 0.0, 0.0)
    assert torch.allclose(kto_pair(zero, zero, zero, zero, 0.7), t(0.5, 0.5, 0.5))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_per_example_and_rewards_a_correct_margin(name):
    """Each loss returns (B,) and is lower when the chosen response gains log-prob than when it loses it."""
    spec = get_loss(name)
    ref = t(-2.0, -2.0)
    good = spec.fn(t(-1.0, -1.0), t(-3.0, -3.0), ref, ref, 0.5)
    bad = spec.fn(t(-3.0, -3.0), t(-1.0, -1.0), ref, ref, 0.5)
    assert good.shape == (2,)
    assert (good < bad).all()


def test_length_normalisation_defaults():
    assert LOSSES["ipo"].reduction == "mean"
    assert {LOSSES[n].reduction for n in ("dpo", "slic", "hinge", "kto_pair")} == {"sum"}


def test_unknown_loss_names_choices():
    with pytest.raises(ValueError, match="unknown loss 'dpx'; choose one of dpo, ipo"):
        get_loss("dpx")


def test_iopo_weight_clip_and_degenerate():
    """min(r, clip(r, 0.7, 1.3)) = min(r, 1.3): ratio 1.1 stays; 2 clips to 1.3; 0.5 stays 0.5 (clipped from
    above only: the clip's 0.7 loses the min to 0.5); ratio 0 (log -inf) and inf give weight 1."""
    mu = t(math.log(1.1), math.log(2.0), math.log(0.5), -math.inf, 0.0)
    nu = t(0.0, 0.0, 0.0, 0.0, -math.inf)
    assert torch.allclose(iopo_weight(mu, nu, eps=0.3), t(1.1, 1.3, 0.5, 1.0, 1.0))
