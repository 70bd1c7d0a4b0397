"""The online loop (BPO, Algorithm 1): phases -> sample -> annotate -> train -> evaluate.

    for each of the F phases (K = T/F steps apart):
        pi_beta <- pi_theta                      (reference.on_phase_start: BPO's behavior snapshot)
        M pairs sampled from pi_beta, labelled, reference log-probs stored with them
        K training steps, B pairs each, every pair used once
    evaluate pi_theta (and the initial policy) against the human references
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from bpo.buffer import PreferenceBuffer
from bpo.build import build_annotator, build_policy, build_reference, build_task
from bpo.config import RunConfig, SamplingSpec
from bpo.evaluate import EvalResult, evaluate_policy
from bpo.annotators.judges import load_judge
from bpo.losses import get_loss
from bpo.pairs import PromptStream, collect_pairs
from bpo.policy import MERGED, EnsemblePolicy
from bpo.rundir import RunDir
from bpo.train_step import EnsembleOptimizer, train_step
from bpo.types import make_batch


def run_online(cfg: RunConfig, run_dir: str | Path, progress: bool = True) -> dict:
    task = build_task(cfg)  # bad task files are refused before the run folder exists
    run = RunDir(run_dir)
    run.create(cfg)
    policy = build_policy(cfg, task, progress)
    annotator, reference = build_annotator(cfg, task), build_reference(cfg, policy)
    schedule, loss, reduction = cfg.resolved_schedule(), get_loss(cfg.loss), cfg.reduction()
    prompts, buffer = PromptStream(task.train, cfg.seed), PreferenceBuffer()
    optim = EnsembleOptimizer(policy, cfg.optim, schedule.steps)
    pad = policy.tokenizer.pad_token_id
    bar = tqdm(total=schedule.steps, desc="training", disable=not progress)
    for phase in schedule.iter_phases():
        started = time.time()
        reference.on_phase_start(policy, phase.first_step)  # BPO: pi_beta <- pi_theta
        pairs, stats = collect_pairs(
            policy, prompts, annotator, cfg.sampling, phase.index, phase.pairs, cfg.seed,
            cfg.annotator.max_attempts, task.chat_template, progress,
        )
        reference.label_pairs(policy, pairs)  # reference log-probs become data
        run.write_pairs(phase.index, pairs)
        buffer.add(pairs, seed=cfg.seed * 7919 + phase.index)
        for step in range(phase.first_step, phase.first_step + phase.steps):
            batch = make_batch(buffer.take(schedule.batch_size), pad)
            metrics = train_step(policy, optim, batch, reference.batch_logprobs(policy, batch), loss, cfg.beta, reduction)
            reference.on_step_end(policy, step)
            run.append(run.metrics, {"step": step, "phase": phase.index, **metrics.to_json()})
            bar.set_postfix(loss=f"{metrics.loss:.3f}", acc=f"{metrics.reward_accuracy:.2f}")
            bar.update()
        run.append(run.phases, {**asdict(stats), "seconds": round(time.time() - started, 2)})
    bar.close()
    policy.save(run.adapters)
    result = evaluate_run(cfg, policy, task, progress)
    run.write_eval(result)
    return result


def evaluate_run(cfg: RunConfig, policy: EnsemblePolicy, task, progress: bool = True) -> dict:
    """eval.json: the trained policy's win rate (top level) and, optionally, the initial policy's ('before')."""
    judge = load_judge(cfg.eval.judge, task)
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
