"""IOPO's two players on one base model: the protagonist mu and the adversary nu (Wang et al. 2025, §4).

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
from bpo.model.logprobs import pair_sequence_logprobs
from bpo.core.losses import ADVERSARY_LOSSES, LossSpec, iopo
from bpo.model.policy import MERGED, AdapterStates, EnsemblePolicy
from bpo.training.reference import ReferenceStrategy
from bpo.training.train_step import EnsembleOptimizer, OptimSpec

PROTAGONIST, ADVERSARY = "protagonist", "adversary"
ADVERSARY_PREFIX = "nu_"


@dataclass(frozen=True)
class IOPOConfig:
    rounds: int = option(4, help="N_iter: rounds of protagonist steps then adversary steps (method=iopo); T = rounds * (protagonist_steps + adversary_steps)")
    protagonist_steps: int = option(12, help="N_mu: steps of the protagonist per round, the adversary frozen as its reference")
    adversary_steps: int = option(4, help="N_nu: steps of the adversary per round, the protagonist frozen as its reference")
    adversary: str = option("symmetric", help="the adversary's loss: symmetric (Algorithm 1: the protagonist's loss with the roles swapped; weight min(nu(y_l)/mu(y_l), 1+eps)) or reversed (§4.1, zero-sum: y_l preferred to y_w; weight min(nu(y_w)/mu(y_w), 1+eps))", choices=tuple(ADVERSARY_LOSSES))
    eps: float = option(0.3, help="clip of the importance weight r = pi_mu(y_l)/pi_nu(y_l): min(r, 1 + eps), from above only")

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

    def turn(self, step: int) -> str:
        """Whose turn global step `step` (0-based) is."""
        return PROTAGONIST if step % self.round_steps < self.protagonist_steps else ADVERSARY


@dataclass
class Player:
    name: str  # PROTAGONIST or ADVERSARY
    policy: EnsemblePolicy
    optim: EnsembleOptimizer  # its own AdamW per member; its LR schedule counts only its own steps
    loss: LossSpec  # pi = this player, ref = the other


class Players:
    """The protagonist and the adversary, whose turn it is, and their joint state for checkpoints."""

    def __init__(self, protagonist: Player, adversary: Player, cfg: IOPOConfig):
        self.protagonist, self.adversary, self.cfg = protagonist, adversary, cfg

    def turn(self, step: int) -> Player:
        return self.protagonist if self.cfg.turn(step) == PROTAGONIST else self.adversary

    @property
    def device(self):
        return self.protagonist.policy.device  # both players sit on the one base model

    def other(self, policy: EnsemblePolicy) -> EnsemblePolicy:
        """The player that is not `policy`: the reference of the one in training."""
        return self.adversary.policy if policy is self.protagonist.policy else self.protagonist.policy

    # The checkpoint holds both: mu's members then nu's, mu's optimisers then nu's (bpo.run.checkpoint).
    def member_states(self) -> AdapterStates:
        return self.protagonist.policy.member_states() + self.adversary.policy.member_states()

    def load_member_states(self, states: AdapterStates) -> None:
        n = len(self.protagonist.policy.members)
        if len(states) != n + len(self.adversary.policy.members):
            raise ValueError(f"an IOPO checkpoint holds both players' {2 * n} members, this one {len(states)}")
        self.protagonist.policy.load_member_states(states[:n])
        self.adversary.policy.load_member_states(states[n:])

    @property
    def optimizers(self) -> "_BothOptimizers":
        return _BothOptimizers(self.protagonist.optim, self.adversary.optim)


@dataclass
class _BothOptimizers:
    mu: EnsembleOptimizer
    nu: EnsembleOptimizer

    def state_dict(self) -> dict:
        a, b = self.mu.state_dict(), self.nu.state_dict()
        return {key: a[key] + b[key] for key in ("optimizers", "schedulers")}

    def load_state_dict(self, state: dict) -> None:
        n = len(self.mu.optimizers)
        self.mu.load_state_dict({key: state[key][:n] for key in ("optimizers", "schedulers")})
        self.nu.load_state_dict({key: state[key][n:] for key in ("optimizers", "schedulers")})


def two_players(protagonist: EnsemblePolicy, cfg: IOPOConfig, optim: OptimSpec, seed: int) -> Players:
    """Add the adversary on the protagonist's base model, the same start; an optimiser and a loss each."""
    adversary = EnsemblePolicy(protagonist.model, protagonist.tokenizer, protagonist.spec, seed=seed, prefix=ADVERSARY_PREFIX)
    mu = Player(PROTAGONIST, protagonist, EnsembleOptimizer(protagonist, optim, cfg.rounds * cfg.protagonist_steps),
                LossSpec(partial(iopo, eps=cfg.eps), "sum"))
    nu = Player(ADVERSARY, adversary, EnsembleOptimizer(adversary, optim, cfg.rounds * cfg.adversary_steps),
                LossSpec(partial(ADVERSARY_LOSSES[cfg.adversary], eps=cfg.eps), "sum"))
    return Players(mu, nu, cfg)


class PlayerReference(ReferenceStrategy):
    """IOPO's reference: the other player, frozen during the trained player's turn, scored per batch.

    Nothing is stored with the pairs (the other player moves between turns); its merged adapter scores
    each batch in eval mode without gradient, so it draws nothing from the RNG.
    """

    stored = False

    def __init__(self, players: Players, **kw):
        super().__init__(**kw)
        self.players = players

    def label_pairs(self, policy, pairs):
        pass

    @torch.no_grad()
    def batch_logprobs(self, policy, batch):
        with self.players.other(policy).use(MERGED) as model:
            return pair_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask).float()
