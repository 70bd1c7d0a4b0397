"""Evaluation: win rate of the policy's responses against the task's human reference texts.

The judge scores the policy's response and the reference for each held-out prompt; a strictly higher
score wins (1), an equal score ties (1/2). The reported win rate is the mean over prompts with a 95%
percentile-bootstrap interval. A score-based judge sees each text on its own, so the order in which
the two are presented cannot bias it. Also reported: the mean judge score, and a Monte-Carlo estimate
of KL(pi_theta || pi_sft) = E_{y ~ pi_theta}[log pi_theta(y|x) - log pi_sft(y|x)] from one sampled
response per prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from bpo.configlib import option
from bpo.policy import MERGED, EnsemblePolicy
from bpo.sampler import SamplingSpec, generate
from bpo.scoring import response_logprobs
from bpo.tasks.base import Example, Judge
from bpo.tokens import encode_prompt


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


def win_outcomes(scores: Sequence[float], reference_scores: Sequence[float]) -> np.ndarray:
    """1 where the response beats the reference, 0.5 on a tie, 0 otherwise."""
    s, r = np.asarray(scores, dtype=float), np.asarray(reference_scores, dtype=float)
    return (s > r) + 0.5 * (s == r)


def bootstrap_interval(values: Sequence[float], resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


@dataclass
class EvalResult:
    win_rate: float
    ci_low: float
    ci_high: float
    n: int
    mean_score: float
    mean_reference_score: float
    kl_to_sft: float | None
    examples: list[dict] = field(default_factory=list)  # prompt, response, reference and their scores

    def to_json(self) -> dict:
        return asdict(self)


def evaluate_policy(
    policy: EnsemblePolicy,
    examples: Sequence[Example],
    judge: Judge,
    spec: SamplingSpec,
    slot: str | None = MERGED,
    chat_template: bool = False,
    estimate_kl: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Evaluate the policy in `slot` (MERGED: the trained policy; None: the initial SFT policy)."""
    tok = policy.tokenizer
    prompt_ids = [encode_prompt(tok, ex.prompt, chat_template) for ex in examples]
    prompts = [ex.prompt for ex in examples]
    with torch.random.fork_rng(devices=[]), policy.use(slot) as model:
        torch.manual_seed(seed)
        responses = [r[0] for r in generate(model, tok, prompt_ids, 1, spec, desc="evaluating" if progress else None)]
        kl = None
        if estimate_kl:
            samples = [r[0] for r in generate(model, tok, prompt_ids, 1, replace(spec, greedy=False, temperature=1.0, top_p=1.0))]
    if estimate_kl:
        with policy.use(None) as sft:
            sft_logp = response_logprobs(sft, prompt_ids, [s.ids for s in samples], tok.pad_token_id)
        kl = float(np.mean([s.logp for s in samples]) - sft_logp.mean().item())
    scores = judge(prompts, [r.text for r in responses])
    ref_scores = judge(prompts, [ex.reference for ex in examples])
    wins = win_outcomes(scores, ref_scores)
    low, high = bootstrap_interval(wins, seed=seed)
    return EvalResult(
        win_rate=float(wins.mean()), ci_low=low, ci_high=high, n=len(wins),
        mean_score=float(np.mean(scores)), mean_reference_score=float(np.mean(ref_scores)), kl_to_sft=kl,
        examples=[
            {"prompt": p, "response": r.text, "reference": ex.reference, "score": s, "reference_score": rs}
            for p, r, ex, s, rs in zip(prompts, responses, examples, scores, ref_scores)
        ],
    )
