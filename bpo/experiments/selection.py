"""Choosing a setting (each method's learning rate, the EMA's tau) on the dev prompts, by one rule for all.

`bpo reproduce` trains, for every arm of the sweep (a task, method, loss and beta) and every value of a small
grid, runs on separate selection seeds that are evaluated on the task's dev prompts (Task.dev: disjoint from
the train, SFT and held-out prompts), and keeps for the arm the value RULE picks. The held-out prompts never
take part in the choice, so the report's numbers on them are not chosen on themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

RULE = (
    "for each arm (task, method, loss, β), the grid value whose runs have the highest mean judge score of "
    "sampled responses on the task's dev prompts, averaged over the selection seeds, among the values none of "
    "whose runs the collapse guard flagged; ties go to the smaller value; if every value was flagged, the "
    "smallest value, and the report says so"
)


@dataclass(frozen=True)
class Outcome:
    """One selection run: its dev mean judge score and whether the collapse guard flagged it."""

    score: float
    flagged: bool


@dataclass(frozen=True)
class Choice:
    setting: str  # the key=value key chosen, e.g. optim.lr
    scores: dict[float, tuple[float, bool]]  # grid value -> (mean dev score over seeds, any run flagged)
    value: float
    all_flagged: bool


def choose(setting: str, outcomes: Mapping[float, Sequence[Outcome]]) -> Choice:
    """RULE on one arm's outcomes: outcomes[value] holds the value's runs (one per selection seed).

    E.g. {1e-3: [0.5 ok, 0.7 ok], 3e-3: [0.9 flagged, 0.9 ok], 3e-4: [0.6 ok, 0.6 ok]}: 3e-3 is out (a run
    flagged), 1e-3 and 3e-4 both average 0.6: the tie goes to 3e-4.
    """
    if not outcomes or any(not runs for runs in outcomes.values()):
        raise ValueError(f"{setting}: every grid value needs at least one selection run")
    scores = {
        value: (float(np.mean([o.score for o in runs])), any(o.flagged for o in runs))
        for value, runs in sorted(outcomes.items())
    }
    kept = [value for value, (_, flagged) in scores.items() if not flagged]
    if not kept:
        return Choice(setting, scores, min(scores), True)
    best = max(scores[v][0] for v in kept)
    return Choice(setting, scores, min(v for v in kept if scores[v][0] == best), False)


def outcome_of(result: dict) -> Outcome:
    """A selection run's eval.json (sampled, on the dev prompts) as an Outcome: mean judge score, and the
    guard's verdict (eval.json's "guard" section; a run without one was not flagged)."""
    return Outcome(float(result["mean_score"]), (result.get("guard") or {}).get("status") == "flagged")
