"""IOPO's two players on one base model: the protagonist mu and the adversary nu (Wang et al. 2025, §4).

IOPO's Algorithm 1, as the online loop (bpo.loop.online) runs it with these two learners:

    pi_mu, pi_nu <- pi_sft                      two LoRA ensembles on one base
    for each of the F annotation phases:        online: M pairs sampled from pi_mu and labelled, as in BPO;
                                                offline (data.pairs or F = 1): one phase, from pi_sft
        for each round of the phase:
            N_mu steps: mu <- AdamW step on iopo(mu; ref = nu, frozen)
            N_nu steps: nu <- AdamW step on the adversary's loss(nu; ref = mu, frozen)
    evaluate pi_mu (the run's policy) against the human references, as for BPO

T = N_iter * (N_mu + N_nu) steps of B pairs each. Which pairs each step trains on (iopo.pairs):
- shared (the default; Algorithm 1 trains both players on the same data set D): every player walks the
  phase's pairs in the same seeded batch order (bpo.training.buffer), each with its own place in it. The
  protagonist's N_iter * N_mu steps take each batch once, so N = N_iter * N_mu * B pairs: with
  N_iter * N_mu = T' and the same seed, the protagonist trains on exactly the batches, in the order, of an
  offline or iterative DPO run of T' steps. The adversary's k-th step of a phase takes the phase's batch k
  (round after round: it trains on pairs the protagonist has already met, from the same file).
- split: each pair is trained on once, by the player whose step it lands in (N = T * B; the protagonist
  meets N_mu / (N_mu + N_nu) of the pairs).
Phases start at round starts (F divides N_iter; online, F = N_iter by default: fresh pairs every round).

Each player is a LoRA ensemble (bpo.model.policy.EnsemblePolicy) with its own optimiser; both ensembles sit
on the same base weights (no second copy). mu's adapters carry a single policy's names (a0 .., merged),
so a run folder's `adapters/`, `bpo eval`, `bpo export` and `bpo compare` see mu as the run's policy;
nu's are named nu_a0 .., nu_merged. Both start from the same SFT policy with the same factors (B = 0 and
the same seed), so at step 0 pi_mu = pi_nu = pi_sft.

Turns: N_iter rounds, each N_mu steps of mu then N_nu steps of nu; global step s is mu's when
s mod (N_mu + N_nu) < N_mu. The player not in training is frozen and is the trained player's reference
(`PlayerReference`: its merged adapter scores each batch, one forward pass without gradient).

Losses (bpo.core.losses): mu minimises `iopo` (pi = mu, ref = nu); nu minimises ADVERSARY_LOSSES[adversary]
(pi = nu, ref = mu): `iopo` itself under the symmetric reading, `iopo_reversed` under the reversed one.
With an ensemble, each member is its own IOPO learner (as each is its own DPO learner in BPO): its weight
r uses its own log-probs; the reference is the other player's merged policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from bpo.common.configlib import option
from bpo.core.losses import ADVERSARY_LOSSES, Loss, iopo
from bpo.model.logprobs import pair_sequence_logprobs
from bpo.model.policy import MERGED, EnsemblePolicy
from bpo.training.learners import Learner, Learners
from bpo.training.reference import ReferenceStrategy
from bpo.training.train_step import EnsembleOptimizer, OptimSpec

PROTAGONIST, ADVERSARY = "protagonist", "adversary"
ADVERSARY_PREFIX = "nu_"
PAIR_SHARING = ("shared", "split")


@dataclass(frozen=True)
class IOPOConfig:
    rounds: int = option(
        4,
        help="N_iter: rounds of protagonist steps then adversary steps (method=iopo); T = rounds * (protagonist_steps "
        "+ adversary_steps)",
    )
    protagonist_steps: int = option(
        16, help="N_mu: steps of the protagonist per round, the adversary frozen as its reference"
    )
    adversary_steps: int = option(
        4, help="N_nu: steps of the adversary per round, the protagonist frozen as its reference"
    )
    adversary: str = option(
        "symmetric",
        help="the adversary's loss: symmetric (Algorithm 1: the protagonist's loss with the roles swapped; weight "
        "min(nu(y_l)/mu(y_l), 1+eps)) or reversed (§4.1, zero-sum: y_l preferred to y_w; weight "
        "min(nu(y_w)/mu(y_w), 1+eps))",
        choices=tuple(ADVERSARY_LOSSES),
    )
    eps: float = option(
        0.3, help="clip of the importance weight r = pi_mu(y_l)/pi_nu(y_l): min(r, 1 + eps), from above only"
    )
    pairs: str = option(
        "shared",
        help="which pairs each player trains on: shared (both walk the same pairs in the same batch order, the "
        "protagonist each batch once: N = rounds * protagonist_steps * B, as a DPO run of rounds * "
        "protagonist_steps steps) or split (each pair once, by the player whose step it lands in: N = T * B)",
        choices=PAIR_SHARING,
    )

    def validate(self):
        if self.rounds <= 0 or self.protagonist_steps <= 0 or self.adversary_steps <= 0:
            raise ValueError("rounds, protagonist_steps and adversary_steps must be positive")
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")

    @property
    def round_steps(self) -> int:
        """N_mu + N_nu."""
        return self.protagonist_steps + self.adversary_steps

    @property
    def steps(self) -> int:
        """T = N_iter * (N_mu + N_nu)."""
        return self.rounds * self.round_steps

    @property
    def data_steps(self) -> int:
        """The steps that take fresh batches: T' = N_iter * N_mu when the players share the pairs, else T."""
        return self.rounds * self.protagonist_steps if self.pairs == "shared" else self.steps

    def turn(self, step: int) -> str:
        """Whose turn global step `step` (0-based) is."""
        return PROTAGONIST if step % self.round_steps < self.protagonist_steps else ADVERSARY

    def batch_in_phase(self, local_step: int, batches: int) -> int:
        """The index among a phase's `batches` batches that its step `local_step` (0-based, from the phase's
        first step, a round start) trains on. split: the step's own. shared: the player's own count of steps
        in the phase, so each player walks the same batches in the same order (the adversary wrapping round
        when it has more steps in the phase than there are batches)."""
        if self.pairs == "split":
            return local_step
        rounds_before, within = divmod(local_step, self.round_steps)
        if within < self.protagonist_steps:
            return rounds_before * self.protagonist_steps + within
        return (rounds_before * self.adversary_steps + within - self.protagonist_steps) % batches


def two_players(protagonist: EnsemblePolicy, cfg: IOPOConfig, optim: OptimSpec, beta: float, seed: int) -> Learners:
    """The protagonist and, on its base model with the same start, the adversary: an optimiser and a loss
    each (both with the run's beta, on summed log-probs: IOPO's weight is a ratio of sequence probabilities);
    steps alternate as IOPOConfig.turn says, and each step's log row names its round and player."""
    adversary = EnsemblePolicy(
        protagonist.model, protagonist.tokenizer, protagonist.spec, seed=seed, prefix=ADVERSARY_PREFIX
    )
    mu = Learner(
        PROTAGONIST,
        protagonist,
        EnsembleOptimizer(protagonist, optim, cfg.rounds * cfg.protagonist_steps),
        Loss(partial(iopo, eps=cfg.eps), beta, "sum"),
    )
    nu = Learner(
        ADVERSARY,
        adversary,
        EnsembleOptimizer(adversary, optim, cfg.rounds * cfg.adversary_steps),
        Loss(partial(ADVERSARY_LOSSES[cfg.adversary], eps=cfg.eps), beta, "sum"),
    )
    return Learners(
        [mu, nu],
        turn=lambda step: 0 if cfg.turn(step) == PROTAGONIST else 1,
        step_fields=lambda step: {"round": step // cfg.round_steps, "player": cfg.turn(step)},
        batch_of=cfg.batch_in_phase,
    )


class PlayerReference(ReferenceStrategy):
    """IOPO's reference: the other player, frozen during the trained player's turn, scored per batch.

    Nothing is stored with the pairs (the other player moves between turns); its merged adapter scores
    each batch in eval mode without gradient, so it draws nothing from the RNG.
    """

    stored = False

    def __init__(self, players: Learners, **kw):
        super().__init__(**kw)
        self.players = players

    def other(self, policy: EnsemblePolicy) -> EnsemblePolicy:
        """The player that is not `policy`: the reference of the one in training."""
        mu, nu = (learner.policy for learner in self.players)
        return nu if policy is mu else mu

    def label_pairs(self, policy, pairs):
        pass

    @torch.no_grad()
    def batch_logprobs(self, policy, batch):
        with self.other(policy).use(MERGED) as model:
            return pair_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask).float()
