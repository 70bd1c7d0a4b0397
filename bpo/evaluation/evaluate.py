"""Evaluation: win rate of the policy's responses against the task's human reference texts.

The judge scores the policy's response and the reference for each held-out prompt. Two win rates are
reported, each the mean over prompts with its own 95% percentile-bootstrap interval:

    win_rate         a strictly higher score counts 1, an equal score (a tie) 1/2, a lower one 0
    strict_win_rate  only a strictly higher score counts (ties count 0): the BPO paper's definition,
                     the one its numbers are comparable with

and tie_rate, the fraction of ties, so that win_rate = strict_win_rate + tie_rate / 2. A score-based
judge sees each text on its own, so the order in which the two are presented cannot bias it. Also
reported: the mean judge score, and a Monte-Carlo estimate of
KL(pi_theta || pi_sft) = E_{y ~ pi_theta}[log pi_theta(y|x) - log pi_sft(y|x)] from one sampled
response per prompt.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from bpo.common.configlib import option
from bpo.data.task import Example
from bpo.data.tokens import encode_prompt
from bpo.evaluation.evalcache import base_weights_digest, cached_responses, model_digest, responses_key
from bpo.evaluation.guard import answer_stats
from bpo.judging.judges import Judge
from bpo.model.device import forked_rng
from bpo.model.policy import MERGED, EnsemblePolicy
from bpo.model.sampler import SamplingSpec, generate
from bpo.model.scoring import response_logprobs

LLM_JUDGES = ("llm", "llm_local")  # eval.judge values that name an LLM pairwise judge (bpo.judging.llm)


@dataclass(frozen=True)
class EvalConfig:
    judge: str = option(
        "task",
        help="the evaluation judge (same forms as annotator.judge); keep it apart from the annotator where you can. "
        "Or llm / llm_local: an LLM judge asked, for each held-out prompt, whether the response or the reference "
        "is better, in both orders (a disagreement is a tie); its model is eval.llm_model (and eval.llm_base_url, "
        "eval.llm_api_key_env for llm), its request limits the annotator section's (concurrency, request_timeout, "
        "retries, backoff, max_tokens); answers kept in RUN_DIR/llm-eval-judge.jsonl",
    )
    llm_model: str | None = option(
        None,
        help="judge=llm: the model name the endpoint serves; judge=llm_local: a causal-LM folder or Hub id "
        "owner/name[@revision]",
    )
    llm_base_url: str | None = option(
        None,
        may_change_on_resume=True,
        help="judge=llm: the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 (may be the annotator's)",
    )
    llm_api_key_env: str | None = option(
        None,
        may_change_on_resume=True,
        help="judge=llm: the NAME of the environment variable holding the API key; null: no key",
    )
    llm_template: str | None = option(
        None,
        help="judge=llm, llm_local: a prompt template file with {prompt}, {response_a} and {response_b}; null: the "
        "default (bpo/judging/prompts/pairwise.txt)",
    )
    judge_timeout: float | None = option(
        None,
        help="seconds a call of eval.judge may take before the run stops (resumably, exit code 6) naming the "
        "judge; null: its kind's default, 600 for a Python judge ('task', module:function) and no limit for "
        "a reward model (it computes in this process); 0: no limit",
    )
    prompts: int = option(128, help="held-out prompts to evaluate on (at most the task's)")
    split: str = option(
        "heldout",
        help="the prompts evaluated on: heldout (the task's eval prompts, the test set) or dev (its dev prompts, "
        "disjoint from train, eval and SFT prompts: for choosing settings, as bpo reproduce chooses learning rates)",
    )
    greedy: bool = option(
        False,
        help="greedy responses instead of samples at eval.temperature (the BPO paper does not say how it decoded); "
        "on small models "
        "greedy win rates jump between 0 and 1 with the seed, so sampling is the default",
    )
    temperature: float = option(1.0, help="sampling temperature when greedy is false")
    kl: bool = option(True, help="estimate KL(policy || SFT) from one sampled response per prompt")
    before: bool = option(True, help="also evaluate the initial (SFT) policy, for the before/after comparison")
    cache_before: bool = option(
        True,
        help="keep the initial policy's responses in $BPO_CACHE/initial-responses and reuse them when the same "
        "weights answer the same prompts with the same settings and seed (the judge scores them again every time)",
    )
    every: int = option(
        0,
        help="also evaluate during training, after every this many steps (0: only at the end), on the first "
        "eval.every_prompts held-out prompts; each is a row of evals.jsonl (with its phase) at the number of "
        "steps done, for learning curves",
    )
    every_prompts: int = option(
        32,
        help="held-out prompts of each evaluation during training (eval.every); sampled or greedy as the final "
        "evaluation, KL estimate if eval.kl",
    )

    def validate(self):
        if self.judge in LLM_JUDGES:
            self._validate_llm()
        if self.split not in ("heldout", "dev"):
            raise ValueError(f"split must be heldout or dev, got {self.split!r}")
        if self.judge_timeout is not None and not 0 <= self.judge_timeout < math.inf:
            raise ValueError(f"judge_timeout must be >= 0 seconds and finite (0: no limit), got {self.judge_timeout}")
        if self.prompts < 1:
            raise ValueError(f"prompts must be >= 1 (held-out prompts to evaluate on), got {self.prompts}")
        if self.every < 0 or self.every_prompts < 1:
            raise ValueError(
                f"every must be >= 0 (0: no evaluation during training) and every_prompts >= 1, got {self.every} and "
                f"{self.every_prompts}"
            )
        if not self.greedy and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(
                f"temperature must be positive and finite when sampling (greedy: false), got {self.temperature}"
            )

    def _validate_llm(self):
        from bpo.judging.annotators import check_key_variable_name

        if not self.llm_model:
            raise ValueError(f"judge={self.judge} needs llm_model=<the judge model>")
        if self.judge == "llm" and not (self.llm_base_url or "").startswith(("http://", "https://")):
            raise ValueError(f"judge=llm needs llm_base_url=http(s)://HOST[:PORT]/v1, got {self.llm_base_url!r}")
        check_key_variable_name(self.llm_api_key_env, "llm_api_key_env")

    def sampling(self, base: SamplingSpec) -> SamplingSpec:
        from dataclasses import replace

        return replace(base, greedy=self.greedy, temperature=self.temperature, top_p=1.0)


def _scores(scores: Sequence[float], reference_scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s, r = np.asarray(scores, dtype=float), np.asarray(reference_scores, dtype=float)
    if s.shape != r.shape:
        raise ValueError(f"{len(s)} scores but {len(r)} reference scores")
    return s, r


def strict_win_outcomes(scores: Sequence[float], reference_scores: Sequence[float]) -> np.ndarray:
    """1.0 where the response scores strictly higher than the reference, else 0.0 (ties count 0)."""
    s, r = _scores(scores, reference_scores)
    return (s > r).astype(float)


def tie_outcomes(scores: Sequence[float], reference_scores: Sequence[float]) -> np.ndarray:
    """1.0 where the response and the reference score the same, else 0.0."""
    s, r = _scores(scores, reference_scores)
    return (s == r).astype(float)


def win_outcomes(scores: Sequence[float], reference_scores: Sequence[float]) -> np.ndarray:
    """1 where the response beats the reference, 0.5 on a tie, 0 otherwise (a tie is half a win)."""
    return strict_win_outcomes(scores, reference_scores) + 0.5 * tie_outcomes(scores, reference_scores)


def bootstrap_interval(
    values: Sequence[float], resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; (nan, nan) for no values."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


@dataclass
class WinRates:
    """Win rates of n responses against their references, each with a 95% bootstrap interval."""

    win_rate: float  # mean of win_outcomes: ties count 1/2
    ci_low: float
    ci_high: float
    strict_win_rate: float  # mean of strict_win_outcomes: ties count 0 (the BPO paper's win rate)
    strict_ci_low: float
    strict_ci_high: float
    tie_rate: float  # mean of tie_outcomes; win_rate = strict_win_rate + tie_rate / 2
    n: int


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def win_rates(scores: Sequence[float], reference_scores: Sequence[float], seed: int = 0) -> WinRates:
    """Both win rates, their intervals (same bootstrap resamples) and the tie rate; nan for no scores."""
    wins, strict = win_outcomes(scores, reference_scores), strict_win_outcomes(scores, reference_scores)
    ties = tie_outcomes(scores, reference_scores)
    low, high = bootstrap_interval(wins, seed=seed)
    strict_low, strict_high = bootstrap_interval(strict, seed=seed)
    return WinRates(_mean(wins), low, high, _mean(strict), strict_low, strict_high, _mean(ties), len(wins))


@dataclass
class EvalResult(WinRates):
    """eval.json: the win rates (flat, at the top level), mean judge scores, KL estimate and examples."""

    mean_score: float
    mean_reference_score: float
    kl_to_sft: float | None
    # What the collapse guard watches (bpo.evaluation.guard.answer_stats): the scores' standard error, the mean
    # answer length in tokens, the share of degenerate answers and their kinds.
    score_se: float = 0.0
    mean_length: float = 0.0
    degenerate_share: float = 0.0
    degenerate: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)  # prompt, response, reference and their scores

    def to_json(self) -> dict:
        return asdict(self)


def judge_against_references(
    judge, prompts: Sequence, responses: Sequence[str], references: Sequence[str]
) -> tuple[list[float], list[float]]:
    """The scores of the responses and of their references. A score judge scores each text on its own; a pairwise
    judge (an LLM, bpo.judging.llm.AgainstReferences) is asked about each (response, reference) pair and gives
    the response its evidence e of being the better one and the reference -e: a strict win is e > 0, a tie e = 0."""
    against = getattr(judge, "against_references", None)
    if against is not None:
        return against(list(prompts), list(responses), list(references))
    return judge(prompts, responses), judge(prompts, references)


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
    cache: Path | None = None,
) -> EvalResult:
    """Evaluate the policy in `slot` (MERGED: the trained policy; None: the initial SFT policy). `cache`: a
    folder where the initial policy's responses are kept for the next evaluation (bpo.evaluation.evalcache), used
    when slot is None and no KL is estimated (its samples would follow the responses' random numbers)."""
    tok = policy.tokenizer
    prompt_ids = [encode_prompt(tok, ex.prompt, chat_template) for ex in examples]
    prompts = [ex.prompt for ex in examples]
    with forked_rng(policy.device), policy.use(slot) as model:
        torch.manual_seed(seed)

        def answer() -> list[str]:
            return [
                r[0].text for r in generate(model, tok, prompt_ids, 1, spec, desc="evaluating" if progress else None)
            ]

        if slot is None and cache is not None and not estimate_kl:
            key = responses_key(
                base_weights_digest(model),
                prompt_ids,
                spec,
                seed,
                f"{policy.device.type}:{next(model.parameters()).dtype}",
                model_digest(model, tok),
            )
            responses = cached_responses(cache, key, answer)
        else:
            responses = answer()
        kl = None
        if estimate_kl:
            samples = [
                r[0]
                for r in generate(model, tok, prompt_ids, 1, replace(spec, greedy=False, temperature=1.0, top_p=1.0))
            ]
    if estimate_kl:
        with policy.use(None) as sft:
            sft_logp = response_logprobs(sft, prompt_ids, [s.ids for s in samples], tok.pad_token_id)
        kl = float(np.mean([s.logp for s in samples]) - sft_logp.mean().item())
    scores, ref_scores = judge_against_references(judge, prompts, responses, [ex.reference for ex in examples])
    lengths = [len(tok(r, add_special_tokens=False).input_ids) for r in responses]  # cached answers are texts
    return EvalResult(
        **asdict(win_rates(scores, ref_scores, seed=seed)),
        mean_score=float(np.mean(scores)),
        mean_reference_score=float(np.mean(ref_scores)),
        kl_to_sft=kl,
        **answer_stats(responses, lengths, [float(x) for x in scores], spec.max_new_tokens),
        examples=[
            {"prompt": p, "response": r, "reference": ex.reference, "score": s, "reference_score": rs}
            for p, r, ex, s, rs in zip(prompts, responses, examples, scores, ref_scores)
        ],
    )
