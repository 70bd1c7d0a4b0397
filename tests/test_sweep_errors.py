"""Issue 24, defect 8 (issue 20's bullet): `bpo reproduce` ends as `bpo train` does. A run refused inside the
sweep: bpo's one-line error and exit 2; SIGTERM during a sweep's run: the stop message and 143, no traceback;
the same command again reuses the finished runs and resumes the stopped one.

The sweep is a tiny Table 1 on tests/tinytask.py's task (three methods, one seed, two steps each)."""

from __future__ import annotations

import os
import signal

import pytest
from tinytask import write_task

from bpo.cli import main
from bpo.experiments.reproduce import Plan


def tiny_plan(folder):
    return Plan(
        tasks=(str(folder / "task.yaml"),),
        seeds=(0,),
        losses=("dpo",),
        betas=(0.5,),
        phases=(),
        sections=("table1",),
        overrides=(
            f"policy.path={folder / 'model'}",
            "schedule.steps=2",
            "schedule.batch_size=2",
            "sampling.max_new_tokens=4",
            "eval.prompts=4",
            "eval.every_prompts=2",
            "lora.rank=2",
            "lora.ensemble=1",
        ),
    )


@pytest.fixture
def sweep_task(tmp_path, monkeypatch):
    write_task(tmp_path)
    monkeypatch.setattr("bpo.experiments.papers.quick_plan", lambda *args, **kwargs: tiny_plan(tmp_path))
    return tmp_path


def _reproduce(folder) -> int:
    return main(["reproduce", "--quick", "--select", "paper", "--jobs", "1", "--out", str(folder / "out"), "--quiet"])


def _lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


def test_a_refused_run_inside_a_sweep_is_one_line_and_exit_2(sweep_task, capsys):
    train = (sweep_task / "train.jsonl").read_text().splitlines()
    (sweep_task / "eval.jsonl").write_text("\n".join(train[:8]) + "\n")  # held-out prompts also trained on
    assert _reproduce(sweep_task) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("bpo: error: ") and "also train prompts" in lines[0], lines


def test_sigterm_during_a_sweep_stops_then_the_sweep_goes_on(sweep_task, monkeypatch, capsys):
    """SIGTERM during the second run's first step (before the fix: StopRequested's traceback)."""
    import bpo.loop.online

    real_step, calls = bpo.loop.online.train_step, []

    def step_then_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the first step of the second run
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(bpo.loop.online, "train_step", step_then_sigterm)
    assert _reproduce(sweep_task) == 143
    lines = _lines(capsys)
    assert lines[0] == "bpo: SIGTERM received; finishing this step, then checkpointing (signal again to exit at once)"
    assert lines[1].startswith("bpo: stopped after step 1 of 2; resume with: bpo train --resume "), lines
    assert lines[2:] == [
        "bpo: or run the same bpo reproduce command again: its finished runs are reused, this one resumed"
    ]
    runs = sorted((sweep_task / "out" / "runs" / "task").iterdir())
    finished = [r for r in runs if (r / "eval.json").is_file()]
    assert len(finished) == 1
    stamp = (finished[0] / "eval.json").stat().st_mtime_ns

    monkeypatch.setattr(bpo.loop.online, "train_step", real_step)
    assert _reproduce(sweep_task) == 0, capsys.readouterr().err
    assert (finished[0] / "eval.json").stat().st_mtime_ns == stamp  # reused, not trained again
    runs = sorted((sweep_task / "out" / "runs" / "task").iterdir())
    assert len(runs) == 3 and all((r / "eval.json").is_file() for r in runs)
