"""The run configuration: nested dataclasses, one docstring-like `help` per field (see bpo.configlib).

Load with `load_config(RunConfig, "configs/x.yaml", ["beta=0.5", "schedule.phases=2"])`; every
shipped config under configs/ is loaded and validated by a test.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpo.configlib import option
from bpo.losses import LOSSES
from bpo.merge import MergeMode
from bpo.models import DTYPES
from bpo.schedule import resolve_schedule

DEFAULT_STEPS = 16  # T when neither schedule.steps nor schedule.pairs is given
METHODS = ("bpo", "online_dpo", "offline_dpo")
REFERENCE_KINDS = ("sft", "behavior", "fixed", "ema", "sync")  # see bpo.reference


@dataclass(frozen=True)
class PolicyConfig:
    path: str | None = option(None, help="local Hugging Face model folder of the initial policy; null: the task's built-in policy")
    dtype: str = option("float32", help="weights dtype (float32 on CPU; bfloat16 on GPU)", choices=tuple(DTYPES))
    allow_pickle: bool = option(False, help="allow loading pickle (*.bin) weights, with torch's weights_only loader")
    trust_remote_code: bool = option(False, help="run the model folder's own Python code (off: only transformers' code runs)")


@dataclass(frozen=True)
class SFTConfig:
    steps: int = option(0, help="supervised fine-tuning steps before alignment; 0 skips the stage")
    batch_size: int = option(16, help="SFT batch size")
    lr: float = option(1e-3, help="SFT learning rate (all parameters)")

    def validate(self):
        if self.steps < 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ValueError("steps must be >= 0, batch_size and lr > 0")


@dataclass(frozen=True)
class LoraSpec:
    rank: int = option(8, help="LoRA rank r of each ensemble member")
    alpha: float = option(16.0, help="LoRA alpha; a member's update is (alpha / r) * B @ A")
    dropout: float = option(0.0, help="LoRA dropout during training")
    target_modules: tuple[str, ...] = option(("q_proj", "k_proj", "v_proj", "o_proj"), help="names of the linear layers that get adapters")
    ensemble: int = option(5, help="number n of LoRA adapters trained side by side (the paper uses 5)")
    merge: MergeMode = option("exact", help="exact: mean of the members' weight deltas; linear: peft's `linear` combination, as the paper's code did (not the mean of the deltas)")

    def validate(self):
        if self.rank <= 0 or self.ensemble <= 0 or self.alpha <= 0:
            raise ValueError("rank, alpha and ensemble must be positive")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int | None = option(None, help="T, training steps; any two of steps, pairs, batch_size give the third (steps = 16 if neither steps nor pairs is set)")
    phases: int | None = option(None, help="F, annotation phases (1 = offline, = steps for on-policy); null: the method's default")
    pairs: int | None = option(None, help="N, labelled pairs in total (N = T * B: each is trained on once)")
    batch_size: int | None = option(8, help="B, pairs per training step")


@dataclass(frozen=True)
class ReferenceConfig:
    kind: str = option("auto", help="the loss's reference; auto: behavior for bpo, sft otherwise", choices=("auto",) + REFERENCE_KINDS)
    path: str | None = option(None, help="model folder of the `fixed` reference (same vocabulary as the policy)")
    ema_tau: float = option(0.1, help="ema: theta_ref <- tau * theta + (1 - tau) * theta_ref after each step")
    sync_every: int = option(4, help="sync: copy the policy into the reference every this many steps")

    def validate(self):
        if self.kind == "fixed" and not self.path:
            raise ValueError("kind=fixed needs reference.path, a model folder")
        if not 0 < self.ema_tau <= 1:
            raise ValueError("ema_tau must be in (0, 1]")
        if self.sync_every <= 0:
            raise ValueError("sync_every must be positive")


@dataclass(frozen=True)
class SamplingSpec:
    temperature: float = option(1.0, help="sampling temperature")
    top_p: float = option(1.0, help="nucleus sampling threshold")
    max_new_tokens: int = option(32, help="longest response, in tokens")
    batch_size: int = option(16, help="prompts per generation call")
    greedy: bool = option(False, help="greedy decoding instead of sampling")

    def validate(self):
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.max_new_tokens <= 0 or self.batch_size <= 0:
            raise ValueError("need temperature > 0, 0 < top_p <= 1, max_new_tokens > 0, batch_size > 0")


@dataclass(frozen=True)
class AnnotatorConfig:
    kind: str = option("simulated", help="rule: the task's or your Python scorer, higher score wins; reward_model: a sequence-classification model folder, higher score wins; simulated: a Bradley-Terry noisy rater on the judge's scores", choices=("rule", "reward_model", "simulated"))
    judge: str = option("task", help="'task' (the task's rule), 'module:function' (your Python scorer), or a reward-model folder (kind=reward_model)")
    temperature: float = option(0.5, help="simulated: P(a preferred) = sigmoid((s_a - s_b) / temperature)")
    tie_band: float = option(0.0, help="simulated: score gaps within this band are ties (dropped)")
    max_attempts: float = option(4.0, help="sample at most this many times M prompts per phase to get M untied, distinct pairs")

    def validate(self):
        from pathlib import Path

        is_folder = Path(self.judge).is_dir()
        if self.kind == "reward_model" and not is_folder:
            raise ValueError(f"kind=reward_model needs judge=<a reward-model folder>; {self.judge!r} is not a folder")
        if self.kind == "rule" and is_folder:
            raise ValueError(f"kind=rule takes 'task' or 'module:function'; for the model folder {self.judge!r} use kind=reward_model")
        if self.temperature <= 0 or self.tie_band < 0 or self.max_attempts < 1:
            raise ValueError("need temperature > 0, tie_band >= 0, max_attempts >= 1")


@dataclass(frozen=True)
class OptimSpec:
    lr: float = option(5e-4, help="learning rate of each member's AdamW")
    weight_decay: float = option(0.0, help="AdamW weight decay")
    warmup_steps: int = option(0, help="linear warm-up steps")
    scheduler: str = option("constant", help="learning-rate decay after warm-up", choices=("constant", "linear", "cosine"))
    max_grad_norm: float = option(1.0, help="gradient clipping norm per member")


@dataclass(frozen=True)
class EvalConfig:
    judge: str = option("task", help="the evaluation judge (same forms as annotator.judge); keep it apart from the annotator where you can")
    prompts: int = option(128, help="held-out prompts to evaluate on (at most the task's)")
    greedy: bool = option(True, help="greedy responses (the paper); false: sample at eval.temperature")
    temperature: float = option(1.0, help="sampling temperature when greedy is false")
    kl: bool = option(True, help="estimate KL(policy || SFT) from one sampled response per prompt")
    before: bool = option(True, help="also evaluate the initial (SFT) policy, for the before/after comparison")

    def sampling(self, base: SamplingSpec) -> SamplingSpec:
        from dataclasses import replace

        return replace(base, greedy=self.greedy, temperature=self.temperature, top_p=1.0)


@dataclass(frozen=True)
class DataConfig:
    pairs: str | None = option(None, help="a preference JSONL file (TRL layout: prompt/chosen/rejected) used as the labelled pairs of phase 0 instead of sampling; for offline baselines")


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = option(0, help="also checkpoint every this many steps (0: only at phase boundaries)")

    def validate(self):
        if self.every < 0:
            raise ValueError("every must be >= 0")


@dataclass(frozen=True)
class RunConfig:
    task: str = option("reviews", help="a built-in task name (reviews) or a task YAML file (prompts/references from JSONL)")
    method: str = option("bpo", help="bpo: reference = behavior policy; online_dpo: reference = sft, F = T; offline_dpo: F = 1, reference = sft", choices=METHODS)
    loss: str = option("dpo", help="the DAP loss", choices=tuple(LOSSES))
    loss_reduction: str = option("auto", help="sequence log-prob over response tokens: sum, mean, or auto (the loss's default: mean for ipo)", choices=("auto", "sum", "mean"))
    beta: float = option(0.5, help="the loss's beta (KL strength; IPO's target margin is 1/(2 beta))")
    seed: int = option(0, help="random seed of everything (prompt order, sampling, annotation noise, init)")
    out: str | None = option(None, help="run folder; null: runs/<task>-<method>-<loss>-b<beta>-s<seed>")
    policy: PolicyConfig = option(default_factory=PolicyConfig, help="the initial policy")
    sft: SFTConfig = option(default_factory=SFTConfig, help="optional supervised stage")
    lora: LoraSpec = option(default_factory=LoraSpec, help="the LoRA ensemble")
    schedule: ScheduleConfig = option(default_factory=ScheduleConfig, help="T, F, N, B")
    reference: ReferenceConfig = option(default_factory=ReferenceConfig, help="the loss's reference")
    sampling: SamplingSpec = option(default_factory=SamplingSpec, help="sampling of training pairs")
    annotator: AnnotatorConfig = option(default_factory=AnnotatorConfig, help="who labels the pairs")
    optim: OptimSpec = option(default_factory=OptimSpec, help="optimiser")
    eval: EvalConfig = option(default_factory=EvalConfig, help="evaluation")
    data: DataConfig = option(default_factory=DataConfig, help="labelled data from files")
    checkpoint: CheckpointConfig = option(default_factory=CheckpointConfig, help="checkpointing")

    def validate(self):
        if self.beta <= 0:
            raise ValueError("beta must be positive")
        s = self.resolved_schedule()  # raises ScheduleError (a ValueError) naming the keys
        if self.data.pairs and s.phases != 1:
            raise ValueError(f"data.pairs gives all labelled pairs up front, so schedule.phases must be 1 (use method=offline_dpo); got {s.phases}")
        if self.data.pairs and self.reference_kind() == "behavior":
            raise ValueError("data.pairs were not sampled by this policy, so there are no behavior log-probs; use method=offline_dpo or reference.kind=sft")
        if self.method == "offline_dpo" and s.phases != 1:
            raise ValueError(f"method=offline_dpo has one phase; got schedule.phases={s.phases} (use method=bpo for F > 1)")

    def resolved_schedule(self):
        s = self.schedule
        steps = s.steps if (s.steps is not None or s.pairs is not None) else DEFAULT_STEPS
        phases = s.phases
        if phases is None:  # the method's default: offline has one phase, the online methods one per step
            phases = 1 if self.method == "offline_dpo" else None
        if phases is None:
            phases = steps if steps is not None else max(1, s.pairs // (s.batch_size or 1))
        return resolve_schedule(steps, phases, s.pairs, s.batch_size)

    def reference_kind(self) -> str:
        if self.reference.kind != "auto":
            return self.reference.kind
        return "behavior" if self.method == "bpo" else "sft"

    def reduction(self) -> str:
        return LOSSES[self.loss].reduction if self.loss_reduction == "auto" else self.loss_reduction
