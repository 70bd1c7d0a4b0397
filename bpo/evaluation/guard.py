"""The collapse guard: at every evaluation, is the run still improving on its start, or has it collapsed?

A preference run can collapse without an error: the policy drifts far from the SFT model (the KL grows to
tens of nats), its answers degenerate (empty, one token repeated, cut off at the length limit) and the judge's
score falls below where it started, while the loss still goes down. The guard compares each evaluation point
(eval.every's points and the final evaluation) with the initial policy's evaluation on the same prompts:

    score       the mean judge score fell below the start's by more than `score_se` standard errors of the
                difference (sqrt(se_point^2 + se_start^2), each the std of the scores over sqrt(n))
    kl_to_sft   the KL estimate to the initial policy (eval.kl) passed `max_kl`
    degenerate  the share of degenerate answers passed `max_degenerate` and rose above the start's by more
                than `score_se` standard errors of the difference (each share's sqrt(p (1 - p) / n))

and, at the end of every annotation phase, how far training moved the policy from the behavior policy that
sampled the phase's pairs:

    kl_to_behavior  the mean over the phase's sampled responses y of log pi_beta(y) - log pi_theta(y)
                    (an estimate of KL(pi_beta || pi_theta), exact in expectation when sampling is at
                    temperature 1 and top_p 1) passed `max_kl_behavior`

A flag is printed at once as one line, written to evals.jsonl with its point and to eval.json's "guard"
section; with on_collapse=stop the run checkpoints and stops (resumable; a resumed run only warns about a
check that already stopped it). Everything here but `warn` is pure: no model, no torch.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from typing import Sequence

from bpo.common.configlib import option

ADVICE = {
    "score": "lower optim.lr (e.g. by 3-10x), raise beta, or train more LoRA adapters (lora.ensemble)",
    "kl_to_sft": "raise beta or lower optim.lr: the policy moved far from the model it started from",
    "degenerate": "lower optim.lr or raise beta; check sampling.max_new_tokens and the judge's view of empty answers",
    "kl_to_behavior": "lower optim.lr, raise beta or annotate more often (schedule.phases): the policy moved far "
    "from the policy that sampled its pairs",
}


@dataclass(frozen=True)
class GuardConfig:
    on_collapse: str = option(
        "warn",
        may_change_on_resume=True,
        choices=("warn", "stop"),
        help="when an evaluation trips a check: warn (one line, recorded in evals.jsonl and eval.json) or stop "
        "(checkpoint and exit with code 5; --resume continues, warning only about the checks that stopped it)",
    )
    score_se: float = option(
        2.0,
        may_change_on_resume=True,
        help="flag a mean judge score below the initial policy's (same prompts) by more than this many standard "
        "errors of the difference; a share of degenerate answers above max_degenerate must also rise above the "
        "start's by more than this many",
    )
    max_kl: float = option(
        10.0,
        may_change_on_resume=True,
        help="flag a KL estimate to the initial policy (eval.kl) above this many nats per response; runs that "
        "collapsed on a user's task had 11-42, runs that trained well 0.5-5",
    )
    max_kl_behavior: float = option(
        10.0,
        may_change_on_resume=True,
        help="flag a phase whose training moved the policy more than this many nats per response from the behavior "
        "policy that sampled the phase's pairs (the mean log-ratio on those responses; phases.jsonl's "
        "kl_to_behavior)",
    )
    phase_kl_pairs: int = option(
        8,
        may_change_on_resume=True,
        help="pairs of each phase (its first ones, in their random sampled order) whose responses the phase-end "
        "check scores with the policy to estimate kl_to_behavior: one forward pass over 2 x this many responses "
        "per phase; 0: no phase-end check (scoring phases of 8 pairs cost about 11% of an on-policy SmolLM2 run)",
    )
    max_degenerate: float = option(
        0.5,
        may_change_on_resume=True,
        help="flag when more than this share of the answers are degenerate (empty, one word repeated, or cut off "
        "at sampling.max_new_tokens) and more than at the start",
    )

    def validate(self):
        if self.phase_kl_pairs < 0:
            raise ValueError(f"phase_kl_pairs must be >= 0 (0: no phase-end check), got {self.phase_kl_pairs}")
        if not (self.score_se > 0 and self.max_kl > 0 and self.max_kl_behavior > 0 and 0 < self.max_degenerate <= 1):
            raise ValueError(
                "score_se, max_kl and max_kl_behavior must be positive and max_degenerate in (0, 1], got "
                f"{self.score_se}, {self.max_kl}, {self.max_kl_behavior}, {self.max_degenerate}"
            )


@dataclass(frozen=True)
class Point:
    """What the guard watches at one evaluation (from its eval.json-like row)."""

    step: int
    mean_score: float
    score_se: float
    n: int
    kl_to_sft: float | None = None
    degenerate_share: float | None = None
    mean_length: float | None = None

    @classmethod
    def of(cls, step: int, row: dict) -> Point:
        return cls(
            step,
            float(row["mean_score"]),
            float(row.get("score_se") or 0.0),
            int(row["n"]),
            row.get("kl_to_sft"),
            row.get("degenerate_share"),
            row.get("mean_length"),
        )


@dataclass(frozen=True)
class Flag:
    step: int
    check: str
    value: float
    bound: float
    message: str
    advice: str

    def to_json(self) -> dict:
        return asdict(self)


def assess(point: Point, start: Point | None, spec: GuardConfig) -> list[Flag]:
    """The checks of the module docstring on one point. E.g. start 0.57 (se 0.03), point 0.40 (se 0.04): the
    difference -0.17 is 3.4 standard errors (sqrt(0.03^2 + 0.04^2) = 0.05) below: flagged at score_se = 2,
    whose bound is 0.57 - 2 * 0.05 = 0.47; a point at exactly 0.47 is not flagged."""
    flags = []
    if start is not None:
        se = math.hypot(point.score_se, start.score_se)
        bound = start.mean_score - spec.score_se * se
        if point.mean_score < bound:
            flags.append(
                _flag(
                    point,
                    "score",
                    point.mean_score,
                    bound,
                    f"mean judge score {point.mean_score:.3f} fell below the start's {start.mean_score:.3f} by more "
                    f"than {spec.score_se:g} standard errors ({se:.3f})",
                )
            )
    if point.kl_to_sft is not None and point.kl_to_sft > spec.max_kl:
        flags.append(
            _flag(
                point,
                "kl_to_sft",
                point.kl_to_sft,
                spec.max_kl,
                f"KL to the initial policy {point.kl_to_sft:.1f} nats per answer passed guard.max_kl={spec.max_kl:g}",
            )
        )
    share = point.degenerate_share
    known = start is not None and start.degenerate_share is not None
    baseline, start_n = (start.degenerate_share, start.n) if known else (0.0, point.n)
    rise_se = share_difference_se(share, point.n, baseline, start_n) if share is not None else 0.0
    if share is not None and share > spec.max_degenerate and share - baseline > spec.score_se * rise_se:
        flags.append(
            _flag(
                point,
                "degenerate",
                share,
                spec.max_degenerate,
                f"{share:.0%} of the answers are degenerate (empty, one word repeated, or cut off), "
                f"{baseline:.0%} at the start (a rise of more than {spec.score_se:g} standard errors, {rise_se:.3f})",
            )
        )
    return flags


def share_difference_se(share: float, n: int, start_share: float, start_n: int) -> float:
    """The standard error of the difference of two shares of answers, each sqrt(p (1 - p) / n). E.g. 59 of 64
    degenerate against 56 of 64 at the start: sqrt(0.922 * 0.078 / 64 + 0.875 * 0.125 / 64) = 0.053, so the
    rise of 0.047 is under 1 standard error: noise, as when a model's answers run past the length limit from
    the start."""
    return math.sqrt(share * (1 - share) / max(1, n) + start_share * (1 - start_share) / max(1, start_n))


def kl_to_behavior(behavior_logps: Sequence[float], current_logps: Sequence[float]) -> float:
    """The mean log-ratio log pi_beta(y) - log pi_theta(y) over responses y sampled from pi_beta (each log-prob
    summed over the response's tokens): the Monte-Carlo estimate of KL(pi_beta || pi_theta). E.g. behavior
    (-3, -5), current (-4, -5.5): ((-3 + 4) + (-5 + 5.5)) / 2 = 0.75 nats."""
    if len(behavior_logps) != len(current_logps) or not behavior_logps:
        raise ValueError("kl_to_behavior needs one current log-prob per behavior log-prob, and at least one")
    return sum(b - c for b, c in zip(behavior_logps, current_logps)) / len(behavior_logps)


def assess_phase(phase: int, step: int, kl: float, spec: GuardConfig) -> list[Flag]:
    """The phase-end check of the module docstring: `kl` (kl_to_behavior) after `step` steps, at phase `phase`'s
    end, above max_kl_behavior (a value at the bound is not flagged)."""
    if kl <= spec.max_kl_behavior:
        return []
    message = (
        f"phase {phase} moved the policy {kl:.1f} nats per answer from the behavior policy that sampled its pairs, "
        f"past guard.max_kl_behavior={spec.max_kl_behavior:g}"
    )
    return [
        Flag(
            step,
            "kl_to_behavior",
            float(kl),
            float(spec.max_kl_behavior),
            f"step {step}: {message}",
            ADVICE["kl_to_behavior"],
        )
    ]


def _flag(point: Point, check: str, value: float, bound: float, message: str) -> Flag:
    return Flag(point.step, check, float(value), float(bound), f"step {point.step}: {message}", ADVICE[check])


def degenerate_kind(text: str, n_tokens: int, max_new_tokens: int) -> str | None:
    """Why an answer is degenerate, or None: "empty" (no word), "repeated" (two or more words, all the same),
    "cut off" (it ran to the length limit: n_tokens >= max_new_tokens, so it never ended on its own)."""
    words = text.split()
    if not words:
        return "empty"
    if len(words) > 1 and len(set(words)) == 1:
        return "repeated"
    if n_tokens >= max_new_tokens:
        return "cut off"
    return None


def answer_stats(texts: Sequence[str], lengths: Sequence[int], scores: Sequence[float], max_new_tokens: int) -> dict:
    """The guard's fields of an evaluation: the scores' standard error, the mean length in tokens, the share of
    degenerate answers and their kinds."""
    n = len(scores)
    mean = sum(scores) / n
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else 0.0
    kinds = [degenerate_kind(t, k, max_new_tokens) for t, k in zip(texts, lengths)]
    return {
        "score_se": sd / math.sqrt(n),
        "mean_length": sum(lengths) / n,
        "degenerate_share": sum(k is not None for k in kinds) / n,
        "degenerate": {kind: kinds.count(kind) for kind in ("empty", "repeated", "cut off") if kind in kinds},
    }


WATCHED = ("step", "mean_score", "score_se", "kl_to_sft", "degenerate_share", "mean_length")


def final_guard(
    result: dict, curve: Sequence[dict], steps: int, spec: GuardConfig, phases: Sequence[dict] = ()
) -> tuple[dict, list[Flag]]:
    """eval.json's "guard" section and the flags not yet said: the final evaluation `result` (after `steps`
    training steps) checked against the initial policy's on the same prompts (its "before"), with the flags and
    points of the learning curve `curve` (evals.jsonl's rows during training) and the phase-end checks
    `phases` (phase_times.jsonl's rows). A check the curve already flagged at step T is not new (said once)."""
    start = Point.of(0, result["before"]) if "before" in result else None
    flags = assess(Point.of(steps, result), start, spec)
    said = {(f["step"], f["check"]) for r in curve for f in r.get("guard", [])}
    new = [f for f in flags if (f.step, f.check) not in said]
    final = {(f.step, f.check) for f in flags}
    earlier = [Flag(**f) for r in curve for f in r.get("guard", []) if (f["step"], f["check"]) not in final]
    earlier += [Flag(**f) for r in phases for f in r.get("guard", [])]  # said at the phase's end
    points = [{k: r.get(k) for k in WATCHED} for r in curve]
    points.append({k: result.get(k) if k != "step" else steps for k in WATCHED})
    every = sorted(earlier, key=lambda f: f.step) + flags
    section = {"status": "flagged" if every else "ok", "flags": [f.to_json() for f in every], "points": points}
    watched = [
        {"phase": r["phase"], "step": r["step"], "kl_to_behavior": r["kl_to_behavior"]}
        for r in phases
        if "kl_to_behavior" in r
    ]
    if watched:
        section["phases"] = watched
    return section, new


def flags_in_logs(evals: Sequence[dict], phase_times: Sequence[dict]) -> list[dict]:
    """The flags a run has logged so far (evals.jsonl's learning-curve rows, phase_times.jsonl's phase ends), in
    step order: what `bpo status` shows of a run still training or stopped by the guard."""
    return sorted((f for r in (*evals, *phase_times) for f in r.get("guard", [])), key=lambda f: f["step"])


def summary_lines(flags: Sequence[dict]) -> list[str]:
    """The guard's findings in words, for a run's report and `bpo status`: one line per flag (its step, what it
    saw and what to change), or one line saying nothing was flagged."""
    if not flags:
        return ["collapse guard: nothing flagged (judge score, KL and answers stayed within the guard's bounds)"]
    return [f"collapse guard: FLAGGED at step {f['step']}: {f['message']}; {f['advice']}" for f in flags]


def warn(flags: Sequence[Flag]) -> None:
    """One line per flag on stderr, above any progress bar."""
    from tqdm.auto import tqdm

    for flag in flags:
        tqdm.write(f"bpo: warning: collapse guard: {flag.message}; {flag.advice}", file=sys.stderr)
