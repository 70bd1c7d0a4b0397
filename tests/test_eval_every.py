"""eval.every: evaluations during training are rows of evals.jsonl that change nothing else.

On the tiny file task (tests/tinytask.py, T = 6 steps, checkpoints every 2): with eval.every=2 the run
logs evaluations after steps 2, 4 and 6 (each with its phase; the initial policy's at step 0 before them) before
the final one, and training rows
equal to those of the same run without them (evaluation samples in a forked RNG); the last one, on as
many prompts as the final evaluation, equals eval.json (same policy, prompts and sampling seed). A run
resumed from its step-4 checkpoint logs the same evaluations as the uninterrupted run.
"""

from __future__ import annotations

import json
import shutil

import pytest
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.common.jsonl import read_log


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("every")
    write_task(folder)
    out = {}
    for name, extra in (("plain", ()), ("every", ("eval.every=2", "eval.every_prompts=4"))):
        out[name] = folder / name
        assert main(run_args(folder, out[name], "eval.kl=true", *extra)) == 0
    return out


def during_training(run):
    return [r for r in read_log(run / "evals.jsonl") if "phase" in r]


def test_evaluation_rows_after_every_k_steps(runs):
    rows = during_training(runs["every"])
    assert [(r["step"], r["phase"]) for r in rows] == [(2, 0), (4, 1), (6, 1)]  # T = 6 in 2 phases of 3 steps
    assert all(r["n"] == 4 and 0 <= r["strict_win_rate"] <= 1 and "kl_to_sft" in r for r in rows)
    # the initial policy on the same prompts first (the collapse guard's start), then the final evaluation
    assert [r["step"] for r in read_log(runs["every"] / "evals.jsonl")] == [0, 2, 4, 6, 6]
    assert not during_training(runs["plain"])


def test_the_initial_row_is_the_initial_policys_evaluation(runs):
    """The step-0 row ("initial") evaluates the initial policy on the curve's 4 prompts with the run's seed:
    the final evaluation's "before" (the same 4 prompts and seed) must give the same numbers."""
    [initial] = [r for r in read_log(runs["every"] / "evals.jsonl") if r.get("initial")]
    before = json.loads((runs["every"] / "eval.json").read_text())["before"]
    assert initial["n"] == before["n"] == 4
    assert initial["mean_score"] == pytest.approx(before["mean_score"])
    assert initial["strict_win_rate"] == before["strict_win_rate"]


def test_training_is_unchanged(runs):
    assert without_seconds(read_log(runs["every"] / "metrics.jsonl")) == without_seconds(
        read_log(runs["plain"] / "metrics.jsonl")
    )
    assert len(read_log(runs["plain"] / "metrics.jsonl")) == 6


def test_last_evaluation_equals_the_final_one(runs):
    last = during_training(runs["every"])[-1]
    final = json.loads((runs["every"] / "eval.json").read_text())
    assert final["n"] == 4
    assert last["strict_win_rate"] == final["strict_win_rate"] and last["win_rate"] == final["win_rate"]
    assert last["mean_score"] == pytest.approx(final["mean_score"])
    assert last["kl_to_sft"] == pytest.approx(final["kl_to_sft"])


def test_resume_logs_the_same_evaluations(runs, tmp_path):
    """Resume from the step-4 checkpoint: the rows from step 4 on are dropped and logged again, the same."""
    run = tmp_path / "resumed"
    shutil.copytree(runs["every"], run)
    shutil.rmtree(run / "checkpoints" / "step-000006")
    (run / "eval.json").unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert read_log(run / "evals.jsonl") == read_log(runs["every"] / "evals.jsonl")
    assert without_seconds(read_log(run / "metrics.jsonl")) == without_seconds(
        read_log(runs["every"] / "metrics.jsonl")
    )
