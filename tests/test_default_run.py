"""The first run a user makes, `bpo train` with no arguments, must show learning.

Before the defaults were changed (T = 16, B = 8, lr 5e-4, greedy evaluation) it reported win rate
0.000 before and after. Now the built-in `reviews` task's win rate against the human-style references
and the judge's mean score must both rise, with 95% intervals that do not overlap.
"""

from __future__ import annotations

import json

from bpo.cli import main


def test_default_run_learns_visibly(tmp_path, capsys):
    out = tmp_path / "first-run"
    assert main(["train", f"out={out}", "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    before = result["before"]
    assert result["ci_low"] > before["ci_high"], (before["win_rate"], result["win_rate"])
    assert result["mean_score"] > before["mean_score"]
    assert result["n"] == before["n"] == 128
    assert result["guard"]["status"] == "ok", result["guard"]["flags"]  # the collapse guard stays silent
    captured = capsys.readouterr()
    assert "win rate vs references" in captured.out and "collapse guard" not in captured.err


def test_default_sorting_run_is_not_flagged(tmp_path, capsys):
    """The other built-in task's default run, evaluated during training too (eval.every=16: 4 points): the
    collapse guard flags none of them, nor the final evaluation."""
    out = tmp_path / "sorting"
    assert main(["train", "task=sorting", f"out={out}", "eval.every=16", "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["guard"]["status"] == "ok", result["guard"]["flags"]
    assert [p["step"] for p in result["guard"]["points"]] == [16, 32, 48, 64, 64]
    assert "collapse guard" not in capsys.readouterr().err
