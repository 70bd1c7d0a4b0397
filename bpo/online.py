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
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bpo.buffer import PreferenceBuffer
from bpo.build import build_annotator, build_policy, build_reference, build_task
from bpo.checkpoint import Checkpoint, load_latest, save_checkpoint
from bpo.config import RunConfig
from bpo.evaluate import EvalResult, evaluate_policy
from bpo.judges import load_judge
from bpo.losses import get_loss
from bpo.pairs import PhaseStats, PromptStream, collect_pairs, pairs_from_file
from bpo.policy import MERGED, EnsemblePolicy
from bpo.prefdata import read_preferences
from bpo.rundir import RunDir
from bpo.stop import StopFlag, StopRequested
from bpo.train_step import EnsembleOptimizer, NonFiniteError, train_step
from bpo.types import Pair, make_batch


class TrainingDiverged(RuntimeError):
    """A NaN/inf loss or gradient; names the phase and step. Nothing was checkpointed after it."""


def run_online(cfg: RunConfig, run_dir: str | Path, progress: bool = True, resume: bool = False) -> dict:
    task = build_task(cfg)  # bad task and data files are refused before the run folder is touched
    if cfg.data.pairs:
        read_preferences(cfg.data.pairs)
    policy = build_policy(cfg, task, progress)
    annotator, reference = build_annotator(cfg, task), build_reference(cfg, policy)  # may refuse a reference
    run = RunDir(run_dir)
    run.open_for_resume() if resume else run.create(cfg)
    schedule, loss, reduction = cfg.resolved_schedule(), get_loss(cfg.loss), cfg.reduction()
    optim = EnsembleOptimizer(policy, cfg.optim, schedule.steps)
    start = restore(run, policy, optim, reference) if resume else 0
    run.forget_after(start)
    buffer, pad = PreferenceBuffer(), policy.tokenizer.pad_token_id
    window = math.ceil(cfg.annotator.max_attempts * schedule.pairs_per_phase)  # prompts a phase may use
    bar = tqdm(total=schedule.steps, initial=start, desc="training", disable=not progress)
    with StopFlag() as stop:
        for phase in schedule.iter_phases():
            if phase.first_step + phase.steps <= start:
                continue  # finished before the checkpoint we resumed from
            if phase.first_step >= start:
                reference.on_phase_start(policy, phase.first_step)  # BPO: pi_beta <- pi_theta
            pairs = phase_pairs(cfg, run, task, policy, annotator, reference, phase, window, progress)
            buffer.add(pairs, seed=cfg.seed * 7919 + phase.index)
            buffer.take(max(0, start - phase.first_step) * schedule.batch_size)  # trained before the checkpoint
            for step in range(max(start, phase.first_step), phase.first_step + phase.steps):
                batch = make_batch(buffer.take(schedule.batch_size), pad)
                try:
                    metrics = train_step(policy, optim, batch, reference.batch_logprobs(policy, batch), loss, cfg.beta, reduction)
                except NonFiniteError as err:
                    raise TrainingDiverged(f"phase {phase.index}, step {step}: {err}; stopped without checkpointing") from None
                reference.on_step_end(policy, step)
                run.append(run.metrics, {"step": step, "phase": phase.index, **metrics.to_json()})
                bar.set_postfix(loss=f"{metrics.loss:.3f}", acc=f"{metrics.reward_accuracy:.2f}")
                bar.update()
                done = step + 1
                if done == phase.first_step + phase.steps or (cfg.checkpoint.every and done % cfg.checkpoint.every == 0) or stop.requested:
                    state = Checkpoint(done, policy.member_states(), optim.state_dict(), reference.state_dict(), torch.get_rng_state(), buffer.cursor)
                    save_checkpoint(run.checkpoints, state)
                if stop.requested:
                    raise StopRequested(f"stopped after step {done} of {schedule.steps}; resume with: bpo train --resume {run.root}", stop.signum)
    bar.close()
    policy.save(run.adapters)
    result = evaluate_run(cfg, policy, task, progress)
    run.write_eval(result)
    return result


def phase_pairs(cfg: RunConfig, run: RunDir, task, policy, annotator, reference, phase, window: int, progress: bool) -> list[Pair]:
    """The phase's labelled pairs: read back if on disk (a resumed run never re-asks the annotator), taken
    from `data.pairs` (offline baselines), or sampled from the behavior policy and labelled now."""
    if run.pairs_file(phase.index).exists():
        return run.read_pairs(phase.index)
    started = time.time()
    if cfg.data.pairs:
        pairs = pairs_from_file(cfg.data.pairs, policy.tokenizer, phase.pairs, task.chat_template)
        stats = PhaseStats(phase.index, pairs=len(pairs), prompts=len(pairs))
    else:
        prompts = PromptStream(task.train, cfg.seed, phase.index * window)  # each phase its own prompt window
        pairs, stats = collect_pairs(
            policy, prompts, annotator, cfg.sampling, phase.index, phase.pairs, cfg.seed,
            cfg.annotator.max_attempts, task.chat_template, progress,
        )
    reference.label_pairs(policy, pairs)  # reference log-probs become data
    run.append(run.phases, {**asdict(stats), "seconds": round(time.time() - started, 2)})
    run.write_pairs(phase.index, pairs)  # durable before anything trains on it
    return pairs


def restore(run: RunDir, policy: EnsemblePolicy, optim: EnsembleOptimizer, reference) -> int:
    """Load the last complete checkpoint into the pieces; the step to continue from (0 if none)."""
    ckpt = load_latest(run.checkpoints)
    if ckpt is None:
        return 0
    policy.load_member_states(ckpt.members)
    optim.load_state_dict(ckpt.optimizer)
    reference.load_state_dict(policy, ckpt.reference)
    torch.set_rng_state(ckpt.rng)
    return ckpt.step


def evaluate_run(cfg: RunConfig, policy: EnsemblePolicy, task, progress: bool = True) -> dict:
    """eval.json: the trained policy's win rate (top level) and, optionally, the initial policy's ('before')."""
    judge = load_judge(cfg.eval.judge, task.judge)
    examples = task.eval[: cfg.eval.prompts]
    spec = cfg.eval.sampling(cfg.sampling)

    def one(slot) -> EvalResult:
        return evaluate_policy(policy, examples, judge, spec, slot, task.chat_template, cfg.eval.kl, cfg.seed, progress)

    after = one(MERGED).to_json()
    if cfg.eval.before:
        before = one(None).to_json()
        before.pop("kl_to_sft")
        after["before"] = before
    return after
