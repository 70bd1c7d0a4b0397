"""The online loop (BPO, Algorithm 1): phases -> sample -> annotate -> train -> evaluate.

    for each of the F phases (K = T/F steps apart):
        pi_beta <- pi_theta                      (reference.on_phase_start: BPO's behavior snapshot)
        M pairs sampled from pi_beta, labelled, reference log-probs stored with them, written to disk
        K training steps, B pairs each, every pair used once; checkpoint at the phase's end
    evaluate pi_theta (and the initial policy) against the human references

A resumed run restarts from the last complete checkpoint: pairs already on disk are read back, never
re-sampled or re-labelled, and every random choice is seeded by (seed, phase), so the resumed run
trains on the same pairs in the same order as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bpo.common.cachefolder import cache_dir
from bpo.common.configlib import ConfigError
from bpo.common.jsonl import read_log
from bpo.common.seeds import PROCESS_STREAM, derive_seed
from bpo.common.stop import GuardStop, StopFlag, StopRequested
from bpo.core.losses import bind_loss
from bpo.core.schedule import Phase, Schedule
from bpo.data.datafiles import naming_setting
from bpo.data.prefdata import read_preferences
from bpo.data.records import Pair, make_batch
from bpo.data.task import Judge, Task
from bpo.evaluation import guard
from bpo.evaluation.evaluate import evaluate_policy
from bpo.judging.judges import JudgeStop
from bpo.judging.pairs import PhaseStats, PromptStream, collect_pairs, pairs_from_file
from bpo.loop.build import build_judges, build_reference, build_task, load_base
from bpo.loop.config import RunConfig
from bpo.loop.preflight import base_tokenizer, check_pairs_file, check_reference, fit_task, probe_judges
from bpo.model.device import resolve_device, rng_states, set_rng_states
from bpo.model.distributed import SINGLE, Ranks, join
from bpo.model.policy import MERGED, EnsemblePolicy
from bpo.model.scoring import pair_logprobs
from bpo.run.checkpoint import Checkpoint, load_latest, read_settings
from bpo.run.rundir import FollowerRunDir, RunDir, RunDirError
from bpo.run.runlog import RunLog, phase_time
from bpo.training.buffer import phase_batches
from bpo.training.learners import Learners, one_learner
from bpo.training.players import PlayerReference, two_players
from bpo.training.reference import ReferenceStrategy
from bpo.training.train_step import EnsembleOptimizer, NonFiniteError, StepMetrics, train_step


class TrainingDiverged(RuntimeError):
    """A NaN/inf loss or gradient; names the phase and step. Nothing was checkpointed after it."""


def run_online(cfg: RunConfig, run_dir: str | Path | RunDir, progress: bool = True, resume: bool = False) -> dict:
    """Train as BPO's Algorithm 1 (any method: the reference strategy and F make the difference); eval.json.
    The run folder is locked to this process while it trains (RunDir.lock): a second one is refused."""
    ranks = join(cpu=resolve_device(cfg.policy.device).type == "cpu")  # one process, or several (bpo.model.distributed)
    run = (
        run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    )  # the caller's: it can see whether this process created it
    with run if ranks.main else FollowerRunDir(run.root) as run:  # locked by this process until it returns
        return train_and_evaluate(open_session(cfg, run, resume, progress and ranks.main, ranks), progress)


def train_and_evaluate(s: Session, progress: bool) -> dict:
    """The loop of the module docstring on an opened session, from its checkpoint on; then the final evaluation."""
    cfg = s.cfg
    s.evaluate_if_due(
        s.start
    )  # a resumed run logs again its checkpoint's learning-curve point (dropped with the logs from there on)
    s.log_phase_time_if_ended(s.start)  # and the time of the phase that ended there
    bar = tqdm(total=s.schedule.steps, initial=s.start, desc="training", disable=not progress)
    done = s.start
    with StopFlag() as stop:
        try:
            for phase in s.schedule.phases_from(s.start):
                if phase.first_step >= s.start:  # (a resumed run restored the reference of a started phase)
                    s.reference.on_phase_start(s.policy, phase.first_step)  # BPO: pi_beta <- pi_theta
                pairs = phase_pairs(s, phase, progress)  # sampled from pi_beta, labelled, on disk
                batches = phase_batches(pairs, s.schedule.batch_size, cfg.seed, phase.index)
                for step in phase.steps_from(s.start):
                    batch = s.learners.batch_of(step - phase.first_step, len(batches))  # IOPO: the player's own
                    metrics = s.train(step, phase, batch, s.ranks.share(batches[batch]))  # or this process's share
                    done = step + 1
                    bar.set_postfix(loss=f"{metrics.loss:.3f}", acc=f"{metrics.reward_accuracy:.2f}")
                    bar.update()
                    s.evaluate_if_due(step + 1)  # eval.every: a learning-curve point, before the checkpoint
                    if s.schedule.checkpoint_due(step + 1, cfg.checkpoint.every) or stop.requested:
                        s.checkpoint(step + 1)
                    if stop.requested:
                        raise StopRequested(
                            f"stopped after step {step + 1} of {s.schedule.steps}; resume with: bpo train --resume "
                            f"{s.run.root}",
                            stop.signum,
                        )
                s.log_phase_time_if_ended(phase.end)
        except JudgeStop as err:  # a judge timed out, or a signal came while it answered
            raise s.stopped_in_judge(err, done) from None
    bar.close()
    for learner in s.learners:  # IOPO: the protagonist's adapters under the policy's names, the adversary's as nu_*
        s.run.save_adapters(learner.policy)
    result = s.ranks.broadcast(evaluate_run(cfg, s.policy, s.task, s.eval_judge, progress) if s.ranks.main else None)
    result["guard"] = s.final_guard(result)
    s.run.write_eval(result)
    s.log.write("evals", {"step": s.schedule.steps, **eval_scalars(result)}, s.schedule.steps)
    s.log.close()
    return result


@dataclass
class Session:
    """The pieces of one run, built and checked before its folder is touched, and where it stands."""

    cfg: RunConfig
    run: RunDir  # a FollowerRunDir on the processes after rank 0: they write nothing
    task: Task
    learners: Learners  # one (BPO and the baselines) or two (IOPO's players)
    annotator: object  # bpo.judging.annotators.Annotator
    eval_judge: Judge  # loaded once: the learning-curve points and the final evaluation
    reference: ReferenceStrategy
    schedule: Schedule
    start: int  # training steps already done (restored from the last checkpoint)
    ranks: Ranks = SINGLE  # this process among those of a multi-process run (bpo.model.distributed)
    resumed: bool = False
    # The collapse guard (bpo.evaluation.guard): the initial policy's row on the learning-curve prompts (read
    # back from evals.jsonl on resume) and the checks that already stopped the run. Its flags and points live in
    # evals.jsonl, so a resumed run reports them too.
    guard_start: dict | None = None
    acknowledged: set = field(default_factory=set)
    checkpointed: int = 0  # the step of the last checkpoint this session wrote
    given_pairs: list | None = None  # data.pairs as read and checked at the start (read once: a pipe, an edit)

    @property
    def policy(self) -> EnsemblePolicy:
        """The run's policy: the one sampled from, evaluated and exported (IOPO: the protagonist)."""
        return self.learners.main.policy

    @cached_property
    def log(self) -> RunLog:
        """Where every record of the run goes (metrics.jsonl, phases.jsonl, evals.jsonl, TensorBoard)."""
        return self.run.open_log(self.cfg.log, self.start)

    def train(self, step: int, phase: Phase, batch: int, pairs: list[Pair]) -> StepMetrics:
        """One optimiser step of the learner whose turn it is, on the phase's batch number `batch` against its
        reference; logged to metrics.jsonl."""
        started = time.perf_counter()
        try:
            metrics = optimizer_step(self.learners, self.reference, step, pairs, self.ranks)
        except NonFiniteError as err:
            learner = self.learners.turn(step)
            who = f" ({learner.name})" if len(self.learners) > 1 else ""
            raise TrainingDiverged(
                f"phase {phase.index}, step {step}{who}: {err}; stopped without checkpointing"
            ) from None
        row = {
            "step": step,
            "phase": phase.index,
            "batch": batch,
            **self.learners.step_fields(step),
            **metrics.to_json(),
            "seconds": round(time.perf_counter() - started, 3),
        }
        self.log.write("metrics", row, step)
        return metrics

    def evaluate_if_due(self, done: int) -> None:
        """eval.every: after every k-th step, the policy on the first eval.every_prompts held-out prompts, a row of
        evals.jsonl at `done` steps (with the phase, which the final evaluation's row has not). Sampling is seeded
        by the run seed in a forked RNG: training is unchanged, and every point answers the same prompts with
        the same random numbers."""
        cfg = self.cfg
        if not (cfg.eval.every and done and done % cfg.eval.every == 0):
            return
        result = self.curve_evaluation(MERGED, cfg.eval.kl)
        phase = self.schedule.phase_of_step(done - 1)
        row = {"step": done, "phase": phase, **eval_scalars(result.to_json())}
        flags = guard.assess(guard.Point.of(done, row), self.curve_start(), cfg.guard)
        if flags:
            row["guard"] = [f.to_json() for f in flags]
        self.log.write("evals", row, done)
        self.on_flags(flags, done, resumed_point=self.resumed and done == self.start)

    def curve_evaluation(self, adapters, kl: bool, cache=None):
        """The policy (`adapters`: MERGED) or the initial policy (None) on the learning curve's prompts, the
        run seed's sampling: every point answers the same prompts with the same random numbers."""
        cfg = self.cfg
        return evaluate_policy(
            self.policy,
            self.task.split(cfg.eval.split)[: cfg.eval.every_prompts],
            self.eval_judge,
            cfg.eval.sampling(cfg.sampling),
            adapters,
            self.task.chat_template,
            kl,
            cfg.seed,
            progress=False,
            cache=cache,
        )

    def curve_start(self) -> guard.Point | None:
        """The initial policy's evaluation on the learning-curve prompts, the guard's start: evaluated once (a
        row of evals.jsonl at step 0 marked "initial", which learning curves skip), read back on resume."""
        cfg = self.cfg
        if self.guard_start is None:
            if not cfg.eval.before:
                return None
            cache = cache_dir() / "initial-responses" if cfg.eval.cache_before else None
            result = self.curve_evaluation(None, False, cache)
            self.guard_start = {"step": 0, "initial": True, **eval_scalars(result.to_json())}
            self.guard_start.pop("kl_to_sft", None)
            self.log.write("evals", self.guard_start, 0)
        return guard.Point.of(0, self.guard_start)

    def on_flags(self, flags: list, done: int, resumed_point: bool = False) -> None:
        """Say each flag at once (one line), and stop resumably if asked to (after a checkpoint), once per
        check: the point a resumed run starts from only warns, and so do the checks that stopped it before."""
        guard.warn(flags)
        if resumed_point:
            self.acknowledged |= {f.check for f in flags}
            return
        new = [f for f in flags if f.check not in self.acknowledged]
        if new and self.cfg.guard.on_collapse == "stop":
            self.checkpoint(done)
            raise GuardStop(
                f"collapse guard: {new[0].message}; stopped after step {done} (guard.on_collapse=stop): "
                f"{new[0].advice}; continue anyway with: bpo train --resume {self.run.root}"
            )

    def final_guard(self, result: dict) -> dict:
        """eval.json's "guard" section (bpo.evaluation.guard.final_guard), its new flags said."""
        section, new = guard.final_guard(
            result, curve_rows(self.run), self.schedule.steps, self.cfg.guard, phase_rows(self.run)
        )
        self.on_flags(new, self.schedule.steps, resumed_point=True)  # the run is over: nothing left to stop
        return section

    def log_phase_time_if_ended(self, done: int) -> None:
        """When `done` steps end a phase (after its checkpoint): the phase's wall time split into sampling,
        annotation and training, a row of phase_times.jsonl at `done` (TensorBoard phase_times/...). It is
        read from the run's own logs, so a phase that a resume split in two counts the steps of both."""
        if not (done and self.schedule.is_phase_start(done) and self.log.records):
            return
        phase = self.schedule.phase_of_step(done - 1)
        row = {"step": done, **phase_time(phase, read_log(self.run.phases), read_log(self.run.metrics))}
        kl = self.kl_to_behavior(phase)
        flags = [] if kl is None else guard.assess_phase(phase, done, kl, self.cfg.guard)
        if kl is not None:
            row["kl_to_behavior"] = kl
        if flags:
            row["guard"] = [f.to_json() for f in flags]
        self.log.write("phase_times", row, done)
        self.on_flags(flags, done, resumed_point=self.resumed and done == self.start)

    def kl_to_behavior(self, phase: int) -> float | None:
        """The collapse guard's phase-end check: the policy now against the behavior policy that sampled
        the phase's pairs, on those pairs' responses (bpo.evaluation.guard.kl_to_behavior); None for given pairs
        (data.pairs: no behavior log-probs) and when guard.phase_kl_pairs is 0. It scores the phase's first
        guard.phase_kl_pairs pairs: they are in the random order they were sampled in."""
        wanted = self.cfg.guard.phase_kl_pairs
        pairs = self.run.read_pairs(phase)[:wanted] if wanted else []
        if not pairs or any(p.behavior_chosen_logp is None or p.behavior_rejected_logp is None for p in pairs):
            return None
        with self.policy.use(MERGED) as model, torch.no_grad():
            current = pair_logprobs(model, pairs, self.policy.tokenizer.pad_token_id)
        behavior = [lp for p in pairs for lp in (p.behavior_chosen_logp, p.behavior_rejected_logp)]
        return round(guard.kl_to_behavior(behavior, [lp for both in current for lp in both]), 6)

    def stopped_in_judge(self, err: JudgeStop, done: int) -> StopRequested:
        """The stop to raise when a judge's call stops the run after `done` steps: the steps since the last
        checkpoint are checkpointed (a phase's pairs not yet labelled are sampled again on resume, the same),
        and the message says how to resume. A run with nothing stored yet keeps `err`: it is removed
        (bpo.api.after_failure), and the same command starts it again."""
        if done > max(self.checkpointed, self.start):  # (the start: a checkpoint of that step was restored)
            self.checkpoint(done)
        if not self.run.has_work():
            return err
        stop = StopRequested(
            f"{err}; stopped after step {done} of {self.schedule.steps}; resume with: bpo train --resume "
            f"{self.run.root}",
            err.signum,
        )
        stop.exit_code = err.exit_code
        return stop

    def checkpoint(self, done: int) -> None:
        """Every learner's members and optimisers, the reference's state and the random streams."""
        state = Checkpoint(
            done,
            self.learners.member_states(),
            self.learners.optimizer_state(),
            self.reference.state_dict(),
            rng_states(self.policy.device),
        )
        self.run.save_checkpoint(state)
        self.checkpointed = done


def open_session(cfg: RunConfig, run: RunDir, resume: bool, progress: bool, ranks: Ranks = SINGLE) -> Session:
    """Build and check every piece, then create (or reopen) the run folder and restore its checkpoint.

    Everything that can refuse the input (run folder, task, data and model files, prompt lengths, the
    SFT stage, judges called once, reference) runs before the folder is created (bpo.loop.preflight), so a
    refused command leaves nothing behind.
    """
    inputs = checked_inputs(cfg, run, resume, progress, ranks)
    model, tokenizer, fine_tuned_now = load_base(cfg, inputs.task, run.sft_base, progress)
    if not resume:
        run.create(cfg)
    if fine_tuned_now:  # before the adapters are put into the model: the plain base is saved
        run.save_sft_base(model, tokenizer)  # eval, export and resume use this base, not a new SFT
    schedule = cfg.resolved_schedule()
    learners, reference = build_learners(cfg, model, tokenizer, schedule)
    policy = learners.main.policy
    set_rng_states(
        policy.training_rng, policy.device
    )  # training's random stream starts where the adapters' seeded initialisation ended
    start = restore(run, learners, reference)
    run.forget_after(start)
    rows = read_log(run.evals) if resume and run.evals.is_file() else []
    initial = next((r for r in rows if r.get("initial")), None)  # the guard's start, evaluated before the stop
    return Session(
        cfg,
        run,
        inputs.task,
        learners,
        inputs.annotator,
        inputs.eval_judge,
        reference,
        schedule,
        start,
        ranks,
        resume,
        initial,
        given_pairs=inputs.records,
    )


@dataclass(frozen=True)
class CheckedInputs:
    """What a run reads before its weights: each piece checked (bpo.loop.preflight), no folder touched."""

    task: Task
    records: list | None  # data.pairs as read and checked (None: sampled, or already stored in the run)
    annotator: object
    eval_judge: Judge


def checked_inputs(
    cfg: RunConfig, run: RunDir, resume: bool, progress: bool, ranks: Ranks = SINGLE, store_answers: bool = True
) -> CheckedInputs:
    """The run folder, task, data and model files, prompt lengths, reference and judges (each called once),
    checked in that order, cheapest first; shared by a run and its dry run (bpo.loop.dryrun), which makes no
    folder and so keeps no LLM judge's answers (store_answers=False)."""
    run.check_resumable() if resume else run.check_new()
    check_batch_shares(cfg, ranks)
    if resume:
        run.lock()  # (a new run takes it when it creates the folder)
        run.check_settings(cfg, read_settings(run.checkpoints))  # config.yaml edited since the start?
    task = build_task(cfg, run.sft_base)
    records = None
    if cfg.data.pairs and not run.pairs_file(0).exists():
        with naming_setting("data.pairs"):
            records = read_preferences(cfg.data.pairs)
    base = base_tokenizer(cfg, task, run.sft_base, progress)  # no weights read yet
    check_reference(cfg)
    task = fit_task(cfg, task, base)
    if records is not None:
        check_pairs_file(cfg, cfg.data.pairs, records, base, task.chat_template)
    annotator, eval_judge = build_judges(cfg, task, run.root if store_answers else None)
    probe_judges(task, annotator, eval_judge)  # each judge once on a sample, before any weight is loaded
    return CheckedInputs(task, records, annotator, eval_judge)


def build_learners(cfg: RunConfig, model, tokenizer, schedule: Schedule) -> tuple[Learners, ReferenceStrategy]:
    """The LoRA ensemble on `model`, its optimiser and loss (IOPO: two players on one base, each the other's
    reference, bpo.training.players), and the reference strategy of the method."""
    reference = build_reference(cfg, tokenizer)
    policy = EnsemblePolicy(model, tokenizer, cfg.lora, seed=cfg.seed)
    if cfg.policy.gradient_checkpointing:
        policy.checkpoint_activations()
    if cfg.method == "iopo":
        learners = two_players(policy, cfg.iopo, cfg.optim, cfg.beta, cfg.seed)
        return learners, PlayerReference(learners)
    loss = bind_loss(cfg.loss, cfg.beta, cfg.loss_reduction)
    return one_learner(policy, EnsembleOptimizer(policy, cfg.optim, schedule.steps), loss), reference


def optimizer_step(
    learners: Learners, reference: ReferenceStrategy, step: int, pairs: list[Pair], ranks: Ranks = SINGLE
) -> StepMetrics:
    """One optimiser step of the learner whose turn it is at `step`, on `pairs` against its reference."""
    learner = learners.turn(step)
    batch = make_batch(pairs, learner.policy.tokenizer.pad_token_id).to(learner.policy.device)
    ref_logp = reference.batch_logprobs(learner.policy, batch)
    metrics = train_step(learner.policy, learner.optim, batch, ref_logp, learner.loss, ranks=ranks)
    reference.on_step_end(learner.policy, step)
    return metrics


def check_batch_shares(cfg: RunConfig, ranks: Ranks) -> None:
    """Each process takes an equal share of every batch, and with lora.training=disjoint each share splits
    evenly over the members (bpo.training.train_step._passes). The one place this rule is checked:
    before anything is built, not at the first step."""
    batch, members, world = cfg.resolved_schedule().batch_size, cfg.lora.ensemble, ranks.world
    if batch % world:
        raise ConfigError(
            f"schedule.batch_size={batch} does not split evenly over {world} processes: make it a multiple of {world}"
        )
    if cfg.lora.training != "disjoint" or (batch // world) % members == 0:
        return
    if world == 1:
        raise ConfigError(
            f"lora.training=disjoint trains each of the lora.ensemble={members} members on its own equal share of "
            f"a batch: schedule.batch_size={batch} must be a multiple of {members}"
        )
    raise ConfigError(
        f"lora.training=disjoint on {world} processes: each process's {batch // world} pairs per step must split "
        f"evenly over lora.ensemble={members} members; make schedule.batch_size a multiple of {world * members}"
    )


def phase_pairs(s: Session, phase: Phase, progress: bool) -> list[Pair]:
    """The phase's labelled pairs: read back if on disk (a resumed run never re-asks the annotator), taken
    from `data.pairs` (offline baselines), or sampled from the behavior policy and labelled now."""
    if s.run.pairs_file(phase.index).exists():
        return s.run.read_pairs(phase.index)
    started = time.time()
    cfg = s.cfg
    if cfg.data.pairs:
        pairs = pairs_from_file(cfg.data.pairs, s.policy.tokenizer, phase.pairs, s.task.chat_template, s.given_pairs)
        stats = PhaseStats(phase.index, pairs=len(pairs), prompts=len(pairs))
    else:
        window = math.ceil(cfg.annotator.max_attempts * phase.pairs)  # prompts a phase may use
        # each phase its own prompt window; several processes: each its part of it, and its own random stream
        prompts = PromptStream(s.task.train, cfg.seed, phase.index * window + s.ranks.offset(window))
        if s.annotator is None:  # people label the stored pairs, across restarts (annotator.kind=human/external)
            from bpo.annotate.phase import rated_pairs

            pairs, stats = rated_pairs(s.policy, prompts, s.run.root, cfg, phase, s.task.chat_template, progress)
        else:
            pairs, stats = collect_pairs(
                s.policy,
                prompts,
                s.annotator,
                cfg.sampling,
                phase.index,
                s.ranks.count(phase.pairs),
                derive_seed(cfg.seed, s.ranks.rank, weights=PROCESS_STREAM),
                cfg.annotator.max_attempts,
                s.task.chat_template,
                progress,
            )
    s.reference.label_pairs(s.policy, pairs)  # reference log-probs become data
    if s.ranks.world > 1:
        pairs, stats = gathered(s.ranks, phase, pairs, stats)
    s.log.write("phases", {**asdict(stats), "seconds": round(time.time() - started, 2)}, phase.first_step)
    s.run.write_pairs(phase.index, pairs)  # durable before anything trains on it
    return pairs


def gathered(ranks: Ranks, phase: Phase, pairs: list[Pair], stats: PhaseStats) -> tuple[list[Pair], PhaseStats]:
    """Every process's pairs (rank order, numbered as one process numbers them) and their summed counts
    (the seconds: the slowest process's)."""
    pairs = ranks.gather(pairs)
    for i, pair in enumerate(pairs):
        pair.id = f"p{phase.index:03d}-{i:05d}"
    every = ranks.gather([stats])
    total = PhaseStats(phase.index)
    for name, value in asdict(total).items():
        if name != "phase":
            values = [getattr(one, name) for one in every]
            setattr(total, name, max(values) if name.endswith("seconds") else sum(values))
    return pairs, total


def restore(run: RunDir, learners: Learners, reference: ReferenceStrategy) -> int:
    """Load the last complete checkpoint into the pieces; the step to continue from (0 if none)."""
    ckpt = load_latest(run.checkpoints)
    if ckpt is None:
        return 0
    try:
        learners.load_member_states(ckpt.members)
        learners.load_optimizer_state(ckpt.optimizer)
    except (KeyError, ValueError, RuntimeError) as err:  # other layers or shapes than the policy's
        raise RunDirError(
            f"{run.checkpoints}: the step-{ckpt.step} checkpoint does not fit the policy ({str(err)[:120]}); "
            "does policy.path still name the model this run started from?"
        ) from None
    reference.load_state_dict(learners.main.policy, ckpt.reference)
    set_rng_states(ckpt.rng if isinstance(ckpt.rng, dict) else {"torch_cpu": ckpt.rng}, learners.main.policy.device)
    return ckpt.step


def curve_rows(run: RunDir) -> list[dict]:
    """evals.jsonl's evaluations during training (eval.every), in order: the rows with a phase."""
    return [r for r in read_log(run.evals) if "phase" in r] if run.evals.is_file() else []


def phase_rows(run: RunDir) -> list[dict]:
    """phase_times.jsonl's rows: each phase's time and, with the collapse guard, its kl_to_behavior."""
    return read_log(run.phase_times) if run.phase_times.is_file() else []


def eval_scalars(result: dict) -> dict:
    """An eval.json result without its example texts: the numbers a log records for each evaluation."""
    return {k: eval_scalars(v) if k == "before" else v for k, v in result.items() if k != "examples"}


def evaluate_run(cfg: RunConfig, policy: EnsemblePolicy, task, judge: Judge, progress: bool = True) -> dict:
    """eval.json: the trained policy's win rate (top level) and, optionally, the initial policy's ('before'),
    under the evaluation judge (bpo.loop.build.build_eval_judge)."""
    examples = task.split(cfg.eval.split)[: cfg.eval.prompts]
    spec = cfg.eval.sampling(cfg.sampling)

    after = evaluate_policy(
        policy, examples, judge, spec, MERGED, task.chat_template, cfg.eval.kl, cfg.seed, progress
    ).to_json()
    if cfg.eval.before:  # the initial policy: no KL to itself; its responses cached (bpo.evaluation.evalcache)
        cache = cache_dir() / "initial-responses" if cfg.eval.cache_before else None
        before = evaluate_policy(
            policy, examples, judge, spec, None, task.chat_template, False, cfg.seed, progress, cache
        ).to_json()
        before.pop("kl_to_sft")
        after["before"] = before
    return after
