"""Issue 24, defect 6: messages that name the key and the value, and bpo's own one-line warnings."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bpo.common.configlib import ConfigError, load_config
from bpo.loop.config import RunConfig


def _refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, None, list(overrides))
    return str(err.value)


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("lora.rank=0", "lora: rank must be positive, got 0"),
        ("lora.ensemble=-2", "lora: ensemble must be positive, got -2"),
        ("lora.alpha=0", "lora: alpha must be positive and finite, got 0.0"),
        ("sampling.top_p=1.5", "sampling: top_p must be in (0, 1], got 1.5"),
        ("sampling.max_new_tokens=0", "sampling: max_new_tokens must be positive, got 0"),
    ],
)
def test_a_refused_value_is_named_with_its_key(setting, fragment):
    """Before: 'rank, alpha and ensemble must be positive' and 'need 0 < top_p <= 1, ...', no value."""
    assert fragment in _refusal(setting)


def test_a_control_character_in_config_json_says_at_once(tmp_path):
    """Before: 'Invalid control character at at column ...'."""
    from bpo.model.loading import ModelFolderError, check_model_folder

    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text('{"model_type": "llama\x01"}')
    with pytest.raises(ModelFolderError) as err:
        check_model_folder(tmp_path)
    assert "at at" not in str(err.value) and "Invalid control character at column" in str(err.value)


def test_warnings_are_bpo_lines():
    """Before: '/path/file.py:12: UserWarning: ...' and the warnings.warn(...) source line."""
    from bpo.common.console import bpo_warnings

    with bpo_warnings():
        text = warnings.formatwarning("skipping 3 of 8 eval examples", UserWarning, "/x/preflight.py", 12, "warn(...)")
    assert text == "bpo: warning: skipping 3 of 8 eval examples\n"
    assert warnings.formatwarning("m", UserWarning, "f.py", 1).startswith("f.py:1: UserWarning")  # restored


def test_more_eval_prompts_than_the_split_holds_is_said_once(tmp_path, capsys):
    """The tiny task holds 8 held-out prompts; eval.prompts=100000 evaluates those 8 and says so in one
    warning, though the run evaluates 4 times (every 2 of 6 steps, and at the end) and bpo eval once more
    (its own warning). Before: no word at all."""
    import json

    from tinytask import run_args, write_task

    from bpo.cli import main

    write_task(tmp_path / "task")
    out = tmp_path / "run"
    args = run_args(tmp_path / "task", out, "eval.prompts=100000", "eval.every=2", "eval.every_prompts=2")
    said = "eval.prompts=100000, but task 'task' has 8 heldout prompts; evaluating on those 8"

    def warnings_of(argv):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")  # every call counted, none folded into an earlier one
            assert main(argv) == 0
        return [str(w.message) for w in seen if "eval.prompts" in str(w.message)]

    assert warnings_of(args) == [said]
    assert json.loads((out / "eval.json").read_text())["n"] == 8
    assert warnings_of(["eval", str(out), "--quiet"]) == [said]


def test_an_error_during_training_starts_a_line_of_its_own(tmp_path, capsys, monkeypatch):
    """With progress bars on, a judge failing in phase 1 (after the start-up check passed) left the
    'training' bar's last state and the error on one line: '\\rtraining:  0%| ... bpo: error: ...'."""
    from tinytask import run_args, write_task

    from bpo.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "data" / "bad"))  # badjudges.py
    write_task(tmp_path / "task")
    args = [a for a in run_args(tmp_path / "task", tmp_path / "run", "annotator.judge=badjudges:nan_after_probe")]
    capsys.readouterr()
    assert main([a for a in args if a != "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if "bpo: error" in line]
    assert len(lines) == 1 and lines[0].startswith("bpo: error: judge 'badjudges:nan_after_probe' returned nan"), err


def test_a_sweep_worker_process_prints_bpo_warnings(monkeypatch):
    """`bpo reproduce --jobs N` runs each run in a spawned process, which does not inherit the CLI's
    formatting: before, its warnings came out as Python's 'FILE:LINE: UserWarning' lines. The worker's own
    entry point formats them (run_one stands in for a run that warns and returns what it would print)."""
    import bpo.experiments.sweep as sweep

    monkeypatch.setattr(sweep, "run_one", lambda *args: warnings.formatwarning("w", UserWarning, "/x/p.py", 3))
    assert sweep._worker((None, None, False, 1)) == "bpo: warning: w\n"
