"""The collapse guard (bpo.evaluation.guard): its rule on hand-worked points, its answer statistics, and a run
driven to collapse by a learning rate 300x the default, flagged at its first evaluation and stopped resumably."""

from __future__ import annotations

import json
import math

import pytest

from bpo.cli import main
from bpo.evaluation.guard import GuardConfig, Point, answer_stats, assess, degenerate_kind

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
    """reviews with optim.lr=1.0 (the default is 3e-3): at its first evaluation (step 4) the judge score has
    fallen far below the start's; with guard.on_collapse=stop the run checkpoints at step 4 and exits with
    code 5 and one line saying what to change; --resume continues (the checks that stopped it only warn) to
    the end, and eval.json's guard section is "flagged" with the step-4 flags."""
    out = tmp_path / "collapse"
    settings = ["schedule.steps=8", "eval.every=4", "eval.prompts=32", "lora.ensemble=1", "optim.lr=1.0"]
    assert main(["train", "task=reviews", f"out={out}", *settings, "guard.on_collapse=stop", "--quiet"]) == 5
    err = capsys.readouterr().err
    stop = [line for line in err.splitlines() if line.startswith("bpo: collapse guard:")]
    assert len(stop) == 1 and "stopped after step 4" in stop[0] and f"bpo train --resume {out}" in stop[0]
    assert "Traceback" not in err and not (out / "eval.json").exists()
    assert (out / "checkpoints" / "step-000004").is_dir()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["guard"]["status"] == "flagged"
    assert {f["check"] for f in result["guard"]["flags"] if f["step"] == 4} >= {"score"}
    assert result["mean_score"] < result["before"]["mean_score"]
