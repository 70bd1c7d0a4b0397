"""Collecting one phase's labelled pairs: sample two responses per prompt, drop identical pairs,
annotate, drop ties, until the phase has its M pairs."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from bpo.common.seeds import PAIR_ANNOTATION, PAIR_SAMPLING, PROMPT_ORDER, derive_seed
from bpo.data.records import Pair, Response
from bpo.data.task import Example
from bpo.data.tokens import encode_prompt
from bpo.judging.annotators import Annotator
from bpo.model.device import forked_rng
from bpo.model.policy import MERGED, EnsemblePolicy
from bpo.model.sampler import SamplingSpec, generate

ANNOTATION_CHUNK = 32  # pairs per annotator call: a progress bar moves, a reward model's batch stays small


class PromptStream:
    """Training prompts in a seeded order, reshuffled after each pass; `position` makes it resumable."""

    def __init__(self, examples: Sequence[Example], seed: int, position: int = 0):
        self.prompts = [ex.prompt for ex in examples]
        self.seed, self.position = seed, position

    def take(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            epoch, index = divmod(self.position, len(self.prompts))
            order = list(range(len(self.prompts)))
            random.Random(derive_seed(self.seed, epoch, weights=PROMPT_ORDER)).shuffle(order)
            out.append(self.prompts[order[index]])
            self.position += 1
        return out


@dataclass
class PhaseStats:
    phase: int
    pairs: int = 0
    prompts: int = 0  # prompts sampled (pairs + identical + ties)
    identical: int = 0  # pairs dropped because both responses were the same text
    ties: int = 0  # pairs dropped because the annotator could not prefer one
    sampling_seconds: float = 0.0  # wall time of generating the two responses per prompt
    annotation_seconds: float = 0.0  # wall time of the annotator's calls


class BudgetError(RuntimeError):
    pass


def collect_pairs(
    policy: EnsemblePolicy,
    prompts: PromptStream,
    annotator: Annotator,
    sampling: SamplingSpec,
    phase: int,
    wanted: int,
    seed: int,
    max_attempts: float = 4.0,
    chat_template: bool = False,
    progress: bool = True,
) -> tuple[list[Pair], PhaseStats]:
    """M = `wanted` labelled pairs sampled from the current (merged) policy, the behavior policy."""
    stats = PhaseStats(phase)
    pairs: list[Pair] = []
    round_ = 0
    while len(pairs) < wanted:
        if stats.prompts >= max_attempts * wanted:
            raise BudgetError(
                f"phase {phase}: only {len(pairs)} of {wanted} usable pairs after {stats.prompts} prompts "
                f"({stats.identical} identical, {stats.ties} ties); raise sampling.temperature or "
                "annotator.max_attempts"
            )
        texts = prompts.take(wanted - len(pairs))
        started = time.perf_counter()
        distinct = sample_distinct(
            policy,
            texts,
            sampling,
            derive_seed(seed, phase, round_, weights=PAIR_SAMPLING),
            chat_template,
            f"phase {phase}: sampling" if progress else None,
        )
        stats.sampling_seconds += time.perf_counter() - started
        stats.prompts += len(texts)
        stats.identical += len(texts) - len(distinct)
        labels = []
        started = time.perf_counter()
        for start in tqdm(
            range(0, len(distinct), ANNOTATION_CHUNK),
            desc=f"phase {phase}: annotating",
            disable=not progress,
            leave=False,
        ):
            part = distinct[start : start + ANNOTATION_CHUNK]
            labels += annotator.label(
                [t for t, _, _ in part],
                [s[0].text for *_, s in part],
                [s[1].text for *_, s in part],
                seed=derive_seed(seed, phase, round_, start, weights=PAIR_ANNOTATION),
            )
        stats.annotation_seconds += time.perf_counter() - started
        for (text, prompt_ids, (a, b)), label in zip(distinct, labels):
            if label.preferred is None:
                stats.ties += 1
                continue
            pairs.append(
                labelled_pair(
                    f"p{phase:03d}-{len(pairs):05d}", phase, text, prompt_ids, a, b, label.preferred, label.scores
                )
            )
        round_ += 1
    stats.pairs = len(pairs)
    stats.sampling_seconds, stats.annotation_seconds = (
        round(stats.sampling_seconds, 2),
        round(stats.annotation_seconds, 2),
    )
    return pairs, stats


def sample_distinct(
    policy: EnsemblePolicy,
    texts: Sequence[str],
    sampling: SamplingSpec,
    seed: int,
    chat_template: bool = False,
    desc: str | None = None,
) -> list[tuple[str, list[int], tuple[Response, Response]]]:
    """(prompt, prompt ids, two responses) for each prompt whose two samples from the merged policy (the
    behavior policy) differ. Sampling is seeded by `seed` inside a forked RNG, so the training RNG stream
    (LoRA dropout) is the same whether a phase was sampled now or read back on resume."""
    tok = policy.tokenizer
    ids = [encode_prompt(tok, t, chat_template) for t in texts]
    with forked_rng(policy.device), policy.use(MERGED) as model:
        torch.manual_seed(seed)
        samples = generate(model, tok, ids, 2, sampling, desc=desc)
    return [(t, i, (s[0], s[1])) for t, i, s in zip(texts, ids, samples) if s[0].text != s[1].text]


def labelled_pair(
    pair_id: str,
    phase: int,
    prompt: str,
    prompt_ids: list[int],
    first: Response,
    second: Response,
    preferred: int,
    scores: tuple[float, float] | None = None,
) -> Pair:
    """The training pair of two sampled responses; `preferred` 0: the first won, 1: the second."""
    win, lose = (first, second) if preferred == 0 else (second, first)
    win_score, lose_score = (None, None) if scores is None else (scores if preferred == 0 else scores[::-1])
    return Pair(
        id=pair_id,
        phase=phase,
        prompt=prompt,
        chosen=win.text,
        rejected=lose.text,
        prompt_ids=prompt_ids,
        chosen_ids=win.ids,
        rejected_ids=lose.ids,
        chosen_score=win_score,
        rejected_score=lose_score,
        behavior_chosen_logp=win.logp,
        behavior_rejected_logp=lose.logp,
    )


def pairs_from_file(path: str, tokenizer, wanted: int, chat_template: bool = False, records=None) -> list[Pair]:
    """The first `wanted` pairs of a preference file (TRL layout), tokenised for training. `records`: the
    file as already read and checked (bpo.loop.preflight), so it is not read a second time: a pipe can be
    read only once, and a file edited since the check must not be trained on in its new form."""
    from bpo.common.jsonl import DataFileError
    from bpo.data.prefdata import read_preferences

    records = read_preferences(path) if records is None else records
    if len(records) < wanted:
        raise DataFileError(
            f"{path}: holds {len(records)} pairs, the schedule trains on {wanted} (schedule.pairs); lower it or add "
            "pairs"
        )
    return pairs_from_records(records[:wanted], tokenizer, chat_template)


def pairs_from_records(records, tokenizer, chat_template: bool = False) -> list[Pair]:
    """Preference records (bpo.data.prefdata) as phase-0 pairs, tokenised for training."""
    from bpo.data.tokens import encode_response

    return [
        Pair(
            id=r.id,
            phase=0,
            prompt=r.prompt,
            chosen=r.chosen,
            rejected=r.rejected,
            prompt_ids=encode_prompt(tokenizer, r.prompt, chat_template),
            chosen_ids=encode_response(tokenizer, r.chosen),
            rejected_ids=encode_response(tokenizer, r.rejected),
        )
        for r in records
    ]
