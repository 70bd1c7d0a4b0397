"""Direct-alignment-from-preferences (DAP) losses as pure functions, and the IOPO weight.

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
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bpo.logprobs import Reduction

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


def implicit_rewards(pi: Tensor, ref: Tensor, beta: float) -> Tensor:
    """beta * (log pi - log ref), (B,): the DPO implicit reward used in metrics."""
    return beta * (pi - ref)


def iopo_weight(logp_protagonist_rejected: Tensor, logp_adversary_rejected: Tensor, eps: float = 0.3) -> Tensor:
    """IOPO importance weight, (B,), no gradient:

        r = clip(pi_mu(y_l|x) / pi_nu(y_l|x), 1 - eps, 1 + eps),  r = 1 where the ratio is 0 or infinite.

    Computed from log-probs, so the ratio is exp(a - b); it underflows to 0 or overflows to inf exactly
    when the probabilities do, and those rows get weight 1 as the paper prescribes.
    """
    ratio = torch.exp((logp_protagonist_rejected - logp_adversary_rejected).detach().double())
    degenerate = (ratio == 0) | torch.isinf(ratio) | torch.isnan(ratio)
    clipped = ratio.clamp(1.0 - eps, 1.0 + eps)
    return torch.where(degenerate, torch.ones_like(clipped), clipped).to(logp_protagonist_rejected.dtype)
