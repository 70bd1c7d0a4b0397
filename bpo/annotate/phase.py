"""One phase labelled by people (annotator.kind=human or external), across as many restarts as it takes.

    sample the phase's pairs from pi_beta, store them unlabelled (labels.sqlite), then
    until M pairs are decided:
        pairs short of their labels -> stop (exit code 4) or wait, saying how to label them
        too few decided (ties, "both bad", split votes with annotator.ties=resample) -> sample
            replacements from the phase's next prompts, store them, ask again
    close the phase (its labels are final) and return its M training pairs

Everything sampled is stored before anyone is asked, so a resumed run reads it back: nothing is
sampled twice, and sampling stays seeded by (seed, phase, sampler call) as for automatic annotators.
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

from bpo.annotate import DEFAULT_PORT, EXIT_AWAITING_LABELS
from bpo.annotate.agreement import DECIDED, combine
from bpo.annotate.store import STORE_NAME, Candidate, LabelStore
from bpo.common.seeds import PAIR_SAMPLING, derive_seed
from bpo.common.stop import StopFlag, StopRequested
from bpo.core.schedule import Phase
from bpo.data.records import Pair
from bpo.judging.pairs import BudgetError, PhaseStats, PromptStream, labelled_pair, sample_distinct

POLL_SECONDS = 2.0


class AwaitingLabels(StopRequested):
    """The phase's pairs are stored and wait for labels; the message says how to give them and go on."""

    def __init__(self, message: str, exit_code: int = EXIT_AWAITING_LABELS):
        Exception.__init__(self, message)
        self.exit_code = exit_code


def rated_pairs(
    policy, prompts: PromptStream, run_root: Path, cfg, phase: Phase, chat_template: bool, progress: bool
) -> tuple[list[Pair], PhaseStats]:
    """The phase's M training pairs, labelled by raters; raises AwaitingLabels until they are."""
    a = cfg.annotator
    store = LabelStore.create(run_root / STORE_NAME, a.overlap)
    start = prompts.position
    while True:
        stored = store.candidates(phase.index)
        if stored:
            wait_for_labels(store, run_root, cfg, phase)
        outcomes = outcomes_of(store, phase.index)
        usable = [c for c in stored if outcomes[c.id] in DECIDED or a.ties == "coin"]
        if len(usable) >= phase.pairs:
            break
        rounds = store.rounds(phase.index)
        used, draws = sum(r["prompts"] for r in rounds), sum(r["draws"] for r in rounds)
        prompts.position = start + used  # the phase's prompts continue where its last round stopped
        sample_round(
            store,
            policy,
            prompts,
            cfg,
            phase,
            len(rounds),
            used,
            draws,
            phase.pairs - len(usable),
            chat_template,
            progress,
        )
    store.close_phase(phase.index)  # labels final from here: what trains is what was labelled
    pairs = [training_pair(c, outcomes[c.id], cfg.seed) for c in usable[: phase.pairs]]
    rounds = store.rounds(phase.index)
    stats = PhaseStats(
        phase.index,
        pairs=len(pairs),
        prompts=sum(r["prompts"] for r in rounds),
        identical=sum(r["identical"] for r in rounds),
        ties=sum(outcomes[c.id] not in DECIDED for c in stored),
    )
    return pairs, stats


def sample_round(
    store: LabelStore,
    policy,
    prompts: PromptStream,
    cfg,
    phase: Phase,
    round_: int,
    used: int,
    draws: int,
    wanted: int,
    chat_template: bool,
    progress: bool,
) -> None:
    """`wanted` distinct pairs from the phase's next prompts, stored as one round. `used` prompts and `draws`
    sampler calls went to earlier rounds; all rounds together use at most annotator.max_attempts x M prompts."""
    budget = cfg.annotator.max_attempts * phase.pairs
    got, taken, calls = [], 0, 0
    while len(got) < wanted:
        if used + taken >= budget:
            raise BudgetError(
                f"phase {phase.index}: only {phase.pairs - wanted + len(got)} of {phase.pairs} pairs decided or "
                f"awaiting labels after {used + taken} prompts; raise annotator.max_attempts or sampling.temperature"
            )
        texts = prompts.take(min(wanted - len(got), math.ceil(budget - used - taken)))
        seed = derive_seed(cfg.seed, phase.index, draws + calls, weights=PAIR_SAMPLING)
        got += sample_distinct(
            policy, texts, cfg.sampling, seed, chat_template, f"phase {phase.index}: sampling" if progress else None
        )
        taken, calls = taken + len(texts), calls + 1
    store.add_round(phase.index, round_, got, prompts=taken, draws=calls, identical=taken - len(got))


def outcomes_of(store: LabelStore, phase: int) -> dict[str, str]:
    """Each stored pair's combined outcome (bpo.annotate.agreement.combine of its raters' labels); ""
    while it has fewer labels than annotator.overlap asks for."""
    choices: dict[str, list[str]] = {c.id: [] for c in store.candidates(phase)}
    for row in store.labels(phase):
        choices[row.pair_id].append(row.choice)
    overlap = store.overlap
    return {pid: combine(cs) if len(cs) >= overlap else "" for pid, cs in choices.items()}


def training_pair(c: Candidate, outcome: str, seed: int) -> Pair:
    """The pair as trained on: the decided winner as chosen; an undecided pair (annotator.ties=coin) in
    the order of a coin seeded by (seed, pair id), the same on every resume."""
    preferred = {"first": 0, "second": 1}.get(outcome)
    if preferred is None:
        preferred = random.Random(f"{seed}:{c.id}").randrange(2)
    return labelled_pair(c.id, c.phase, c.prompt, c.prompt_ids, c.first, c.second, preferred)


def wait_for_labels(store: LabelStore, run_root: Path, cfg, phase: Phase) -> None:
    """Return once every stored pair of the phase has its labels; else stop (AwaitingLabels) or, with
    annotator.wait=true, poll the store until they come (a signal stops the wait, labels kept)."""
    external = cfg.annotator.kind == "external"
    told = False
    with StopFlag() as stop:
        while True:
            if external:  # (re)write the phase's files for the other tool, read back what it exported
                from bpo.annotate.external import import_labels, write_exports

                write_exports(store, run_root, phase.index)
                import_labels(store, run_root)
            missing = store.incomplete(phase.index)
            if not missing:
                return
            message = instructions(store, run_root, cfg, phase, len(missing))
            if not cfg.annotator.wait:
                raise AwaitingLabels(message)
            if stop.requested:
                raise AwaitingLabels(
                    f"stopped while waiting for labels (labels given so far are kept)\n{message}", 128 + stop.signum
                )
            if not told:
                print(
                    f"bpo: {message}\nbpo: waiting for the labels (annotator.wait=true; Ctrl-C stops, nothing is lost)",
                    file=sys.stderr,
                )
                told = True
            time.sleep(POLL_SECONDS)


def instructions(store: LabelStore, run_root: Path, cfg, phase: Phase, missing: int) -> str:
    total = len(store.candidates(phase.index))
    run = str(run_root)
    head = f"phase {phase.index}: {missing} of {total} pairs await labels ({cfg.annotator.overlap} per pair)"
    if cfg.annotator.kind == "external":
        from bpo.annotate.external import export_folder, labels_folder

        return (
            f"{head}.\nimport {export_folder(run_root)}/phase-{phase.index:03d}-*.jsonl into Argilla or Label Studio, "
            f"put their exports in {labels_folder(run_root)}/,\nthen continue the run: bpo train --resume {run}"
        )
    raters = (
        ""
        if store.raters()
        else f"bpo annotate {run} --add-rater NAME (once per rater; prints the rater's link), then "
    )
    return (
        f"{head}.\nlabel them in a browser: {raters}bpo annotate {run} (serves http://127.0.0.1:{DEFAULT_PORT}/),\n"
        f"then continue the run: bpo train --resume {run}"
    )
