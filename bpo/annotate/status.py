"""What `bpo status RUN_DIR` says about a run's labels: progress per phase, outcomes, agreement."""

from __future__ import annotations

from collections import Counter, defaultdict

from bpo.annotate.agreement import DECIDED, cohen_kappa, combine, krippendorff_alpha
from bpo.annotate.store import LabelStore


def agreement(labels_by_pair: dict[str, dict[str, str]]) -> tuple[str, float, int] | None:
    """(measure, value, pairs it is computed on): Cohen's kappa when the run has two raters (pairs both
    labelled), Krippendorff's alpha when it has more (pairs with two or more labels); None with one."""
    raters = sorted({r for labels in labels_by_pair.values() for r in labels})
    if len(raters) < 2:
        return None
    if len(raters) == 2:
        both = [labels for labels in labels_by_pair.values() if len(labels) == 2]
        return "Cohen's kappa", cohen_kappa([b[raters[0]] for b in both], [b[raters[1]] for b in both]), len(both)
    units = [list(labels.values()) for labels in labels_by_pair.values() if len(labels) >= 2]
    return "Krippendorff's alpha", krippendorff_alpha(units), len(units)


def labels_status(store: LabelStore) -> str:
    overlap, closed = store.overlap, set(store.closed_phases())
    pairs = store.candidates()
    labels_by_pair: dict[str, dict[str, str]] = defaultdict(dict)
    per_rater: Counter = Counter()
    for row in store.labels():
        labels_by_pair[row.pair_id][row.rater] = row.choice
        per_rater[row.rater] += 1
    lines = [
        f"labels ({store.path.name}): {overlap} per pair; raters: "
        + (
            ", ".join(f"{r} ({per_rater[r]} labels)" for r in dict.fromkeys([*store.raters(), *per_rater]))
            or "none yet (bpo annotate RUN_DIR --add-rater NAME)"
        )
    ]
    for phase in sorted({p.phase for p in pairs}):
        ids = [p.id for p in pairs if p.phase == phase]
        complete = [i for i in ids if len(labels_by_pair[i]) >= overlap]
        outcomes = Counter(combine(list(labels_by_pair[i].values())) for i in complete)
        undecided = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k not in DECIDED)
        lines.append(
            f"  phase {phase} ({'trained on' if phase in closed else 'open'}): {len(complete)} of {len(ids)} pairs "
            "labelled, "
            f"{sum(outcomes[k] for k in DECIDED)} decided" + (f", undecided: {undecided}" if undecided else "")
        )
    found = agreement(labels_by_pair)
    if found:
        name, value, n = found
        lines.append(f"  agreement: {name} = {value:.3f} over {n} pairs")
    undone = store.undone_count()
    if undone:
        lines.append(f"  {undone} labels undone (kept in the store's history)")
    return "\n".join(lines)
