"""Issue 24, defect 2: a judge that never answers stops the run after its timeout (annotator.timeout,
eval.judge_timeout), resumably, with one line naming the judge; a signal during a judge's call is a stop
like any other (130/143 and the stop message), never "judge ... raised Interrupted".

The judges are tests/timeoutjudges.py's: tinytask's judge, which hangs once a chosen file exists."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.common.stop import StopRequested
from bpo.judging.judges import PYTHON_JUDGE_TIMEOUT, JudgeTimeout, judge_timeout, with_timeout

HERE = Path(__file__).parent
JUDGE = "timeoutjudges:hangs_when"


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeouts")
    write_task(folder)
    return folder


def _stderr_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


def test_defaults_fit_the_judges_kind(tmp_path):
    assert judge_timeout("tinytask:score", None) == judge_timeout("task", None) == PYTHON_JUDGE_TIMEOUT
    assert judge_timeout(str(tmp_path), None) is None  # a reward-model folder: computes in this process
    assert judge_timeout("tinytask:score", 2.5) == 2.5 and judge_timeout("tinytask:score", 0) is None


def test_a_call_past_its_timeout_raises_naming_the_judge_and_the_setting():
    def hangs(prompts, responses):
        time.sleep(5)

    started = time.monotonic()
    with pytest.raises(JudgeTimeout, match=r"judge 'slow' gave no answer within 0.2 s \(annotator.timeout\)"):
        with_timeout(hangs, "slow", 0.2, "annotator.timeout")(["p"], ["r"])
    assert time.monotonic() - started < 2
    assert with_timeout(lambda p, r: [1.0] * len(r), "fast", 0.2, "annotator.timeout")(["p"], ["r"]) == [1.0]


def test_stops_survive_a_sweeps_worker_process():
    """A sweep's worker sends its run's stop back pickled (bpo.experiments.sweep); before: TypeError on unpickling."""
    stop = pickle.loads(pickle.dumps(StopRequested("stopped after step 1 of 2", signal.SIGTERM)))
    assert (str(stop), stop.exit_code) == ("stopped after step 1 of 2", 143)
    timeout = pickle.loads(pickle.dumps(JudgeTimeout("j", 0.5, "annotator.timeout")))
    assert timeout.exit_code == 6 and "within 0.5 s" in str(timeout)


def test_annotator_hangs_mid_run_stops_resumably_then_resumes(task_dir, monkeypatch, capsys):
    """The judge answers phase 0 and hangs in phase 1: exit 6, one line naming the judge and the timeout and how
    to resume; the checkpoint at the end of phase 0 stays; the resumed run (judge answering again) finishes."""
    out = task_dir / "annotator-hangs"
    monkeypatch.setenv("BPO_TEST_HANG_WHEN", str(out / "pairs" / "phase-000.jsonl"))
    started = time.monotonic()
    code = main(run_args(task_dir, out, f"annotator.judge={JUDGE}", "annotator.timeout=0.5"))
    lines = _stderr_lines(capsys)
    assert code == 6, lines
    assert time.monotonic() - started < 60
    assert lines == [
        f"bpo: judge '{JUDGE}' gave no answer within 0.5 s (annotator.timeout); make it answer, or raise "
        f"annotator.timeout; stopped after step 3 of 6; resume with: bpo train --resume {out}"
    ]
    assert (out / "checkpoints" / "step-000003").is_dir() and not (out / "eval.json").exists()
    monkeypatch.delenv("BPO_TEST_HANG_WHEN")
    config = out / "config.yaml"
    config.write_text(config.read_text().replace("timeout: 0.5", "timeout: 30.0"))  # may change on resume
    assert main(["train", "--resume", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "eval.json").is_file()


def test_eval_judge_hangs_during_training_checkpoints_the_steps_done(task_dir, monkeypatch, capsys):
    """A learning-curve point's judge hangs after step 4 (eval.every=2; checkpoints every 2 steps and at the
    phase's end, step 3): the run checkpoints step 4 and stops; the resume starts there."""
    out = task_dir / "eval-hangs"
    monkeypatch.setenv("BPO_TEST_HANG_WHEN", str(out / "checkpoints" / "step-000003"))
    args = run_args(task_dir, out, f"eval.judge={JUDGE}", "eval.judge_timeout=0.5", "eval.every=2")
    code = main(args)
    lines = _stderr_lines(capsys)
    assert code == 6, lines
    assert len(lines) == 1 and "(eval.judge_timeout)" in lines[0] and "stopped after step 4 of 6" in lines[0]
    assert (out / "checkpoints" / "step-000004").is_dir()
    monkeypatch.delenv("BPO_TEST_HANG_WHEN")
    assert main(["train", "--resume", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "eval.json").is_file()


def test_a_judge_that_hangs_in_the_first_phase_leaves_no_folder(task_dir, monkeypatch, capsys):
    """Nothing stored yet: the run is removed, as any run that fails before its first pairs, and says so."""
    out = task_dir / "first-phase-hangs"
    trigger = task_dir / "always"
    trigger.touch()
    monkeypatch.setenv("BPO_TEST_HANG_WHEN", str(trigger))
    monkeypatch.setattr("bpo.loop.online.probe_judges", lambda *a: None)  # hang after start-up, not in its probe
    code = main(run_args(task_dir, out, f"annotator.judge={JUDGE}", "annotator.timeout=0.5"))
    lines = _stderr_lines(capsys)
    assert code == 6, lines
    assert lines[0].startswith(f"bpo: judge '{JUDGE}' gave no answer within 0.5 s (annotator.timeout)")
    assert lines[1:] == [f"bpo: nothing was kept in {out} (the run had not started)"]
    assert not out.exists()


def _signalled_during_judge(task_dir, out: Path, trigger: Path, signum: int) -> subprocess.CompletedProcess:
    """`bpo train` in a subprocess whose annotator hangs once `trigger` exists (no timeout given: the default,
    600 s), sent `signum` as soon as the judge's hanging call is under way."""
    hanging = out.parent / f"{out.name}.hanging"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "BPO_TEST_HANG_WHEN": str(trigger),
        "BPO_TEST_HANGING": str(hanging),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpo.cli", *run_args(task_dir, out, f"annotator.judge={JUDGE}")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not hanging.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)  # before the fix: it waited for the judge (60 s)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_sigterm_during_the_start_up_judge_call_is_an_interrupt(task_dir):
    """Before the fix: exit 2 and "judge ... raised Interrupted: SIGTERM"."""
    trigger = task_dir / "always"
    trigger.touch()
    out = task_dir / "sigterm-start-up"
    proc = _signalled_during_judge(task_dir, out, trigger, signal.SIGTERM)
    assert "Traceback" not in proc.stderr and "raised" not in proc.stderr, proc.stderr
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines() == ["bpo: interrupted (SIGTERM)"]
    assert not out.exists()


def test_sigterm_during_a_judge_call_mid_run_stops_like_any_signal(task_dir):
    """The judge hangs in phase 1: SIGTERM stops the wait at once (before the fix: the stop waited for the judge),
    with the stop message and exit 143; the run resumes from its phase-0 checkpoint."""
    out = task_dir / "sigterm-mid-run"
    proc = _signalled_during_judge(task_dir, out, out / "pairs" / "phase-000.jsonl", signal.SIGTERM)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"bpo: SIGTERM during a call of judge '{JUDGE}'; stopped after step 3 of 6; resume with: bpo train "
        f"--resume {out}"
    )
    assert (out / "checkpoints" / "step-000003").is_dir()
