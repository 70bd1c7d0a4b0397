"""A human-readable report of a finished run: report.md and report.png in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from bpo.common.jsonl import read_log
from bpo.evaluation.guard import summary_lines
from bpo.run.rundir import RunDir


def _rows(path: Path) -> list[dict]:
    return read_log(path)


def plot(run: RunDir, result: dict, metrics: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bars = [("before (initial policy)", result.get("before")), ("after (aligned)", result)]
    bars = [(name, r) for name, r in bars if r is not None]
    xs = range(len(bars))
    rates = [r["win_rate"] for _, r in bars]
    errors = [[r["win_rate"] - r["ci_low"] for _, r in bars], [r["ci_high"] - r["win_rate"] for _, r in bars]]
    left.bar(xs, rates, yerr=errors, capsize=6, color=["#999999", "#2a7ab9"][-len(bars) :])
    left.axhline(0.5, color="k", lw=0.8, ls="--")
    left.set_xticks(list(xs), [name for name, _ in bars])
    left.set_ylim(0, 1)
    left.set_ylabel("win rate vs human references (ties 1/2, 95% CI)")
    steps = [m["step"] for m in metrics]
    right.plot(steps, [m["loss"] for m in metrics], label="loss")
    right.plot(steps, [m["reward_accuracy"] for m in metrics], label="reward accuracy")
    right.set_xlabel("training step")
    right.legend()
    right.set_title("training")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def rates_text(r: dict) -> str:
    """'0.500 [0.300, 0.700]; strict 0.400 [0.200, 0.600]; ties 0.200': the win rate (ties 1/2), the strict
    win rate (ties 0) and the tie rate of one eval.json entry (an older eval.json has only the first)."""
    text = f"{r['win_rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    if "strict_win_rate" in r:
        text += (
            f"; strict {r['strict_win_rate']:.3f} [{r['strict_ci_low']:.3f}, {r['strict_ci_high']:.3f}]; "
            f"ties {r['tie_rate']:.3f}"
        )
    return text


def _fmt(r: dict) -> str:
    return f"{rates_text(r)} (n = {r['n']}, mean judge score {r['mean_score']:.3f})"


def write_report(run_dir: str | Path, seconds: float | None = None, examples: int = 4) -> Path:
    run = RunDir(run_dir)
    result = json.loads(run.eval.read_text())
    metrics, phases = _rows(run.metrics), _rows(run.phases)
    plot(run, result, metrics, run.report_plot)
    lines = [f"# bpo run report: {run.root}", ""]
    lines += [
        "Win rate against the human reference answers, judged by the evaluation judge, with 95% bootstrap intervals:",
        "first ties count 1/2, then the strict win rate (ties count 0, as in the BPO paper, whose numbers",
        "are comparable with this one) and the fraction of ties.",
        "",
    ]
    if "before" in result:
        lines.append(f"- before (initial policy): {_fmt(result['before'])}")
    lines.append(f"- after (aligned policy): {_fmt(result)}")
    if result.get("kl_to_sft") is not None:
        lines.append(f"- estimated KL(aligned || initial): {result['kl_to_sft']:.3f} nats per response")
    if "guard" in result:  # bpo.evaluation.guard: flagged runs say so in every report
        lines += [f"- {line}" for line in summary_lines(result["guard"]["flags"])]
    if seconds is not None:
        lines.append(f"- wall-clock time of the run: {seconds / 60:.1f} min ({seconds:.0f} s)")
    pairs = sum(p["pairs"] for p in phases)
    lines += ["", f"Annotation: {len(phases)} phase(s), {pairs} labelled pairs; training: {len(metrics)} steps.", ""]
    lines += [f"![win rates and training curves]({run.report_plot.name})", "", "## Example answers", ""]
    before = result.get("before", {}).get("examples", [])
    for i, ex in enumerate(result["examples"][:examples]):
        lines += [f"**Prompt:** {ex['prompt']}", ""]
        if i < len(before):
            lines.append(f"- before ({before[i]['score']:.2f}): {before[i]['response']}")
        lines += [
            f"- after ({ex['score']:.2f}): {ex['response']}",
            f"- human reference ({ex['reference_score']:.2f}): {ex['reference']}",
            "",
        ]
    run.report.write_text("\n".join(lines) + "\n")
    return run.report
