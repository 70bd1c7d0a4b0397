"""Head-to-head comparison of two policies and held-out preference metrics (the IOPO paper's §6).

Pure functions on scores and log-probs:
    win / tie / lose    per prompt, the judge's scores s_a, s_b of the two policies' responses: a wins
                        where s_a - s_b > tie_margin, loses where s_b - s_a > tie_margin, else a tie
    bad-case rate       the share of prompts where both responses score below a threshold
    reward margin       per held-out pair, beta * log(pi/pi_ref)(y_w) - beta * log(pi/pi_ref)(y_l), the
                        difference of DPO's implicit rewards; pi_ref is the SFT policy (the runs' common
                        start, so margins of different methods are comparable)
    pairwise accuracy   the share of held-out pairs with a positive margin (the SFT policy itself: 0)
    margin histogram    the margins' distribution, one histogram per policy, as a PNG

and `compare`, which samples both policies' responses to the same held-out prompts (temperature 0.8
as in the paper, the same seed for both) and has the judge score each response on its own: a
pointwise judge sees one text at a time, so the order of the two cannot bias it. An LLM judge
(eval.judge=llm, llm_local) scores each response by its evidence against the prompt's reference
(bpo.evaluation.evaluate.judge_against_references): a prompt is a win for the side with more of it, so
the two responses are compared through the reference, not asked about directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from bpo.core.losses import implicit_rewards
from bpo.evaluation.evaluate import bootstrap_interval, evaluate_policy
from bpo.model.policy import EnsemblePolicy

# ---- the metrics ------------------------------------------------------------------------------------


def head_to_head(scores_a: Sequence[float], scores_b: Sequence[float], tie_margin: float = 0.0) -> np.ndarray:
    """Per prompt: 1 where a wins (s_a - s_b > tie_margin), -1 where it loses (s_b - s_a > tie_margin), else 0."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} scores for one policy but {len(b)} for the other")
    if tie_margin < 0:
        raise ValueError(f"tie_margin must be >= 0, got {tie_margin}")
    diff = a - b
    return (diff > tie_margin).astype(int) - (-diff > tie_margin).astype(int)


@dataclass
class WinTieLose:
    """Rates of a against b (win + tie + lose = 1), each with a 95% percentile-bootstrap interval."""

    win: float
    tie: float
    lose: float
    win_ci: tuple[float, float]
    tie_ci: tuple[float, float]
    lose_ci: tuple[float, float]
    n: int


def win_tie_lose(
    scores_a: Sequence[float], scores_b: Sequence[float], tie_margin: float = 0.0, seed: int = 0
) -> WinTieLose:
    outcome = head_to_head(scores_a, scores_b, tie_margin)
    if outcome.size == 0:
        raise ValueError("no scores to compare")
    rates = {k: (outcome == v).astype(float) for k, v in (("win", 1), ("tie", 0), ("lose", -1))}
    return WinTieLose(
        **{k: float(r.mean()) for k, r in rates.items()},
        **{f"{k}_ci": bootstrap_interval(r, seed=seed) for k, r in rates.items()},
        n=int(outcome.size),
    )


def bad_case_rate(scores_a: Sequence[float], scores_b: Sequence[float], threshold: float) -> float:
    """The share of prompts where both policies' responses score below `threshold` (strictly)."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need the same, non-zero number of scores for both policies, got {a.size} and {b.size}")
    return float(((a < threshold) & (b < threshold)).mean())


def reward_margins(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta: float) -> np.ndarray:
    """beta * log(pi/pi_ref)(y_w) - beta * log(pi/pi_ref)(y_l) per pair, from sequence log-probs, (N,)."""
    t = [torch.as_tensor(x, dtype=torch.float64) for x in (pi_chosen, pi_rejected, ref_chosen, ref_rejected)]
    return (implicit_rewards(t[0], t[2], beta) - implicit_rewards(t[1], t[3], beta)).numpy()


def pairwise_accuracy(margins: Sequence[float]) -> float:
    """The share of pairs whose reward margin is positive (a zero margin does not count)."""
    m = np.asarray(margins, dtype=float)
    if m.size == 0:
        raise ValueError("no margins")
    return float((m > 0).mean())


def margin_histogram(margins: Mapping[str, Sequence[float]], path: str | Path, bins: int = 30) -> Path:
    """One histogram per policy of its held-out reward margins, on shared bins, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = {name: np.asarray(m, dtype=float) for name, m in margins.items()}
    pooled = np.concatenate(list(values.values()))
    edges = np.histogram_bin_edges(pooled, bins=bins)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in values.items():
        ax.hist(m, bins=edges, alpha=0.5, label=f"{name} (accuracy {pairwise_accuracy(m):.2f})")
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("reward margin  beta*log(pi/pi_sft)(y_w) - beta*log(pi/pi_sft)(y_l)")
    ax.set_ylabel("held-out pairs")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- policies -------------------------------------------------------------------------------------


@dataclass
class Contender:
    """A policy to compare: a run's trained policy (slot MERGED) or its SFT start (slot None)."""

    name: str
    policy: EnsemblePolicy
    slot: str | None


def heldout_margins(c: Contender, records: Sequence, beta: float, chat_template: bool = False) -> np.ndarray:
    """Reward margins of the contender on every pair of a preference file (its records, TRL layout), against its
    SFT policy."""
    from bpo.data.records import pair_rows, split_pairs
    from bpo.judging.pairs import pairs_from_records
    from bpo.model.scoring import response_logprobs

    pairs = pairs_from_records(records, c.policy.tokenizer, chat_template)
    rows, pad = pair_rows(pairs), c.policy.tokenizer.pad_token_id
    with c.policy.use(c.slot) as model:
        pi = response_logprobs(model, *rows, pad)
    with c.policy.use(None) as model:
        ref = response_logprobs(model, *rows, pad)
    return reward_margins(*split_pairs(pi), *split_pairs(ref), beta)


def compare(
    a: Contender,
    b: Contender,
    examples,
    judge,
    sampling,
    tie_margin: float = 0.0,
    bad_threshold: float | None = None,
    chat_template: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Win/tie/lose of a against b on the held-out `examples` (responses sampled with `sampling`), and
    the bad-case rate when a threshold is given; also each side's mean judge score and some examples."""
    spec = replace(sampling, greedy=False, top_p=1.0)
    results = [
        evaluate_policy(c.policy, examples, judge, spec, c.slot, chat_template, False, seed, progress) for c in (a, b)
    ]
    scores = [[e["score"] for e in r.examples] for r in results]
    out = {
        "a": a.name,
        "b": b.name,
        "temperature": spec.temperature,
        "tie_margin": tie_margin,
        **asdict(win_tie_lose(*scores, tie_margin, seed=seed)),
        "mean_score_a": float(np.mean(scores[0])),
        "mean_score_b": float(np.mean(scores[1])),
        "outcomes": head_to_head(*scores, tie_margin).tolist(),
    }  # per prompt: 1 a wins, 0 tie, -1 a loses
    if bad_threshold is not None:
        out.update(bad_threshold=bad_threshold, bad_case_rate=bad_case_rate(*scores, bad_threshold))
    out["examples"] = [
        {
            "prompt": ea["prompt"],
            "a": ea["response"],
            "score_a": ea["score"],
            "b": eb["response"],
            "score_b": eb["score"],
        }
        for ea, eb in zip(results[0].examples[:8], results[1].examples[:8])
    ]
    return out


def heldout_report(
    contenders: Sequence[Contender],
    path: str | Path,
    beta: float,
    chat_template: bool = False,
    histogram: Path | None = None,
) -> dict:
    """Mean reward margin and pairwise accuracy of each contender on a held-out preference file; the histogram PNG."""
    from bpo.data.prefdata import read_preferences

    records = read_preferences(path)  # once for every contender
    margins = {c.name: heldout_margins(c, records, beta, chat_template) for c in contenders}
    policies = {
        name: {"mean_margin": float(m.mean()), "accuracy": pairwise_accuracy(m), "margins": m.tolist()}
        for name, m in margins.items()
    }
    report = {"file": str(path), "beta": beta, "pairs": len(next(iter(margins.values()))), "policies": policies}
    if histogram is not None:
        report["histogram"] = str(margin_histogram(margins, histogram))
    return report


def summary_text(result: dict) -> str:
    """The comparison as a few lines for the terminal."""

    def rate(key):
        low, high = result[f"{key}_ci"]
        return f"{result[key]:.3f} [{low:.3f}, {high:.3f}]"

    lines = [
        f"{result['a']} vs {result['b']} (n={result['n']}, temperature {result['temperature']:g}, tie margin "
        f"{result['tie_margin']:g}):",
        f"  win {rate('win')}  tie {rate('tie')}  lose {rate('lose')}",
        f"  mean judge score {result['mean_score_a']:.3f} vs {result['mean_score_b']:.3f}",
    ]
    if "bad_case_rate" in result:
        lines.append(f"  bad cases (both below {result['bad_threshold']:g}): {result['bad_case_rate']:.3f}")
    for name, flags in result.get("guard", {}).items():
        if flags:
            lines.append(
                f"  collapse guard: {name} was flagged ({len(flags)} flag(s); first at step {flags[0]['step']}: "
                f"{flags[0]['message']}): read its comparison with care"
            )
    for name, m in result.get("heldout", {}).get("policies", {}).items():
        lines.append(
            f"  held-out pairs, {name}: mean reward margin {m['mean_margin']:.4f}, pairwise accuracy "
            f"{m['accuracy']:.3f}"
        )
    if "histogram" in result.get("heldout", {}):
        lines.append(f"  margin histogram: {result['heldout']['histogram']}")
    return "\n".join(lines)
