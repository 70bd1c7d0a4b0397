"""The collapse guard (bpo.evaluation.guard): its rule on hand-worked points, its answer statistics, and a run
driven to collapse by a learning rate 300x the default, flagged at its first evaluation and stopped resumably."""

from __future__ import annotations

import json
import math

import pytest

from bpo.cli import main
from bpo.evaluation.guard import (
    GuardConfig,
    Point,
    answer_stats,
    assess,
    assess_phase,
    degenerate_kind,
    final_guard,
    kl_to_behavior,
)

SPEC = GuardConfig()


def checks(point, start=None):
    return [f.check for f in assess(point, start, SPEC)]


def test_score_check_trips_below_the_bound_not_at_it():
    """Start 0.57 (se 0.03), point se 0.04: the difference's se is sqrt(0.03^2 + 0.04^2) = 0.05, the bound
    0.57 - 2 * 0.05 = 0.47: a point at the bound passes, one just below is flagged with that bound."""
    start = Point(0, 0.57, 0.03, 32)
    bound = 0.57 - 2 * math.hypot(0.03, 0.04)
    assert bound == pytest.approx(0.47)
    assert checks(Point(8, bound, 0.04, 32), start) == []
    [flag] = assess(Point(8, bound - 1e-9, 0.04, 32), start, SPEC)
    assert (flag.check, flag.step, flag.bound) == ("score", 8, pytest.approx(0.47))
    assert "lower optim.lr" in flag.advice and flag.message.startswith("step 8: mean judge score 0.470")
    assert checks(Point(8, 0.1, 0.04, 32)) == []  # no start (eval.before=false): no score check


def test_kl_and_degenerate_checks():
    """KL above guard.max_kl (10) is flagged, at it not; a degenerate share above 0.5 only when above the
    start's too (a policy that began cut off at the length limit has not collapsed)."""
    assert checks(Point(4, 1.0, 0.1, 8, kl_to_sft=10.0)) == []
    assert checks(Point(4, 1.0, 0.1, 8, kl_to_sft=10.5)) == ["kl_to_sft"]
    start = Point(0, 1.0, 0.1, 8, degenerate_share=0.0)
    assert checks(Point(4, 1.0, 0.1, 8, degenerate_share=0.5), start) == []
    assert checks(Point(4, 1.0, 0.1, 8, degenerate_share=0.625), start) == ["degenerate"]
    cut_off_start = Point(0, 1.0, 0.1, 8, degenerate_share=0.75)
    assert checks(Point(4, 1.0, 0.1, 8, degenerate_share=0.75), cut_off_start) == []


def test_a_degenerate_share_must_rise_beyond_noise():
    """The shipped demo (SmolLM2, 32 new tokens) starts with 56 of 64 answers cut off at the length limit and
    ended with 59 of 64: the rise 0.047 is under 2 standard errors of the difference, sqrt(0.922 * 0.078 / 64 +
    0.875 * 0.125 / 64) = 0.053, so it is not a collapse. 64 of 64 is: se sqrt(0 + 0.875 * 0.125 / 64) = 0.041,
    the rise 0.125 is 3 of them."""
    from bpo.evaluation.guard import share_difference_se

    assert share_difference_se(59 / 64, 64, 56 / 64, 64) == pytest.approx(0.0532, abs=1e-4)
    start = Point(0, 0.26, 0.05, 64, degenerate_share=56 / 64)
    assert checks(Point(8, 0.39, 0.05, 64, degenerate_share=59 / 64), start) == []
    assert checks(Point(8, 0.39, 0.05, 64, degenerate_share=1.0), start) == ["degenerate"]


def test_kl_to_the_behavior_policy_by_hand_and_its_bound():
    """Behavior log-probs (-3, -5), the policy's now (-4, -5.5): log-ratios 1 and 0.5, mean 0.75 nats. Above
    guard.max_kl_behavior (10) a phase is flagged, at it not; eval.json's guard section lists the phase-end
    values and their flags, in step order before the final evaluation's."""
    assert kl_to_behavior([-3.0, -5.0], [-4.0, -5.5]) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        kl_to_behavior([-3.0], [])
    assert assess_phase(2, 6, 10.0, SPEC) == []
    (flag,) = assess_phase(2, 6, 12.5, SPEC)
    assert (flag.step, flag.check, flag.value, flag.bound) == (6, "kl_to_behavior", 12.5, 10.0)
    assert flag.message.startswith("step 6: phase 2 moved the policy 12.5 nats") and "schedule.phases" in flag.advice
    result = {"mean_score": 1.0, "score_se": 0.1, "n": 8, "before": {"mean_score": 1.0, "score_se": 0.1, "n": 8}}
    phases = [
        {"phase": 0, "step": 3, "kl_to_behavior": 0.4},
        {"phase": 1, "step": 6, "kl_to_behavior": 12.5, "guard": [flag.to_json()]},
    ]
    section, new = final_guard(result, [], 6, SPEC, phases)
    assert section["status"] == "flagged" and [f["check"] for f in section["flags"]] == ["kl_to_behavior"]
    assert section["phases"] == [
        {"phase": 0, "step": 3, "kl_to_behavior": 0.4},
        {"phase": 1, "step": 6, "kl_to_behavior": 12.5},
    ]
    assert new == []  # said when the phase ended


def test_degenerate_answers_and_statistics_by_hand():
    """Kinds: no word, two or more copies of one word, or as many tokens as max_new_tokens. Scores 1, 2, 3:
    mean 2, sample std 1, standard error 1/sqrt(3); lengths 2, 4, 6: mean 4; 2 of 3 answers degenerate."""
    assert degenerate_kind("  ", 0, 8) == "empty"
    assert degenerate_kind("w4 w4 w4", 3, 8) == "repeated"
    assert degenerate_kind("w4", 1, 8) is None
    assert degenerate_kind("w4 w5", 8, 8) == "cut off"
    stats = answer_stats(["", "a a", "a b"], [2, 4, 6], [1.0, 2.0, 3.0], 10)
    assert stats["score_se"] == pytest.approx(1 / math.sqrt(3))
    assert stats["mean_length"] == 4 and stats["degenerate_share"] == pytest.approx(2 / 3)
    assert stats["degenerate"] == {"empty": 1, "repeated": 1}


def test_a_collapsing_run_is_flagged_and_stopped_resumably(tmp_path, capsys):
    """reviews with optim.lr=1.0 (the default is 1e-3), on-policy (F = T = 8): the first step moves the policy
    tens of nats from the behavior policy that sampled its pairs, so with guard.on_collapse=stop the run
    checkpoints at step 1 and exits with code 5, one line saying what to change. --resume continues (that
    check only warns from then on) until the first evaluation (step 4), whose judge score has fallen far below
    the start's: a new check, so it stops again at step 4. A second --resume runs to the end, and eval.json's
    guard section is "flagged" with both checks. `bpo status` of the stopped run names the flag from its logs,
    and the run's report.md (bpo.run.report) names both flags."""
    out = tmp_path / "collapse"
    settings = ["schedule.steps=8", "eval.every=4", "eval.prompts=32", "lora.ensemble=1", "optim.lr=1.0"]

    def stop_line() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err and not (out / "eval.json").exists()
        (line,) = [line for line in err.splitlines() if line.startswith("bpo: collapse guard:")]
        assert f"bpo train --resume {out}" in line
        return line

    assert main(["train", "task=reviews", f"out={out}", *settings, "guard.on_collapse=stop", "--quiet"]) == 5
    line = stop_line()
    assert "from the behavior policy" in line and "stopped after step 1" in line
    assert (out / "checkpoints" / "step-000001").is_dir()
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out.splitlines()
    assert "1 of 8 steps trained" in status[0] and "not evaluated yet" in status[0]
    assert status[1].startswith("collapse guard: FLAGGED at step 1: ") and "from the behavior policy" in status[1]
    assert main(["train", "--resume", str(out), "--quiet"]) == 5
    line = stop_line()
    assert "mean judge score" in line and "stopped after step 4" in line
    assert (out / "checkpoints" / "step-000004").is_dir()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["guard"]["status"] == "flagged"
    assert {f["check"] for f in result["guard"]["flags"] if f["step"] == 4} >= {"score"}
    assert {f["check"] for f in result["guard"]["flags"] if f["step"] == 1} == {"kl_to_behavior"}
    assert len(result["guard"]["phases"]) == 8 and result["guard"]["phases"][0]["kl_to_behavior"] > 10
    assert result["mean_score"] < result["before"]["mean_score"]
    from bpo.run.report import write_report

    report = write_report(out).read_text()
    assert "- collapse guard: FLAGGED at step 1: " in report and "- collapse guard: FLAGGED at step 4: " in report
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert f"evaluated, win rate vs references {result['win_rate']:.3f} [" in status
    assert "collapse guard: FLAGGED at step 4: " in status
    assert main(["compare", str(out), "sft", "--prompts", "4", "--quiet"]) == 0
    compared = capsys.readouterr().out
    assert f"collapse guard: {out} was flagged ({len(result['guard']['flags'])} flag(s); first at step 1: " in compared


def test_the_phase_end_check_scores_the_phases_first_pairs_or_none(tmp_path, monkeypatch):
    """On-policy, T = F = 2, B = 4, guard.phase_kl_pairs=2: phase 1's kl_to_behavior is the mean of
    behavior − current log-prob over the 4 responses of its first 2 pairs, the current policy being the final
    one (phase 1 ends the run), recomputed here from the pairs file and the saved adapters. With 0 the check is
    off: no phase row holds a kl_to_behavior."""
    import torch
    from tinytask import write_task

    from bpo.api import open_trained
    from bpo.common.jsonl import read_log
    from bpo.model.policy import MERGED
    from bpo.model.scoring import pair_logprobs

    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))
    task = write_task(tmp_path / "task")
    base = [
        f"task={task}",
        f"policy.path={task.parent / 'model'}",
        "schedule.steps=2",
        "schedule.batch_size=4",
        "sampling.max_new_tokens=6",
        "eval.prompts=4",
        "lora.rank=4",
        "lora.ensemble=1",
        "--quiet",
    ]
    out = tmp_path / "two"
    assert main(["train", f"out={out}", "guard.phase_kl_pairs=2", *base]) == 0
    run, cfg, _, policy = open_trained(out, progress=False)
    pairs = run.read_pairs(1)[:2]
    with policy.use(MERGED) as model, torch.no_grad():
        current = [lp for both in pair_logprobs(model, pairs, policy.tokenizer.pad_token_id) for lp in both]
    behavior = [lp for p in pairs for lp in (p.behavior_chosen_logp, p.behavior_rejected_logp)]
    expected = sum(b - c for b, c in zip(behavior, current)) / 4
    [row] = [r for r in read_log(out / "phase_times.jsonl") if r["step"] == 2]
    assert row["kl_to_behavior"] == pytest.approx(expected, abs=1e-4)
    off = tmp_path / "off"
    assert main(["train", f"out={off}", "guard.phase_kl_pairs=0", *base]) == 0
    rows = read_log(off / "phase_times.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all("kl_to_behavior" not in r for r in rows)
