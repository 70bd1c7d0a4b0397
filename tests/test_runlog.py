"""The run log: every record reaches every sink; TensorBoard's own reader loads what a run wrote, with
one point per training step, per phase and per evaluation, and a resumed run does not draw twice."""

from __future__ import annotations

import json

import pytest
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.common.configlib import ConfigError, load_config
from bpo.run.runlog import RunLog, TensorBoardSink, phase_time, scalars

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return acc


def test_scalars_keep_finite_numbers_and_nest_with_slashes():
    row = {
        "step": 4,
        "phase": 1,
        "player": "mu",
        "loss": 0.5,
        "n": 3,
        "ok": True,
        "text": "x",
        "kl": None,
        "bad": float("nan"),
        "list": [1.0],
        "before": {"win_rate": 0.25, "examples": []},
    }
    assert scalars(row) == {"loss": 0.5, "n": 3.0, "before/win_rate": 0.25}


def test_phase_time_sums_the_phase_steps_of_every_session():
    """Phase 1's row gives sampling 1.5 s, annotation 0.25 s and 2 s for the whole collection; its steps took 0.5 +
    0.25 (the first
    session) + 0.125 (after a resume) = 0.875 s of training; phase 0's rows are not counted."""
    phases = [
        {"phase": 0, "sampling_seconds": 9.0, "annotation_seconds": 9.0, "seconds": 20.0},
        {"phase": 1, "sampling_seconds": 1.5, "annotation_seconds": 0.25, "seconds": 2.0},
    ]
    metrics = [
        {"step": 0, "phase": 0, "seconds": 7.0},
        {"step": 1, "phase": 1, "seconds": 0.5},
        {"step": 2, "phase": 1, "seconds": 0.25},
        {"step": 3, "phase": 1, "seconds": 0.125},
    ]
    assert phase_time(1, phases, metrics) == {
        "phase": 1,
        "sampling_seconds": 1.5,
        "annotation_seconds": 0.25,
        "collection_seconds": 2.0,
        "training_seconds": 0.875,
    }


class Recorder:
    def __init__(self):
        self.seen = []

    def write(self, stream, row, step):
        self.seen.append((stream, row, step))

    def close(self):
        self.seen.append("closed")


def test_every_record_reaches_every_sink():
    a, b = Recorder(), Recorder()
    log = RunLog([a, b])
    log.write("evals", {"step": 8, "win_rate": 0.5}, 8)
    log.close()
    assert a.seen == b.seen == [("evals", {"step": 8, "win_rate": 0.5}, 8), "closed"]


def test_jsonl_cannot_be_left_out():
    from bpo.loop.config import RunConfig

    with pytest.raises(ConfigError, match="log: to must include jsonl"):
        load_config(RunConfig, None, ["log.to=[tensorboard]"])
    with pytest.raises(ConfigError, match="must be one of jsonl, tensorboard"):
        load_config(RunConfig, None, ["log.to=[jsonl,wandb]"])


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinytask")
    write_task(folder)
    return folder


def test_tensorboard_events_hold_every_step_phase_and_evaluation_and_survive_a_resume(task_dir, tmp_path):
    """T = 6 steps in F = 2 phases (first steps 0 and 3), evaluated during training after steps 3 and 6
    (eval.every=3) and at the end (step 6 again, on eval.prompts), after the initial policy's row at step 0
    (the collapse guard's start, evaluated once, not again on resume); each phase's time split into sampling,
    annotation and training at its end (steps 3 and 6). Then the run is resumed from its step-4 checkpoint:
    steps 4 and 5, phase 1's time and the evaluations at 6 are logged again, and TensorBoard shows each
    once, with the resumed values (the purge marker hides the first process's)."""
    out = tmp_path / "run"
    assert main(run_args(task_dir, out, "log.to=[jsonl,tensorboard]", "eval.every=3")) == 0
    acc = events(out / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    assert {
        "metrics/loss",
        "metrics/reward_margin",
        "metrics/reward_accuracy",
        "metrics/lr",
        "metrics/grad_norm",
        "metrics/seconds",
        "phases/sampling_seconds",
        "phases/annotation_seconds",
        "phases/seconds",
        "evals/win_rate",
        "evals/strict_win_rate",
        "evals/kl_to_sft",
        "evals/before/win_rate",
        "phase_times/sampling_seconds",
        "phase_times/annotation_seconds",
        "phase_times/training_seconds",
    } <= tags
    logged = rows(out / "metrics.jsonl")
    losses = [r for r in logged if "loss" in r]
    assert [e.step for e in acc.Scalars("metrics/loss")] == [0, 1, 2, 3, 4, 5]
    assert [e.value for e in acc.Scalars("metrics/loss")] == pytest.approx([r["loss"] for r in losses], rel=1e-6)
    assert [e.step for e in acc.Scalars("phases/sampling_seconds")] == [0, 3]
    assert [e.value for e in acc.Scalars("phases/annotation_seconds")] == pytest.approx(
        [r["annotation_seconds"] for r in rows(out / "phases.jsonl")], abs=1e-6
    )
    assert_phase_times(out, acc, losses)
    result = json.loads((out / "eval.json").read_text())
    evals = rows(out / "evals.jsonl")
    assert [(r["step"], r.get("initial", False)) for r in evals] == [(0, True), (3, False), (6, False), (6, False)]
    assert evals[-1]["win_rate"] == result["win_rate"]
    assert [(e.step, e.value) for e in acc.Scalars("evals/win_rate")] == [
        (r["step"], pytest.approx(r["win_rate"])) for r in evals
    ]

    (out / "checkpoints" / "step-000006" / "COMPLETE").unlink()  # the latest complete one is now step 4
    with pytest.warns(UserWarning, match="partial checkpoint"):
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    acc = events(out / "tensorboard")
    resumed = [r for r in rows(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in resumed] == [0, 1, 2, 3, 4, 5]
    assert [e.step for e in acc.Scalars("metrics/loss")] == [0, 1, 2, 3, 4, 5]
    assert [e.value for e in acc.Scalars("metrics/loss")] == pytest.approx([r["loss"] for r in resumed], rel=1e-6)
    assert_phase_times(out, acc, resumed)  # phase 1's training: step 3 of the first session, 4 and 5 of the second
    evals = rows(out / "evals.jsonl")
    assert [r["step"] for r in evals] == [0, 3, 6, 6]
    assert [(e.step, e.value) for e in acc.Scalars("evals/win_rate")] == [
        (r["step"], pytest.approx(r["win_rate"])) for r in evals
    ]


def test_a_resume_at_a_phase_s_end_logs_that_phase_s_time_once(task_dir, tmp_path):
    """Checkpoints only at the phase ends (steps 3 and 6); with step 6's removed the run resumes at step 3,
    exactly where phase 0 ended: its time row is dropped with the logs past the checkpoint and logged again,
    once, in phase_times.jsonl and in TensorBoard."""
    out = tmp_path / "run"
    assert main(run_args(task_dir, out, "log.to=[jsonl,tensorboard]", "checkpoint.every=0")) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    (out / "checkpoints" / "step-000006" / "COMPLETE").unlink()
    with pytest.warns(UserWarning, match="partial checkpoint"):
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    resumed = [r for r in rows(out / "metrics.jsonl") if "loss" in r]
    assert_phase_times(out, events(out / "tensorboard"), resumed)


def assert_phase_times(out, acc, steps):
    """One phase_times row per phase at its end (steps 3 and 6), training = the sum of its 3 steps' seconds,
    sampling and annotation = its phases.jsonl row; TensorBoard holds the same points once."""
    times, collected = rows(out / "phase_times.jsonl"), rows(out / "phases.jsonl")
    assert [(r["step"], r["phase"]) for r in times] == [(3, 0), (6, 1)]
    assert [r["training_seconds"] for r in times] == pytest.approx(
        [sum(r["seconds"] for r in steps[:3]), sum(r["seconds"] for r in steps[3:])], abs=2e-3
    )
    assert [r["sampling_seconds"] for r in times] == [r["sampling_seconds"] for r in collected]
    assert [(e.step, e.value) for e in acc.Scalars("phase_times/training_seconds")] == [
        (3, pytest.approx(times[0]["training_seconds"])),
        (6, pytest.approx(times[1]["training_seconds"])),
    ]
    assert [e.step for e in acc.Scalars("phase_times/annotation_seconds")] == [3, 6]


def test_a_resume_from_step_0_shows_each_step_once(tmp_path):
    """A run killed before its first checkpoint logged steps 0 and 1; resumed from step 0 it logs them again
    (other values): TensorBoard keeps only the second process's points."""
    import time

    first = TensorBoardSink(tmp_path)
    for step, loss in ((0, 0.9), (1, 0.8)):
        first.write("metrics", {"step": step, "loss": loss}, step)
    first.close()
    time.sleep(1.1)  # event files are named by the second they were opened in
    again = TensorBoardSink(tmp_path, resumed_at=0)
    for step, loss in ((0, 0.7), (1, 0.6)):
        again.write("metrics", {"step": step, "loss": loss}, step)
    again.close()
    assert [(e.step, pytest.approx(e.value)) for e in events(tmp_path).Scalars("metrics/loss")] == [(0, 0.7), (1, 0.6)]


def test_tensorboard_without_its_package_is_refused_with_the_extra_named(monkeypatch):
    import importlib.util

    from bpo.loop.config import RunConfig

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else find_spec(name, *a)
    )
    with pytest.raises(
        ConfigError,
        match=r"log: tensorboard needs the tensorboard package, which is not installed: pip install "
        r"'bpo\[tensorboard\]'",
    ):
        load_config(RunConfig, None, ["log.to=[jsonl,tensorboard]"])
