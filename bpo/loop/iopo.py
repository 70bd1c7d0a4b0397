"""IOPO (Wang et al. 2025, Algorithm 1) run by the online loop: two players take turns on its phases.

    pi_mu, pi_nu <- pi_sft                      two LoRA ensembles on one base (bpo.training.players)
    for each of the F annotation phases:        online: M pairs sampled from pi_mu and labelled, as in BPO;
                                                offline (data.pairs): F = 1, the file's pairs
        for each round of the phase:
            N_mu steps: mu <- AdamW step on iopo(mu; ref = nu, frozen)
            N_nu steps: nu <- AdamW step on the adversary's loss(nu; ref = mu, frozen)
    evaluate pi_mu (the run's policy) against the human references, as for BPO

`bpo.loop.online.run_online` runs it unchanged: its `open_session` hands method=iopo to `open_iopo`, whose
session gives each training step to the player whose turn it is. T = N_iter * (N_mu + N_nu) steps of B
pairs each, every pair trained on once (by the player whose step it lands in); phases start at round
starts (F divides N_iter; online, F = N_iter by default: fresh pairs every round).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bpo.model.device import rng_states
from bpo.model.distributed import SINGLE, Ranks
from bpo.run.checkpoint import Checkpoint, save_checkpoint
from bpo.loop.online import Session, TrainingDiverged, restore
from bpo.training.players import PlayerReference, Players, two_players
from bpo.model.policy import EnsemblePolicy
from bpo.run.rundir import RunDir
from bpo.core.schedule import Phase, Schedule
from bpo.data.task import Task
from bpo.training.train_step import NonFiniteError, StepMetrics, train_step
from bpo.data.records import Pair, make_batch


@dataclass
class IOPOSession(Session):
    """A Session whose training steps alternate between the two players; `policy` is the protagonist."""

    players: Players | None = None

    def train(self, step: int, phase: Phase, pairs: list[Pair]) -> StepMetrics:
        """One step of the player whose turn it is, against the other as it stands (frozen this turn)."""
        started = time.perf_counter()
        player = self.players.turn(step)
        batch = make_batch(pairs, self.policy.tokenizer.pad_token_id).to(self.policy.device)
        other_logp = self.reference.batch_logprobs(player.policy, batch)
        try:
            metrics = train_step(player.policy, player.optim, batch, other_logp, player.loss, self.cfg.beta, "sum", ranks=self.ranks)
        except NonFiniteError as err:
            raise TrainingDiverged(f"phase {phase.index}, step {step} ({player.name}): {err}; stopped without checkpointing") from None
        turn = {"round": step // self.cfg.iopo.round_steps, "player": player.name}
        row = {"step": step, "phase": phase.index, **turn, **metrics.to_json(), "seconds": round(time.perf_counter() - started, 3)}
        self.log.write("metrics", row, step)
        return metrics

    def checkpoint(self, done: int) -> None:
        """Both players' members and optimisers; at the end, the adversary's adapters too (adapters/nu_*)."""
        if not self.ranks.main:
            return
        state = Checkpoint(done, self.players.member_states(), self.players.optimizers.state_dict(), self.reference.state_dict(), rng_states(self.policy.device))
        save_checkpoint(self.run.checkpoints, state)
        if done == self.schedule.steps:
            self.players.adversary.policy.save(self.run.adapters)


def open_iopo(cfg, run: RunDir, task: Task, protagonist: EnsemblePolicy, annotator, schedule: Schedule, ranks: Ranks = SINGLE) -> IOPOSession:
    """The two-player session (called by bpo.loop.online.open_session once the run folder and the protagonist
    exist): the adversary joins on the same base, then both are restored from the last complete checkpoint."""
    players = two_players(protagonist, cfg.iopo, cfg.optim, cfg.seed)
    reference = PlayerReference(players)
    start = restore(run, players, players.optimizers, reference)
    run.forget_after(start)
    return IOPOSession(cfg, run, task, protagonist, annotator, reference, players.protagonist.optim, schedule, start, ranks, players)
