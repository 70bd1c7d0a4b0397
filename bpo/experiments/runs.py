"""The sweep's finished runs as the report reads them: selecting runs by their labels, and the few numbers
every table takes from a run's evaluation (bpo.experiments.sections and bpo.experiments.iopo_report)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bpo.evaluation.evaluate import strict_win_outcomes
from bpo.experiments.reproduce import METHODS, Plan
from bpo.experiments.sweep import RunResult, RunSpec


def strict_rate(result: dict) -> float:
    return result["strict_win_rate"]


def outcomes(result: dict) -> np.ndarray:
    """Per-prompt strict wins (1/0) of one evaluation, in the task's eval order."""
    ex = result["examples"]
    return strict_win_outcomes([e["score"] for e in ex], [e["reference_score"] for e in ex])


def select(results: Sequence[RunResult], **labels) -> list[RunResult]:
    return [r for r in results if all(r.spec.label[k] == v for k, v in labels.items())]


def by_spec(results: Sequence[RunResult]) -> dict[RunSpec, RunResult]:
    return {r.spec: r for r in results}


def evaluation_of(r: RunResult, mode: str) -> dict:
    return r.sampled if mode == "sampled" else r.greedy


def is_table1_run(r: RunResult) -> bool:
    """Table 1's runs: no variant, offline at F = 1, the online methods at F = T."""
    label = r.spec.label
    return label["variant"] == "" and (
        label["method"] == "offline_dpo" or (label["method"] in METHODS and label["F"] == label["T"])
    )


def table1_runs(results: Sequence[RunResult], plan: Plan, **labels) -> list[RunResult]:
    return [
        r
        for r in select(results, **labels)
        if is_table1_run(r)
        and r.spec.label["seed"] in plan.seeds
        and r.spec.label["loss"] in plan.losses
        and r.spec.label["beta"] in plan.betas
    ]


def fmt(m: float, s: float) -> str:
    return f"{m:.3f} ± {s:.3f}"


def flagged(r: RunResult) -> bool:
    """Whether the run's collapse guard flagged it (eval.json's "guard" section; bpo.evaluation.guard)."""
    return (r.sampled.get("guard") or {}).get("status") == "flagged"
