"""`bpo train --dry-run`: what a run will do and what it will cost, before it starts.

Everything a run checks is checked (bpo.loop.online.checked_inputs: the run folder, task, data, model,
prompt lengths, reference, each judge called once), the model is loaded, and a short probe does a few of
the run's own operations at its own sizes: one generation call of pairs from the policy
(sampling.batch_size prompts, or M if fewer) labelled by the annotator, their log-probs under the
reference, two optimiser steps of B pairs (IOPO: the players' first turns), two steps of the SFT stage if
there is one. The counts come from the configuration alone (`plan_counts`, a pure function, equal to what
a real run does when no pair is resampled); the time is the probe's unit costs times the run's numbers of
units, so it holds for a machine as busy as it was during the probe; the peak memory is the probe's (the
training step at its full batch and, with an SFT stage, full fine-tuning set it). Nothing is written: no
run folder, no stored pairs; adapters and base are thrown away after.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import sys
import time
from dataclasses import dataclass
from itertools import cycle, islice

import torch

from bpo.common.seeds import PROCESS_STREAM, derive_seed
from bpo.core.schedule import Schedule
from bpo.evaluation.evaluate import LLM_JUDGES
from bpo.judging.annotators import Label
from bpo.judging.pairs import ANNOTATION_CHUNK, PromptStream, collect_pairs
from bpo.loop.build import load_base
from bpo.loop.config import RunConfig
from bpo.run.rundir import RunDir

PROBE_STEPS = 2  # optimiser steps timed; the last one counts (the first pays for allocations)


@dataclass(frozen=True)
class PlanCounts:
    """What a run of the configuration does, counted from the configuration and the task's split sizes."""

    steps: int  # T
    phases: int  # F
    steps_per_phase: int  # K = T / F
    pairs_per_phase: int  # M = N / F
    pairs: int  # N = T * B, each trained on once
    batch_size: int  # B
    adapters: int  # LoRA adapters in the ensemble
    labels: int  # labels asked of the annotator: N (x annotator.overlap for people); 0 when data.pairs gives them
    annotator_calls: int  # calls of the annotator's judge (a scorer, a reward model: one per chunk; llm: requests)
    annotator_responses: int  # responses the annotator's scorer scores (2 per pair)
    eval_points: int  # evaluations: the final one, the initial policy's, the learning curve's points
    eval_prompts: tuple[int, ...]  # the prompts each of them answers
    # calls of the evaluation judge: a scorer 2 per evaluation (the responses, then the references); an LLM judge
    # 2 requests per response (both orders against its reference), at most: a question already asked is read back
    eval_calls: int
    eval_responses: int  # texts a scorer scores; responses an LLM judge compares with their references
    sft_steps: int  # steps of the SFT stage before training (0: none)


def plan_counts(cfg: RunConfig, schedule: Schedule, eval_examples: int, curve_examples: int) -> PlanCounts:
    """The counts of a run (see PlanCounts), assuming no pair is resampled (identical responses and ties make
    the annotator's counts a lower bound, annotator.max_attempts times it at most). Both judges are also called
    once on two examples before the run starts (bpo.loop.preflight.probe_judges), which is counted.

    eval_examples / curve_examples: the prompts the final and the learning-curve evaluations use (eval.prompts
    and eval.every_prompts, capped by the split's size)."""
    kind = cfg.annotator.kind
    sampled = 0 if cfg.data.pairs else schedule.pairs  # pairs the annotator labels
    people = kind in ("human", "external")
    labels = sampled * (cfg.annotator.overlap if people else 1)
    if people:
        calls, responses = 0, 0
    elif kind in ("llm", "llm_local"):
        calls, responses = 2 * sampled, 0  # both orders of every pair, one request (or forward pass) each
    else:
        chunks = math.ceil(schedule.pairs_per_phase / ANNOTATION_CHUNK) if sampled else 0
        calls, responses = schedule.phases * chunks, 2 * sampled
    probe = 0 if people else 1  # probe_judges: the annotator's judge once (an LLM judge: one question)
    ev = cfg.eval
    curve = schedule.steps // ev.every if ev.every else 0
    curve_start = 1 if curve and ev.before else 0  # the collapse guard's start: the initial policy, once
    points = [eval_examples] * (2 if ev.before else 1) + [curve_examples] * (curve + curve_start)
    if ev.judge in LLM_JUDGES:  # each response asked against its reference in both orders; the probe: one question
        eval_calls, eval_responses = 2 * sum(points) + 1, sum(points) + 1
    else:  # a scorer: the responses, then the references, per evaluation; the probe: two texts in one call
        eval_calls, eval_responses = 2 * len(points) + 1, 2 * sum(points) + 2
    return PlanCounts(
        steps=schedule.steps,
        phases=schedule.phases,
        steps_per_phase=schedule.steps_per_phase,
        pairs_per_phase=schedule.pairs_per_phase,
        pairs=schedule.pairs,
        batch_size=schedule.batch_size,
        adapters=cfg.lora.ensemble,
        labels=labels,
        annotator_calls=calls + probe,
        annotator_responses=responses + 2 * probe,
        eval_points=len(points),
        eval_prompts=tuple(points),
        eval_calls=eval_calls,
        eval_responses=eval_responses,
        sft_steps=cfg.sft.steps if cfg.sft.steps else 0,
    )


@dataclass(frozen=True)
class ProbeTimes:
    """Seconds measured by the probe, per unit of work."""

    sample_per_batch: float  # one generation call: sampling.batch_size prompts (M if fewer), two responses each
    label_per_pair: float  # the annotator on one pair (0 for people: their time is theirs)
    reference_per_pair: float  # the reference's log-probs of one pair
    train_step: float  # one optimiser step of B pairs
    sft_step: float  # one SFT step (0 without an SFT stage)
    eval_judge_per_response: float  # the evaluation judge on one text


def estimate_seconds(counts: PlanCounts, times: ProbeTimes, cfg: RunConfig) -> dict[str, float]:
    """The run's time by part, from the probe's unit costs: a generation call per sampling.batch_size prompts
    of each phase (F * ceil(M / batch) calls) and of each evaluation (one response per prompt: costed as a
    pair's call, an upper bound; twice with eval.kl, whose sample is a second call), the annotator and the
    reference per pair, T optimiser steps, the SFT steps, the evaluation judge per text."""
    batch = cfg.sampling.batch_size
    phase_calls = 0 if cfg.data.pairs else counts.phases * math.ceil(counts.pairs_per_phase / batch)
    eval_calls = sum(math.ceil(n / batch) for n in counts.eval_prompts) * (2 if cfg.eval.kl else 1)
    sampled = 0 if cfg.data.pairs else counts.pairs
    parts = {
        "sft": counts.sft_steps * times.sft_step,
        "sampling": phase_calls * times.sample_per_batch,
        "annotation": sampled * times.label_per_pair,
        "reference": counts.pairs * times.reference_per_pair,
        "training": counts.steps * times.train_step,
        "evaluation": eval_calls * times.sample_per_batch + counts.eval_responses * times.eval_judge_per_response,
    }
    return {**parts, "total": sum(parts.values())}


class _FirstPreferred:
    """The probe's stand-in for people (annotator.kind=human/external): a label for every pair, at once."""

    def label(self, prompts, first, second, seed=0):
        return [Label(0, (1.0, 0.0)) for _ in prompts]


def dry_run(cfg: RunConfig, folder, progress: bool = True) -> dict:
    """Check the run as `bpo train` would, probe it, and return its plan: counts, model, device, dtype, the
    probe's times and peak memory, the estimated seconds. `folder`: the run folder the run would make (checked,
    not created). Writes nothing."""
    from bpo.loop.online import build_learners, checked_inputs, optimizer_step

    run = RunDir(folder)
    inputs = checked_inputs(cfg, run, resume=False, progress=progress, store_answers=False)
    task = inputs.task
    schedule = cfg.resolved_schedule()
    counts = plan_counts(
        cfg,
        schedule,
        len(task.split(cfg.eval.split)[: cfg.eval.prompts]),
        len(task.split(cfg.eval.split)[: cfg.eval.every_prompts]),
    )
    model, tokenizer, _ = load_base(cfg, task, None, progress, finetune=False)
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sft_step = _time_sft(cfg, model, tokenizer, task) if counts.sft_steps else 0.0
    learners, reference = build_learners(cfg, model, tokenizer, schedule)
    policy = learners.main.policy
    reference.on_phase_start(policy, 0)
    n = min(cfg.sampling.batch_size, schedule.pairs_per_phase)  # one generation call, as the run makes them
    # people label (no annotator here), or the pairs are given: time sampling anyway (the evaluations sample)
    annotator = _FirstPreferred() if inputs.annotator is None or cfg.data.pairs else inputs.annotator
    stream = PromptStream(task.train, cfg.seed, 0)
    seed = derive_seed(cfg.seed, 0, weights=PROCESS_STREAM)  # as process 0 of a run samples
    pairs, stats = collect_pairs(
        policy, stream, annotator, cfg.sampling, 0, n, seed, cfg.annotator.max_attempts, task.chat_template, False
    )
    started = time.perf_counter()
    reference.label_pairs(policy, pairs)
    reference_per_pair = (time.perf_counter() - started) / len(pairs)
    batch = list(islice(cycle(pairs), schedule.batch_size))
    step_times = []
    for step in range(PROBE_STEPS):
        started = time.perf_counter()
        optimizer_step(learners, reference, step, batch)
        step_times.append(time.perf_counter() - started)
    examples = task.split(cfg.eval.split)[:2]
    started = time.perf_counter()
    prompts, references = [ex.prompt for ex in examples], [ex.reference for ex in examples]
    if hasattr(inputs.eval_judge, "against_references"):  # an LLM judge: one question (two orders) per response
        inputs.eval_judge.against_references(prompts, references, references)
    else:
        inputs.eval_judge(prompts, references)
    eval_judge_per_response = (time.perf_counter() - started) / max(1, len(examples))
    times = ProbeTimes(
        sample_per_batch=stats.sampling_seconds / max(1, math.ceil(stats.prompts / cfg.sampling.batch_size)),
        label_per_pair=0.0 if inputs.annotator is None or cfg.data.pairs else stats.annotation_seconds / len(pairs),
        reference_per_pair=reference_per_pair,
        train_step=step_times[-1],
        sft_step=sft_step,
        eval_judge_per_response=eval_judge_per_response,
    )
    return {
        "counts": dataclasses.asdict(counts),
        "method": cfg.method,
        "loss": cfg.loss,
        "model": cfg.policy.path or f"the built-in {task.name} SFT model",
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "autocast": "bfloat16" if device.type == "cuda" else None,
        "peak_memory_bytes": _peak_memory(device),
        "probe": dataclasses.asdict(times),
        "seconds": estimate_seconds(counts, times, cfg),
        "run_folder": str(run.root),
    }


def _time_sft(cfg: RunConfig, model, tokenizer, task) -> float:
    """Seconds of one SFT step at the configured batch (the last of PROBE_STEPS), on the base itself."""
    from bpo.training.sft import supervised_finetune

    times = []
    for i in range(PROBE_STEPS):
        started = time.perf_counter()
        supervised_finetune(
            model,
            tokenizer,
            task.demonstrations,
            steps=1,
            batch_size=cfg.sft.batch_size,
            lr=cfg.sft.lr,
            seed=cfg.seed + i,
            chat_template=task.chat_template,
            progress=False,
        )
        times.append(time.perf_counter() - started)
    return times[-1]


def _peak_memory(device: torch.device) -> int:
    """Bytes: the GPU's peak allocation on CUDA, else this process's peak resident memory."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS reports bytes, Linux KiB


def plan_text(plan: dict) -> str:
    """The plan as `bpo train --dry-run` prints it."""
    c, s = plan["counts"], plan["seconds"]
    gib = plan["peak_memory_bytes"] / 2**30
    lines = [
        f"dry run: nothing was written ({plan['run_folder']} would be the run folder)",
        f"method {plan['method']} ({plan['loss']}); model {plan['model']} ({plan['parameters'] / 1e6:.1f}M parameters)",
        f"device {plan['device']}, weights {plan['dtype']}"
        + (f", autocast {plan['autocast']}" if plan["autocast"] else ""),
        f"T = {c['steps']} steps, F = {c['phases']} phases, K = {c['steps_per_phase']} steps per phase, "
        f"M = {c['pairs_per_phase']} pairs per phase, N = {c['pairs']} pairs, B = {c['batch_size']}, "
        f"{c['adapters']} adapter(s)",
        f"annotations: {c['labels']} labels; annotator's judge: {c['annotator_calls']} calls, "
        f"{c['annotator_responses']} responses scored (more if pairs tie or repeat)",
        f"evaluation: {c['eval_points']} evaluations, evaluation judge: {c['eval_calls']} calls, "
        f"{c['eval_responses']} texts scored",
    ]
    if c["sft_steps"]:
        lines.append(f"SFT stage: {c['sft_steps']} steps")
    lines.append(f"peak memory (probe): {gib:.2f} GiB ({'GPU' if plan['device'].startswith('cuda') else 'resident'})")
    parts = ", ".join(f"{k} {_duration(v)}" for k, v in s.items() if k != "total" and v > 0)
    lines.append(
        f"estimated time: {_duration(s['total'])} ({parts}), scaled from a probe; people's labelling not included"
    )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
