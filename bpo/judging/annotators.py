"""Annotators: given two responses to each prompt, say which one is preferred.

All annotators share one interface, `label`; the first two are built on a judge (bpo.judging.judges):
    score      the higher judge score is chosen; equal scores are a tie (reward model, rule, user function)
    simulated  a noisy rater: P(first preferred) = sigmoid((s_first - s_second) / temperature)
               (Bradley-Terry on the judge's scores); |s_first - s_second| <= tie_band is a tie
    llm        an LLM judge (an OpenAI-compatible endpoint, or a local causal LM: llm_local) asked which of
               the two is better, in both orders (bpo.judging.llm)
Ties are returned as `preferred=None`; the loop drops and counts them.
People (kind=human or external) are not an Annotator: they label stored pairs at their own pace
(bpo.annotate), and the loop waits for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from bpo.common.configlib import option
from bpo.judging.judges import Judge


@dataclass(frozen=True)
class AnnotatorConfig:
    kind: str = option(
        "simulated",
        help="rule: the task's or your Python scorer, higher score wins; reward_model: a sequence-classification "
        "model folder, higher score wins; simulated: a Bradley-Terry noisy rater on the judge's scores; human: "
        "people label each phase in `bpo annotate`'s web page; external: in Argilla or Label Studio (files in "
        "RUN_DIR/external/)"
        "; llm: an LLM behind an OpenAI-compatible chat-completions endpoint (annotator.base_url, .model) says "
        "which response is better; llm_local: a transformers causal LM (annotator.model) does, from its next-token "
        "probabilities (bpo.judging.llm)",
        choices=("rule", "reward_model", "simulated", "human", "external", "llm", "llm_local"),
    )
    judge: str = option(
        "task",
        help="'task' (the task's rule), 'module:function' (your Python scorer), or a reward-model folder "
        "or Hub id owner/name[@revision] (kind=reward_model)",
    )
    timeout: float | None = option(
        None,
        may_change_on_resume=True,
        help="seconds a call of annotator.judge may take before the run stops (resumably, exit code 6) naming the "
        "judge; null: its kind's default, 600 for a Python judge ('task', module:function) and no limit for "
        "a reward model (it computes in this process); 0: no limit",
    )
    temperature: float = option(0.5, help="simulated: P(a preferred) = sigmoid((s_a - s_b) / temperature)")
    tie_band: float = option(
        0.0,
        help="simulated: score gaps within this band are ties (dropped); llm_local: so are preferences whose "
        "log-odds, averaged over both orders, are within it",
    )
    model: str | None = option(
        None,
        help="llm: the model name the endpoint serves (as its /v1/models lists it); llm_local: a causal-LM folder "
        "or Hub id owner/name[@revision]",
    )
    base_url: str | None = option(
        None,
        may_change_on_resume=True,
        help="llm: the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp's server) or a "
        "hosted API's",
    )
    api_key_env: str | None = option(
        None,
        may_change_on_resume=True,
        help="llm: the NAME of the environment variable holding the API key (e.g. OPENAI_API_KEY; the key is read "
        "at start and never written down); null: the server needs no key",
    )
    template: str | None = option(
        None,
        help="llm, llm_local: a prompt template file holding {prompt}, {response_a} and {response_b}; null: the "
        "default shipped in bpo/judging/prompts/pairwise.txt",
    )
    max_tokens: int = option(16, help="llm: the most tokens the endpoint may write for its answer (exactly A or B)")
    concurrency: int = option(8, may_change_on_resume=True, help="llm: requests under way at once, at most")
    request_timeout: float = option(
        60.0, may_change_on_resume=True, help="llm: seconds to wait for one answer before retrying the request"
    )
    retries: int = option(
        4,
        may_change_on_resume=True,
        help="llm: retries of a request that timed out, failed (HTTP 408, 409, 429, 5xx, connection) or got a "
        "malformed answer; then the run stops with an error naming it (resumable: answers are kept)",
    )
    backoff: float = option(
        1.0, may_change_on_resume=True, help="llm: seconds before the first retry, doubled before each next one"
    )
    max_attempts: float = option(
        4.0, help="sample at most this many times M prompts per phase to get M untied, distinct pairs"
    )
    overlap: int = option(
        1,
        help="human/external: labels (from different raters) each pair needs; several labels combine by "
        "strict majority",
    )
    ties: str = option(
        "resample",
        help="human/external: a pair without a winner (tie, both bad, split vote) is kept as such in labels.sqlite "
        "and, for training, resample: replaced by a newly sampled pair (raters are asked again); coin: trained "
        "on once in a seeded random order (in expectation DPO with label smoothing 1/2)",
        choices=("resample", "coin"),
    )
    wait: bool = option(
        False,
        may_change_on_resume=True,
        help="human/external: when a phase awaits labels, wait for them (poll) instead of stopping with exit code 4",
    )

    def validate(self):
        from pathlib import Path

        from bpo.common.hub import is_model_id

        is_folder = Path(self.judge).is_dir() or is_model_id(self.judge)  # a reward model: a folder or a Hub id
        if self.kind == "reward_model" and not is_folder:
            raise ValueError(
                f"kind=reward_model needs judge=<a reward-model folder or Hub id>; {self.judge!r} is not a folder"
            )
        if self.kind == "rule" and is_folder:
            raise ValueError(
                f"kind=rule takes 'task' or 'module:function'; for the model folder {self.judge!r} use "
                "kind=reward_model"
            )
        if self.temperature <= 0 or self.tie_band < 0 or not 1 <= self.max_attempts < math.inf:
            raise ValueError("need temperature > 0, tie_band >= 0, max_attempts >= 1 and finite")
        if self.overlap < 1:
            raise ValueError(f"overlap must be >= 1 (labels per pair), got {self.overlap}")
        if self.timeout is not None and not 0 <= self.timeout < math.inf:
            raise ValueError(f"timeout must be >= 0 seconds and finite (0: no limit), got {self.timeout}")
        if self.kind == "llm" and self.timeout is not None:  # its own per-request limit, with retries
            raise ValueError(
                f"timeout={self.timeout:g} is not used by kind=llm, whose requests time out after request_timeout "
                f"({self.request_timeout:g} s) and are retried (annotator.retries); set annotator.request_timeout"
            )
        if self.kind in ("llm", "llm_local"):
            self._validate_llm()

    def _validate_llm(self):
        if not self.model:
            raise ValueError(f"kind={self.kind} needs model=<the judge model>")
        if self.kind == "llm" and not (self.base_url or "").startswith(("http://", "https://")):
            raise ValueError(f"kind=llm needs base_url=http(s)://HOST[:PORT]/v1, got {self.base_url!r}")
        check_key_variable_name(self.api_key_env, "api_key_env")
        if self.max_tokens < 1 or self.concurrency < 1 or self.retries < 0:
            raise ValueError("need max_tokens >= 1, concurrency >= 1 and retries >= 0")
        if not (0 < self.request_timeout < math.inf and 0 <= self.backoff < math.inf):
            raise ValueError("need request_timeout > 0 and backoff >= 0, both finite")


def check_key_variable_name(name: str | None, key: str) -> None:
    """An API key is given by the NAME of the environment variable that holds it, never the key itself (which
    would be written to the run's config.yaml)."""
    import re

    if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"{key} takes the NAME of the environment variable holding the key (e.g. OPENAI_API_KEY), not the key "
            "itself"
        )


@dataclass(frozen=True)
class Label:
    preferred: int | None  # 0: the first response, 1: the second, None: a tie
    scores: tuple[float, float]  # the judge's scores of the two responses


class Annotator(Protocol):
    def label(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str], seed: int) -> list[Label]: ...


@dataclass
class ScoreAnnotator:
    judge: Judge

    def _scores(self, prompts, first, second) -> list[tuple[float, float]]:
        scores = self.judge(list(prompts) * 2, list(first) + list(second))
        n = len(prompts)
        return [(float(scores[i]), float(scores[n + i])) for i in range(n)]

    def label(self, prompts, first, second, seed=0):
        return [Label(None if a == b else int(b > a), (a, b)) for a, b in self._scores(prompts, first, second)]


@dataclass
class SimulatedAnnotator(ScoreAnnotator):
    temperature: float = 1.0
    tie_band: float = 0.0

    def label(self, prompts, first, second, seed=0):
        rng = np.random.default_rng(seed)  # seeded per call, so a resumed run asks the same "rater"
        labels = []
        for a, b in self._scores(prompts, first, second):
            u = rng.random()
            if abs(a - b) <= self.tie_band:
                labels.append(Label(None, (a, b)))
            else:
                p_first = 1.0 / (1.0 + math.exp(-(a - b) / self.temperature))
                labels.append(Label(0 if u < p_first else 1, (a, b)))
        return labels
