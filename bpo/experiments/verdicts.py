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


STANDINGS = ("holds", "fails", "unresolved")


def standing(interval: Interval) -> str:
    """One comparison under RULE: "holds" (interval above zero), "fails" (below zero) or "unresolved"."""
    _, low, high = interval
    return "holds" if low > 0 else "fails" if high < 0 else "unresolved"


def standing_sentence(comparisons: Sequence[tuple[str, Interval]]) -> str:
    """Where a claim of several comparisons holds and where it does not, when they differ: e.g. 'Holds at: a;
    fails at: b.' ('' when all stand alike, since the verdict then says it)."""
    groups: dict[str, list[str]] = {}
    for label, interval in comparisons:
        groups.setdefault(standing(interval), []).append(label)
    if len(groups) < 2:
        return ""
    parts = [f"{name} at: {', '.join(groups[name])}" for name in STANDINGS if name in groups]
    sentence = "; ".join(parts)
    return f" {sentence[0].upper()}{sentence[1:]}."  # the labels keep their case (T=192, BPO)


@dataclass
class Claims:
    """The comparisons a report makes for each claim of the papers (papers_numbers.CLAIMS), grouped by the
    claim and a scope (task and evaluation mode), in the order they were recorded."""

    comparisons: dict[tuple[str, str], list[tuple[str, Interval]]] = field(default_factory=dict)
    # (claim, scope, label) -> what a reader must know beside that comparison (e.g. its runs were flagged)
    notes: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, claim: str, scope: str, label: str, interval: Interval, note: str = "") -> None:
        if claim not in CLAIMS:
            raise KeyError(f"no claim {claim!r} in papers_numbers.CLAIMS")
        self.comparisons.setdefault((claim, scope), []).append((label, tuple(map(float, interval))))
        if note:
            self.notes[(claim, scope, label)] = note

    def _note(self, claim: str, scope: str, label: str) -> str:
        note = self.notes.get((claim, scope, label))
        return f" ({note})" if note else ""

    def lines(self) -> list[str]:
        """One line per claim and scope: the verdict, the claim quoted with its source, the comparisons."""
        out = []
        for claim in CLAIMS:
            quote, source = CLAIMS[claim]
            for (key, scope), comparisons in self.comparisons.items():
                if key != claim:
                    continue
                shown = "; ".join(
                    f"{label} {v:+.3f} [{lo:+.3f}, {hi:+.3f}]{self._note(claim, scope, label)}"
                    for label, (v, lo, hi) in comparisons
                )
                out.append(
                    f"- **{verdict([c for _, c in comparisons])}** ({scope}): “{quote}” ({source}). Ours: {shown}."
                    + standing_sentence(comparisons)
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
                    {
                        "label": label,
                        "value": v,
                        "low": lo,
                        "high": hi,
                        "standing": standing((v, lo, hi)),
                        **({"note": self.notes[(claim, scope, label)]} if (claim, scope, label) in self.notes else {}),
                    }
                    for label, (v, lo, hi) in comparisons
                ],
            }
            for (claim, scope), comparisons in self.comparisons.items()
        ]


README_START = "<!-- reproduce-summary: generated by tools/readme-summary.py from {source}; do not edit by hand -->"
README_END = "<!-- reproduce-summary: end -->"


def readme_block(summary: dict, source: str) -> str:
    """The README's summary of a sweep: one table row per claim and scope with its generated verdict, and the
    command, from the sweep's summary.json (written by bpo.experiments.sections.write_report)."""
    rows = [
        f"| {v['source']} | {v['scope']} | **{v['verdict']}** | {held(v['comparisons'])} |" for v in summary["verdicts"]
    ]
    return "\n".join(
        [
            README_START.format(source=source),
            f"From `{summary['command']}` ([report]({source.rsplit('/', 1)[0]}/report.md)); the rule: "
            f"{summary['rule']}.",
            "",
            "| claim (source) | where | verdict | comparisons that hold / fail / are unresolved |",
            "| --- | --- | --- | --- |",
            *rows,
            README_END,
        ]
    )


def held(comparisons: Sequence[dict]) -> str:
    """How a claim's comparisons stand, counted: e.g. "3 / 1 / 0 of 4" (the report names them)."""
    counts = [sum(standing((c["value"], c["low"], c["high"])) == name for c in comparisons) for name in STANDINGS]
    return f"{' / '.join(map(str, counts))} of {len(comparisons)}"


def replace_readme_block(text: str, summary: dict, source: str) -> str:
    """`text` with its generated block (between README_START and README_END) replaced by readme_block."""
    start = text.index("<!-- reproduce-summary: generated")
    end = text.index(README_END) + len(README_END)
    return text[:start] + readme_block(summary, source) + text[end:]


def readme_source(text: str) -> str | None:
    """The summary.json the README's block says it was generated from (None: no block)."""
    marker = "<!-- reproduce-summary: generated by tools/readme-summary.py from "
    if marker not in text:
        return None
    return text.split(marker, 1)[1].split(";", 1)[0]
