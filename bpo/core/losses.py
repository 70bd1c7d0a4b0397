"""Direct-alignment-from-preferences (DAP) losses as pure functions, and IOPO's weight and losses.

Every loss has the same signature and returns a per-example loss; the trainer reduces:

    fn(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta) -> Tensor (B,)

where each argument is a (B,) tensor of sequence log-probs log pi(y|x) of the policy being trained
(pi_*) and of the loss's reference model (ref_*), and beta > 0. Throughout,

    h = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)

is the difference of the two implicit rewards divided by beta. For BPO the reference is the behavior
policy pi_beta that sampled the pair; for the classic baselines it is the SFT policy.

Whether a sequence log-prob is a sum over response tokens or a per-token mean is a per-loss choice,
recorded in LOSSES[name].reduction: IPO is length-normalised (as in the BPO authors' code and in TRL),
everything else sums. `Trainer` configs may override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# How a sequence's log-prob is reduced over its response tokens: summed, or averaged per token.
Reduction = Literal["sum", "mean"]

LossFn = Callable[[Tensor, Tensor, Tensor, Tensor, float], Tensor]


def log_ratio_margin(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor) -> Tensor:
    """h = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected), (B,)."""
    return (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)


def dpo(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float) -> Tensor:
    """DPO (Rafailov et al. 2023, eq. 7; BPO eq. 2):  -log sigmoid(beta * h).

    h = 0 gives log 2; swapping chosen and rejected turns -log sigmoid(x) into -log sigmoid(-x).
    """
    return -F.logsigmoid(beta * log_ratio_margin(pi_chosen, pi_rejected, ref_chosen, ref_rejected))


def ipo(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float) -> Tensor:
    """IPO (Azar et al. 2023; BPO eq. 3):  (h - 1/(2 beta))^2, zero at h = 1/(2 beta).

    beta plays the role of IPO's tau: the target margin is 1/(2 beta).
    """
    h = log_ratio_margin(pi_chosen, pi_rejected, ref_chosen, ref_rejected)
    return (h - 1.0 / (2.0 * beta)) ** 2


def slic(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float) -> Tensor:
    """SLiC (Zhao et al. 2023) in the reference-relative form of BPO eq. 4:  max(0, 1 - beta * h).

    This is also RSO's hinge loss (Liu et al. 2023, "Statistical rejection sampling improves preference
    optimization", eq. 7, with gamma = beta): RSO differs from SLiC in how pairs are sampled, not in
    the loss, so LOSSES maps both `slic` and `hinge` to this one function.
    """
    return torch.relu(1.0 - beta * log_ratio_margin(pi_chosen, pi_rejected, ref_chosen, ref_rejected))


def kto_pair(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float) -> Tensor:
    """Paired KTO (Ethayarajh et al. 2024), the form used as a baseline by IOPO:

        r_w = pi_chosen - ref_chosen,   r_l = pi_rejected - ref_rejected       (implicit rewards / beta)
        z_w = max(0, mean_batch(r_w)),  z_l = max(0, mean_batch(r_l))          (KL reference points, no gradient)
        loss = [ (1 - sigmoid(beta (r_w - z_l))) + (1 - sigmoid(beta (z_w - r_l))) ] / 2

    The chosen response is measured against the rejected responses' reference point and vice versa.
    The reference points are batch statistics, so this loss is per-example given its batch; the halving
    makes the batch mean equal the mean over the 2B desirable/undesirable terms.
    """
    r_w = pi_chosen - ref_chosen
    r_l = pi_rejected - ref_rejected
    z_w = r_w.detach().mean().clamp(min=0)
    z_l = r_l.detach().mean().clamp(min=0)
    desirable = 1.0 - torch.sigmoid(beta * (r_w - z_l))
    undesirable = 1.0 - torch.sigmoid(beta * (z_w - r_l))
    return 0.5 * (desirable + undesirable)


@dataclass(frozen=True)
class LossSpec:
    fn: LossFn
    reduction: Reduction  # how sequence log-probs are reduced over response tokens for this loss


LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec(dpo, "sum"),
    "ipo": LossSpec(ipo, "mean"),
    "slic": LossSpec(slic, "sum"),
    "hinge": LossSpec(slic, "sum"),
    "kto_pair": LossSpec(kto_pair, "sum"),
}


def get_loss(name: str) -> LossSpec:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


@dataclass(frozen=True)
class Loss:
    """A loss bound once for a learner: its function, its beta and the reduction of the sequence
    log-probs it is computed on. The train step takes it whole; nothing looks the loss up again."""

    fn: LossFn
    beta: float
    reduction: Reduction

    def __call__(self, pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor) -> Tensor:
        """The per-pair loss, (B,)."""
        return self.fn(pi_chosen, pi_rejected, ref_chosen, ref_rejected, self.beta)


def bind_loss(name: str, beta: float, reduction: str = "auto") -> Loss:
    """The registered loss `name` with its beta; reduction `auto` is the loss's own (mean for ipo)."""
    spec = get_loss(name)
    return Loss(spec.fn, beta, spec.reduction if reduction == "auto" else reduction)


def implicit_rewards(pi: Tensor, ref: Tensor, beta: float) -> Tensor:
    """beta * (log pi - log ref), (B,): the DPO implicit reward used in metrics."""
    return beta * (pi - ref)


def iopo_weight(logp_protagonist_rejected: Tensor, logp_adversary_rejected: Tensor, eps: float = 0.3) -> Tensor:
    """IOPO importance weight (Wang et al. 2025, eqs. 11-12), (B,), a constant (no gradient flows through it):

        r = pi_mu(y_l|x) / pi_nu(y_l|x)                 from sequence log-probs: exp(a - b)
        r = 1 where r is 0 or not finite                (the probabilities under- or overflowed)
        r <- min(r, clip(r, 1 - eps, 1 + eps))          PPO's clipped ratio, = min(r, 1 + eps)

    so the weight is clipped from above only: r = 0.5 stays 0.5 (clip gives 0.7, the min keeps 0.5),
    r = 2 becomes 1 + eps. eps = 0.3 by default, as in the paper.
    """
    ratio = torch.exp((logp_protagonist_rejected - logp_adversary_rejected).detach().double())
    degenerate = (ratio == 0) | ~torch.isfinite(ratio)
    clipped = torch.minimum(ratio, ratio.clamp(1.0 - eps, 1.0 + eps))
    return torch.where(degenerate, torch.ones_like(clipped), clipped).to(logp_protagonist_rejected.dtype)


def iopo(
    pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float, eps: float = 0.3
) -> Tensor:
    """IOPO's per-example loss (Wang et al. 2025, eq. 14, corrected), (B,): the DPO loss weighted by r,

        -r * log sigmoid(beta * [log pi_mu/pi_nu (y_w) - log pi_mu/pi_nu (y_l)]),   r = iopo_weight(pi_l, ref_l, eps)

    with the player being trained as pi (the protagonist mu) and the other player, frozen, as the
    reference (the adversary nu). Two corrections to the paper as printed:
      * the second term of eq. 14 reads log pi_mu(y_w)/pi_nu(y_l); the DPO form the paper derives it
        from (and the first term) need log pi_mu(y_l)/pi_nu(y_l), used here;
      * eq. 15, given as its gradient, is not the gradient of eq. 14; training differentiates this
        loss by autograd (r is a constant, so the gradient is r times DPO's).
    """
    return iopo_weight(pi_rejected, ref_rejected, eps) * dpo(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta)


def iopo_reversed(
    pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float, eps: float = 0.3
) -> Tensor:
    """IOPO's adversary under the zero-sum reading of the paper's section 4.1: its action is the reversed
    preference, y_l preferred to y_w. It is `iopo` with chosen and rejected swapped (pi = nu, ref = mu):

        -r * log sigmoid(beta * [log pi_nu/pi_mu (y_l) - log pi_nu/pi_mu (y_w)]),   r = min(pi_nu(y_w)/pi_mu(y_w), 1 +
        eps)

    the weight taken, as in eq. 12, on the response this player rejects (here y_w).
    """
    return iopo(pi_rejected, pi_chosen, ref_rejected, ref_chosen, beta, eps)


# The adversary's loss under each reading of the paper (iopo.adversary); pi = nu, ref = mu in both.
#   symmetric  Algorithm 1 ("optimise nu with (15)"): the protagonist's loss with the roles swapped, on the
#              same preference; weight min(pi_nu(y_l)/pi_mu(y_l), 1 + eps)
#   reversed   section 4.1 (zero-sum): y_l preferred to y_w; weight min(pi_nu(y_w)/pi_mu(y_w), 1 + eps)
ADVERSARY_LOSSES: dict[str, LossFn] = {"symmetric": iopo, "reversed": iopo_reversed}
