"""`bpo train --dry-run` and bpo.dry_run: every check of a real run, a probe, counts equal to the real run's,
and no run folder."""

from __future__ import annotations

import countjudge
import pytest
from tinytask import run_args, write_task

import bpo
from bpo.cli import main
from bpo.common.jsonl import read_log

SETTINGS = (
    "annotator.kind=rule",
    "annotator.judge=countjudge:annotate",
    "eval.judge=countjudge:evaluate",
    "sampling.temperature=2.0",  # two samples of a prompt (almost) never agree: no pair is resampled
    "schedule.steps=6",
    "schedule.phases=3",
    "schedule.batch_size=4",
    "eval.every=2",
    "eval.every_prompts=3",
    "eval.prompts=8",
)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("dry") / "task").parent


def test_the_dry_run_counts_what_the_real_run_does_and_writes_nothing(task, tmp_path, capsys):
    """T = 6, F = 3, B = 4: K = 2, M = 8, N = 24. The annotator (kind=rule): one call per phase (8 pairs <= 32 a
    chunk) + preflight's probe = 4 calls, 2 * 24 + 2 = 50 texts. Evaluations: the final one and the initial
    policy's on 8 prompts, the curve at steps 2, 4, 6 and its start (the initial policy) on 3: 6 evaluations,
    2 judge calls each + the probe = 13 calls, 2 * (8 + 8 + 4 * 3) + 2 = 58 texts. The real run's logs and
    the judges' own counters must say the same."""
    out = tmp_path / "run"
    args = run_args(task, out, *SETTINGS)
    countjudge.reset()
    assert main([*args, "--dry-run"]) == 0
    assert not out.exists()
    printed = capsys.readouterr().out
    assert "T = 6 steps, F = 3 phases, K = 2 steps per phase, M = 8 pairs per phase, N = 24 pairs, B = 4" in printed
    assert "annotator's judge: 4 calls, 50 responses scored" in printed
    assert "evaluation: 6 evaluations, evaluation judge: 13 calls, 58 texts scored" in printed
    assert "estimated time:" in printed and "peak memory (probe):" in printed

    plan = bpo.dry_run(overrides=args[1:-1])  # the API: the same plan (without `train` and `--quiet`)
    counts = plan["counts"]
    assert not out.exists()
    countjudge.reset()
    assert main(args) == 0
    phases = read_log(out / "phases.jsonl")
    assert [p["identical"] + p["ties"] for p in phases] == [0, 0, 0]  # the premise: nothing was resampled
    assert counts["labels"] == sum(
        len(read_log(out / "pairs" / f)) for f in sorted(p.name for p in (out / "pairs").iterdir())
    )
    assert counts["annotator_calls"] == countjudge.CALLS["annotate"] == 4
    assert counts["annotator_responses"] == countjudge.TEXTS["annotate"] == 50
    assert counts["eval_calls"] == countjudge.CALLS["evaluate"] == 13
    assert counts["eval_responses"] == countjudge.TEXTS["evaluate"] == 58
    # evals.jsonl: the curve's start (step 0), steps 2, 4, 6, and the final row, which holds the initial policy's too
    assert counts["eval_points"] == len(read_log(out / "evals.jsonl")) + 1 == 6
    assert counts["steps"] == len([r for r in read_log(out / "metrics.jsonl") if "loss" in r]) == 6
    assert counts["phases"] == len(phases) == 3
    assert plan["device"] == "cpu" and plan["dtype"] == "float32" and plan["peak_memory_bytes"] > 0
    assert plan["seconds"]["total"] > 0 and plan["seconds"]["training"] > 0


def test_the_dry_run_refuses_what_a_run_refuses_and_a_resume(task, tmp_path, capsys):
    """The same checks: an out folder holding someone's files, a bad key; --resume has nothing to plan."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a run")
    assert main([*run_args(task, out, *SETTINGS), "--dry-run"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "not a run" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*run_args(task, tmp_path / "x", "beta=-1"), "--dry-run"]) == 2
    assert "beta" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["train", "--resume", str(out), "--dry-run"]) == 2
    assert "--dry-run plans a new run" in capsys.readouterr().err


def test_plan_counts_for_people_and_given_pairs():
    """Human raters with overlap 2: labels 2N, no judge calls (the probe skips people); data.pairs: no labels.
    The evaluation without the initial policy and no curve: one evaluation of 5 prompts, 2 calls + the probe."""
    from bpo.core.schedule import Schedule
    from bpo.loop.dryrun import plan_counts

    schedule = Schedule(steps=4, phases=2, pairs=16, batch_size=4)
    cfg = bpo.make_config(
        overrides=["annotator.kind=human", "annotator.overlap=2", "eval.before=false", "eval.every=0"]
    )
    c = plan_counts(cfg, schedule, eval_examples=5, curve_examples=3)
    assert (c.labels, c.annotator_calls, c.annotator_responses) == (32, 0, 0)
    assert (c.eval_points, c.eval_calls, c.eval_responses, c.eval_prompts) == (1, 3, 12, (5,))
    llm = bpo.make_config(overrides=["annotator.kind=llm", "annotator.model=m", "annotator.base_url=http://x/v1"])
    assert plan_counts(llm, schedule, 5, 3).annotator_calls == 2 * 16 + 1  # both orders of each pair, + the probe
