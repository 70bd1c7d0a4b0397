"""Verdicts on the papers' claims, computed from intervals by one rule (stated in every report).

A claim makes one or more comparisons (BPO against on-policy DPO in each Table 1 cell, ...); each comparison
is an interval (value, low, high) of a difference oriented so that positive is the paper's direction: the
paired two-level bootstrap of bpo.experiments.stats, which resamples seeds and then prompts within seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from bpo.experiments.papers_numbers import CLAIMS

REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED = "reproduced", "not reproduced", "not resolved"
RULE = (
    "a claim is **reproduced** when every comparison it makes has its 95% interval (paired two-level bootstrap: "
    "seeds resampled, then prompts within each seed) above zero in the paper's direction; **not reproduced** when "
    "at least one interval lies below zero; **not resolved** otherwise (an interval that holds zero, which more "
    "seeds or prompts might settle)"
)

Interval = tuple[float, float, float]


def verdict(intervals: Sequence[Interval]) -> str:
    """RULE on a claim's comparisons: e.g. [(0.1, 0.02, 0.2), (0.05, -0.01, 0.1)] is not resolved (the second
    holds zero); [(0.1, 0.02, 0.2), (-0.1, -0.2, -0.03)] is not reproduced; both above zero: reproduced."""
    if not intervals:
        raise ValueError("a verdict needs at least one comparison")
    if any(high < 0 for _, _, high in intervals):
        return NOT_REPRODUCED
    if all(low > 0 for _, low, _ in intervals):
        return REPRODUCED
    return NOT_RESOLVED


@dataclass
class Claims:
    """The comparisons a report makes for each claim of the papers (papers_numbers.CLAIMS), grouped by the
    claim and a scope (task and evaluation mode), in the order they were recorded."""

    comparisons: dict[tuple[str, str], list[tuple[str, Interval]]] = field(default_factory=dict)

    def add(self, claim: str, scope: str, label: str, interval: Interval) -> None:
        if claim not in CLAIMS:
            raise KeyError(f"no claim {claim!r} in papers_numbers.CLAIMS")
        self.comparisons.setdefault((claim, scope), []).append((label, tuple(map(float, interval))))

    def lines(self) -> list[str]:
        """One line per claim and scope: the verdict, the claim quoted with its source, the comparisons."""
        out = []
        for claim in CLAIMS:
            quote, source = CLAIMS[claim]
            for (key, scope), comparisons in self.comparisons.items():
                if key != claim:
                    continue
                shown = "; ".join(f"{label} {v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for label, (v, lo, hi) in comparisons)
                out.append(
                    f"- **{verdict([c for _, c in comparisons])}** ({scope}): “{quote}” ({source}). Ours: {shown}."
                )
        return out

    def to_json(self) -> list[dict]:
        return [
            {
                "claim": claim,
                "quote": CLAIMS[claim][0],
                "source": CLAIMS[claim][1],
                "scope": scope,
                "verdict": verdict([c for _, c in comparisons]),
                "comparisons": [
                    {"label": label, "value": v, "low": lo, "high": hi} for label, (v, lo, hi) in comparisons
                ],
            }
            for (claim, scope), comparisons in self.comparisons.items()
        ]
