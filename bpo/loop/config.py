"""The run configuration: nested dataclasses, one docstring-like `help` per field (see bpo.common.configlib).

Load with `load_config(RunConfig, "configs/x.yaml", ["beta=0.5", "schedule.phases=2"])`; every
shipped config under configs/ is loaded and validated by a test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bpo.common.configlib import fixed_settings, option
from bpo.core.losses import LOSSES
from bpo.core.schedule import DEFAULT_BATCH_SIZE, ScheduleConfig, ScheduleError, resolve_schedule
from bpo.data.prefdata import DataConfig
from bpo.evaluation.evaluate import LLM_JUDGES, EvalConfig
from bpo.evaluation.guard import GuardConfig
from bpo.judging.annotators import AnnotatorConfig
from bpo.model.loading import PolicyConfig
from bpo.model.policy import LoraSpec
from bpo.model.sampler import SamplingSpec
from bpo.run.checkpoint import CheckpointConfig
from bpo.run.runlog import LogConfig
from bpo.training.players import IOPOConfig
from bpo.training.reference import ReferenceConfig
from bpo.training.sft import SFTConfig
from bpo.training.train_step import OptimSpec

METHODS = ("bpo", "online_dpo", "offline_dpo", "iopo")


@dataclass(frozen=True)
class RunConfig:
    task: str = option(
        "reviews",
        help="a built-in task name (reviews, sorting, chatterbot) or a task YAML file (prompts/references from JSONL)",
    )
    method: str = option(
        "bpo",
        help="bpo: reference = behavior policy; online_dpo: reference = sft, F = T (with F < T phases: iterative "
        "DPO); offline_dpo: F = 1, reference = sft; iopo: two players, each the other's reference (the iopo "
        "section)",
        choices=METHODS,
    )
    loss: str = option("dpo", help="the DAP loss", choices=tuple(LOSSES))
    loss_reduction: str = option(
        "auto",
        help="sequence log-prob over response tokens: sum, mean, or auto (the loss's default: mean for ipo)",
        choices=("auto", "sum", "mean"),
    )
    beta: float = option(0.5, help="the loss's beta (KL strength; IPO's target margin is 1/(2 beta))")
    seed: int = option(0, help="random seed of everything (prompt order, sampling, annotation noise, init)")
    out: str | None = option(
        None, may_change_on_resume=True, help="run folder; null: runs/<task>-<method>-<loss>-b<beta>-s<seed>"
    )
    policy: PolicyConfig = option(default_factory=PolicyConfig, help="the initial policy")
    sft: SFTConfig = option(default_factory=SFTConfig, help="optional supervised stage")
    lora: LoraSpec = option(default_factory=LoraSpec, help="the LoRA ensemble")
    schedule: ScheduleConfig = option(default_factory=ScheduleConfig, help="T, F, N, B")
    reference: ReferenceConfig = option(default_factory=ReferenceConfig, help="the loss's reference")
    sampling: SamplingSpec = option(default_factory=SamplingSpec, help="sampling of training pairs")
    annotator: AnnotatorConfig = option(default_factory=AnnotatorConfig, help="who labels the pairs")
    optim: OptimSpec = option(default_factory=OptimSpec, help="optimiser")
    eval: EvalConfig = option(default_factory=EvalConfig, may_change_on_resume=True, help="evaluation")
    data: DataConfig = option(default_factory=DataConfig, help="labelled data from files")
    checkpoint: CheckpointConfig = option(
        default_factory=CheckpointConfig, may_change_on_resume=True, help="checkpointing"
    )
    log: LogConfig = option(
        default_factory=LogConfig, may_change_on_resume=True, help="where the run's records go (JSONL, TensorBoard)"
    )
    iopo: IOPOConfig = option(default_factory=IOPOConfig, help="IOPO's two players (method=iopo)")
    guard: GuardConfig = option(
        default_factory=GuardConfig,
        may_change_on_resume=True,
        help="the collapse guard: checks at every evaluation (bpo.evaluation.guard)",
    )

    def validate(self):
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be positive and finite, got {self.beta}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2^32), got {self.seed}")
        s = self.resolved_schedule()  # raises ScheduleError (a ValueError) naming the keys
        if self.data.pairs and s.phases != 1:
            raise ValueError(
                "data.pairs gives all labelled pairs up front, so schedule.phases must be 1 (use "
                f"method=offline_dpo); got {s.phases}"
            )
        if self.data.pairs and self.reference_kind() == "behavior":
            raise ValueError(
                "data.pairs were not sampled by this policy, so there are no behavior log-probs; use "
                "method=offline_dpo or reference.kind=sft"
            )
        if self.method == "offline_dpo" and s.phases != 1:
            raise ValueError(
                f"method=offline_dpo has one phase; got schedule.phases={s.phases} (use method=bpo for F > 1)"
            )
        if self.method == "iopo":
            self._validate_iopo(s)
        if self.eval.judge in LLM_JUDGES:  # its request limits are the annotator section's
            from bpo.judging.llm import eval_llm_settings

            try:
                eval_llm_settings(self.annotator, self.eval)._validate_llm()
            except ValueError as err:
                raise ValueError(f"eval.judge={self.eval.judge} takes its request limits from annotator.*: {err}")

    def resolved_schedule(self):
        s = self.schedule
        if self.method == "iopo":
            return self._iopo_schedule()
        steps = s.steps_or_default()  # None when pairs and batch size fix it
        batch_size = s.batch_size_or_default()  # None when steps and pairs fix it
        phases = s.phases
        if phases is None:  # the method's default: offline has one phase, the online methods one per step
            phases = 1 if self.method == "offline_dpo" else None
        if phases is None:
            phases = steps if steps is not None else max(1, s.pairs // batch_size)
        return resolve_schedule(steps, phases, s.pairs, batch_size)

    def _iopo_schedule(self):
        """T from the iopo section (N_iter * (N_mu + N_nu)); F: one phase per round online, 1 offline (data.pairs)."""
        s, steps, data, shared = self.schedule, self.iopo.steps, self.iopo.data_steps, self.iopo.pairs == "shared"
        # schedule.steps may name T, or with shared pairs the protagonist's T' (a sweep's "same T as the baselines")
        if s.steps is not None and s.steps != steps and not (shared and s.steps == data):
            also = f" or the protagonist's iopo.rounds * iopo.protagonist_steps = {data}" if shared else ""
            raise ScheduleError(
                f"method=iopo trains T = iopo.rounds * (iopo.protagonist_steps + iopo.adversary_steps) = {steps} "
                f"steps; schedule.steps={s.steps} is neither that{also} (leave it out)"
            )
        batch_size = s.batch_size if (s.batch_size is not None or s.pairs is not None) else DEFAULT_BATCH_SIZE
        phases = s.phases if s.phases is not None else (1 if self.data.pairs else self.iopo.rounds)
        if not shared:
            return resolve_schedule(steps, phases, s.pairs, batch_size)
        # shared: the protagonist's steps take each batch once (N = T' * B); T counts both players' steps
        if s.pairs is not None and batch_size is not None and s.pairs != data * batch_size:
            raise ScheduleError(
                f"method=iopo with iopo.pairs=shared labels N = iopo.rounds * iopo.protagonist_steps * "
                f"schedule.batch_size = {data} * {batch_size} = {data * batch_size} pairs; schedule.pairs={s.pairs} "
                "disagrees (leave it out, or set iopo.pairs=split: N = T * B)"
            )
        return replace(resolve_schedule(data, phases, s.pairs, batch_size), steps=steps)

    def _validate_iopo(self, s) -> None:
        if self.iopo.rounds % s.phases:
            raise ValueError(
                f"method=iopo: schedule.phases={s.phases} must divide iopo.rounds={self.iopo.rounds} (phases start at "
                "round starts)"
            )
        if self.loss != "dpo":
            raise ValueError(
                "method=iopo trains its own loss (the weighted DPO of IOPO eq. 14); leave loss=dpo, got "
                f"loss={self.loss}"
            )
        if self.loss_reduction == "mean":
            raise ValueError(
                "method=iopo needs summed sequence log-probs (its weight is a ratio of sequence probabilities); leave "
                "loss_reduction=auto"
            )
        if self.reference.kind != "auto":
            raise ValueError(
                "method=iopo: each player's reference is the other player; leave reference.kind=auto, got "
                f"{self.reference.kind}"
            )

    def reference_kind(self) -> str:
        if self.reference.kind != "auto":
            return self.reference.kind
        return "behavior" if self.method == "bpo" else "sft"

    def resume_settings(self) -> dict:
        """The settings a resume must not change, as {dotted key: value} (those not marked
        may_change_on_resume); the schedule as resolved (T, F, N, B)."""
        flat = {k: v for k, v in fixed_settings(self).items() if not k.startswith("schedule.")}
        flat.update(fixed_settings(self.resolved_schedule(), "schedule."))
        return flat

    def reduction(self) -> str:
        return LOSSES[self.loss].reduction if self.loss_reduction == "auto" else self.loss_reduction
