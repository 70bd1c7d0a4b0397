"""Head-to-head comparisons of a sweep's finished runs (Table 2, the IOPO section), each computed once.

A comparison is `bpo compare RUN_A RUN_B` (bpo.evaluation.compare: both policies answer the same held-out prompts
with the same sampling seed, the judge scores each answer, a prompt is a win, tie or loss of A); its
compare.json lands in a folder named by the two runs and the settings, and is reused when present.
Rates pooled over seeds get 95% two-level bootstrap intervals (seeds resampled, then prompts within each
chosen seed: bpo.experiments.stats), from the per-prompt outcomes each compare.json records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bpo.experiments.stats import two_level_bootstrap
from bpo.run.rundir import COMPARE_FILE

SFT = "sft"  # RUN_B meaning RUN_A's initial policy


def compare_runs(a: Path, b: Path | str, root: Path, temperature: float, seed: int, pairs: Path | None = None) -> dict:
    """compare.json of run `a` against run `b` (or SFT), computed once (bpo.api.compare), then read back."""
    from bpo import api

    key = "\n".join(map(str, (a, b, temperature, seed, pairs)))
    folder = Path(root) / f"{Path(a).name}--vs--{Path(b).name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    result = folder / COMPARE_FILE
    if not result.is_file():
        api.compare(a, b, out=folder, temperature=temperature, seed=seed, pairs=pairs, progress=False)
    return json.loads(result.read_text())


@dataclass(frozen=True)
class PooledRates:
    """Win, tie and lose rates of A against B pooled over seeds: (value, low, high) each."""

    win: tuple[float, float, float]
    tie: tuple[float, float, float]
    lose: tuple[float, float, float]
    net: tuple[float, float, float]  # win rate − lose rate (the mean outcome, +1 / 0 / −1 per prompt)
    seeds: int
    n: int  # prompts x seeds

    def cells(self) -> list[str]:
        return [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in (self.win, self.tie, self.lose)]


def pool(results: Sequence[dict]) -> PooledRates:
    """Pool compare.json results of several seeds (each its own stratum) into win/tie/lose with intervals."""
    outcomes = {i: np.asarray(r["outcomes"]) for i, r in enumerate(results)}

    def rate(value: int):
        return two_level_bootstrap({k: (o == value).astype(float) for k, o in outcomes.items()})

    net = two_level_bootstrap({k: o.astype(float) for k, o in outcomes.items()})
    return PooledRates(rate(1), rate(0), rate(-1), net, len(results), sum(o.size for o in outcomes.values()))


def sft_preference_file(overrides: Sequence[str], path: Path, n: int = 128, seed: int = 12345) -> Path:
    """A held-out preference file (TRL layout) for reward margins and pairwise accuracy: two samples of the
    SFT policy per held-out prompt of the task that `overrides` configure, labelled by the task's judge
    (the higher score is chosen; ties and empty answers are left out). Written once, atomically."""
    from bpo.common.configlib import load_config
    from bpo.common.files import atomic_path
    from bpo.data.prefdata import PreferenceRecord, write_preferences
    from bpo.judging.annotators import ScoreAnnotator
    from bpo.judging.pairs import PromptStream, collect_pairs
    from bpo.loop.build import build_eval_judge, build_policy, build_task
    from bpo.loop.config import RunConfig

    path = Path(path)
    if path.is_file():
        return path
    cfg = load_config(RunConfig, None, list(overrides))
    task = build_task(cfg)
    policy = build_policy(cfg, task, progress=False)  # fresh adapters (B = 0): the SFT policy
    judge = build_eval_judge(cfg, task)
    judge = judge if hasattr(judge, "label") else ScoreAnnotator(judge)  # an LLM judge labels pairs itself
    pairs, _ = collect_pairs(
        policy,
        PromptStream(task.eval, seed=seed),
        judge,
        cfg.sampling,
        phase=0,
        wanted=n,
        seed=seed,
        max_attempts=8,
        chat_template=task.chat_template,
        progress=False,
    )
    kept = [p for p in pairs if p.chosen.strip() and p.rejected.strip()]  # a preference file has no empty responses
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write_preferences(tmp, [PreferenceRecord(p.id, p.prompt, p.chosen, p.rejected) for p in kept])
    return path
