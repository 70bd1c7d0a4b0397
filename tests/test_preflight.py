"""What the checks before a run (bpo.loop.preflight) and the CLI's error path do beyond refusing: prompts too
long for the context are skipped with a count, a failed new run unmakes only what it made, a run that
fails after storing pairs is kept and says how to continue, eval.json is strict JSON."""

from __future__ import annotations

import json
import math

import pytest
from tinytask import run_args, write_task

import bpo.loop.online
from bpo.cli import main
from bpo.common.configlib import load_config
from bpo.data.task import Example, Task
from bpo.judging.judges import JudgeError
from bpo.loop.config import RunConfig
from bpo.loop.preflight import Base, fit_task
from bpo.model.loading import load_tokenizer
from bpo.run.rundir import RunDir


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinytask")
    write_task(folder)
    return folder


def test_prompts_longer_than_the_context_are_skipped_with_a_count(task_dir):
    long = " ".join(["w5"] * 130)
    task = Task(
        "t",
        train=[Example("w4 w5", "w40"), Example(long, "w40"), Example("w6", "w41")],
        eval=[Example("w7", "w42"), Example(long, "w42")],
        demonstrations=[Example("w4", long)],
    )
    base = Base(task_dir / "model", load_tokenizer(task_dir / "model"), context=128)
    cfg = load_config(RunConfig, None, ["sampling.max_new_tokens=8"])
    with pytest.warns(UserWarning) as caught:
        fitted = fit_task(cfg, task, base)
    messages = [str(w.message) for w in caught]
    assert any("skipping 1 of 3 train examples" in m and "context of 128 tokens" in m for m in messages), messages
    assert any("skipping 1 of 2 eval examples" in m for m in messages), messages
    assert [e.prompt for e in fitted.train] == ["w4 w5", "w6"] and [e.prompt for e in fitted.eval] == ["w7"]
    assert fitted.demonstrations == task.demonstrations  # no SFT stage: demonstrations are not used
    with pytest.raises(Exception, match="all 1 demonstrations examples are longer"):
        fit_task(load_config(RunConfig, None, ["sft.steps=2"]), task, base)


def test_failed_new_run_in_an_existing_empty_folder_leaves_it_empty(task_dir, capsys):
    """The folder was the user's: what the run made in it goes, the folder stays."""
    out = task_dir / "given"
    out.mkdir()
    assert main(run_args(task_dir, out, "annotator.tie_band=1e9")) == 2  # every pair a tie: no usable pairs
    err = capsys.readouterr().err
    assert "only 0 of 12 usable pairs" in err and "nothing was kept" in err
    assert out.is_dir() and list(out.iterdir()) == []


def test_run_failing_after_its_pairs_are_stored_is_kept_and_says_how_to_continue(task_dir, capsys, monkeypatch):
    out = task_dir / "broke-in-phase-1"
    real = bpo.loop.online.collect_pairs

    def judge_breaks_in_phase_1(*args, **kwargs):
        if args[4] == 1:  # the phase
            raise JudgeError("judge 'x:y' returned nan as score 3; a judge returns one finite number per response")
        return real(*args, **kwargs)

    monkeypatch.setattr(bpo.loop.online, "collect_pairs", judge_breaks_in_phase_1)
    assert main(run_args(task_dir, out)) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "bpo: error: judge 'x:y' returned nan as score 3; a judge returns one finite number per response",
        f"bpo: the run so far is kept; continue it with: bpo train --resume {out}",
    ]
    assert (out / "pairs" / "phase-000.jsonl").exists() and (out / "checkpoints" / "step-000003").exists()
    monkeypatch.setattr(bpo.loop.online, "collect_pairs", real)  # the judge is fixed
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == list(range(6))


def test_eval_json_is_strict_json_with_missing_numbers_as_null(tmp_path):
    run = RunDir(tmp_path)
    run.write_eval({"win_rate": 0.5, "ci_low": math.nan, "kl_to_sft": math.inf, "before": {"ci_high": -math.inf}})
    text = run.eval.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"win_rate": 0.5, "ci_low": None, "kl_to_sft": None, "before": {"ci_high": None}}


def test_an_os_error_while_writing_names_the_file_and_leaves_no_folder(task_dir, capsys, monkeypatch):
    """A full disk after config.yaml was written: one line naming the file; the half-made folder goes."""
    import errno

    out = task_dir / "disk-full"
    real = RunDir.create

    def create_then_fail(self, cfg):
        real(self, cfg)
        raise OSError(errno.ENOSPC, "No space left on device", str(self.metrics))

    monkeypatch.setattr(RunDir, "create", create_then_fail)
    assert main(run_args(task_dir, out)) == 2
    err = capsys.readouterr().err
    assert (
        err.splitlines()[0] == f"bpo: error: {out / 'metrics.jsonl'}: No space left on device"
        and "Traceback" not in err
    )
    assert not out.exists()


def test_a_file_the_os_refuses_to_read_is_named(tmp_path, monkeypatch):
    """(Permission bits do not stop root, so the refusal is simulated.)"""
    from pathlib import Path

    from bpo.common.jsonl import DataFileError
    from bpo.data.prefdata import read_preferences

    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    real = Path.read_bytes

    def refuse(self):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataFileError, match=rf"^{path}: JSONL file unreadable \(Permission denied\)$"):
        read_preferences(path)
