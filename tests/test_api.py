"""The Python API (bpo.api): the README's example runs, and objects given directly train exactly the run
their paths would (the same pairs, the same evaluation), with the data split kept."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tinytask
import torch

import bpo
from bpo.common.configlib import ConfigError, load_config
from bpo.loop.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
SETTINGS = {
    "schedule.steps": 4,
    "schedule.phases": 2,
    "schedule.batch_size": 4,
    "lora.ensemble": 2,
    "lora.dropout": 0.1,
    "sampling.max_new_tokens": 8,
    "eval.prompts": 4,
    "eval.kl": False,
    "eval.cache_before": False,
}


def rows(path: Path) -> list[dict]:
    """A JSONL file's rows without the wall-clock fields."""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]


def pairs_of(folder: Path) -> list[dict]:
    return [row for path in sorted((folder / "pairs").glob("phase-*.jsonl")) for row in rows(path)]


@pytest.fixture
def task(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))  # the saved inputs go here, not into ~/.cache
    return tinytask.write_task(tmp_path / "task")


def tiny_config(task: Path, **more) -> dict:
    return {**SETTINGS, "task": str(task), "policy.path": str(task.parent / "model"), **more}


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's only ```python block, run as written (from a folder holding configs/): a finished run
    whose `policy()` is a plain transformers model that computes what the run's merged adapter computes."""
    block = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(block) == 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    scope: dict = {}
    exec(compile(block[0], "README.md", "exec"), scope)
    run, model = scope["run"], scope["model"]
    assert run.folder == Path("runs/api-quickstart") and 0 <= run.evaluation["win_rate"] <= 1
    assert [m["step"] for m in run.metrics] == [0, 1, 2, 3]
    assert not any("lora_" in name for name, _ in model.named_parameters())  # merged in: no adapter left
    from bpo.api import open_trained
    from bpo.model.policy import MERGED

    _, _, _, policy = open_trained(run.folder, progress=False)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad(), policy.use(MERGED) as merged:
        expected = merged(input_ids=ids).logits
    with torch.no_grad():
        got = model(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-4)


def test_objects_train_the_same_run_as_their_paths(task, tmp_path):
    """model + tokenizer (instead of policy.path) and the judge function (instead of the task's judge
    setting) give the same pairs, metrics and evaluation as the path settings, to the bit: the objects are
    saved and named in config.yaml, and the same loop runs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    by_path = bpo.train(tiny_config(task), tmp_path / "by-path", progress=False)
    model = AutoModelForCausalLM.from_pretrained(task.parent / "model")
    tokenizer = AutoTokenizer.from_pretrained(task.parent / "model")
    config = {k: v for k, v in tiny_config(task).items() if k != "policy.path"}
    by_object = bpo.train(
        None,
        tmp_path / "by-object",
        overrides=config,
        model=model,
        tokenizer=tokenizer,
        judge=tinytask.score,
        progress=False,
    )
    assert by_object.config.policy.path != str(task.parent / "model")  # the saved copy, content-addressed
    assert by_object.config.eval.judge == by_object.config.annotator.judge == "tinytask:score"  # importable: by name
    assert pairs_of(by_object.folder) == pairs_of(by_path.folder)
    assert rows(by_object.dir.metrics) == rows(by_path.dir.metrics)
    assert by_object.evaluation == by_path.evaluation


def test_a_judge_object_is_recorded_and_needed_again_in_another_process(task, tmp_path):
    """A lambda cannot be imported by name: it is registered for this process. Its run resumes here with
    it; in a new process without it, the resume is refused with a message saying to give it again."""

    def liked(prompts, responses):
        return tinytask.score(prompts, responses)

    run = bpo.train(tiny_config(task), tmp_path / "run", judge=liked, progress=False)
    assert run.config.annotator.judge.startswith("api:") and run.config.eval.judge == run.config.annotator.judge
    assert run.evaluation["n"] == 4
    code = (
        f"import sys; from bpo.cli import main; sys.exit(main(['train', '--resume', {str(run.folder)!r}, '--quiet']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(HERE)},
    )
    assert out.returncode == 2 and "give it again" in out.stderr and "Traceback" not in out.stderr
    assert run.resume(judge=liked, progress=False).evaluation["n"] == 4


def test_preference_data_as_dicts_equals_the_same_file(task, tmp_path):
    """pairs=[{prompt, chosen, rejected}, ...] trains on exactly what data.pairs=FILE with those rows does."""
    records = [
        {"prompt": f"w{i} w{i + 1} w{i + 2}", "chosen": "w40 w41", "rejected": "w5 w6 w7 w8"} for i in range(4, 20)
    ]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    offline = {**tiny_config(task), "method": "offline_dpo", "schedule.phases": 1}
    from_file = bpo.train({}, tmp_path / "file", overrides={**offline, "data.pairs": str(path)}, progress=False)
    from_dicts = bpo.train({}, tmp_path / "dicts", overrides=offline, pairs=records, progress=False)
    got, want = pairs_of(from_dicts.folder), pairs_of(from_file.folder)
    assert [(p["prompt"], p["chosen"]) for p in got] == [(r["prompt"], r["chosen"]) for r in records]
    assert got == want and from_dicts.evaluation == from_file.evaluation


def test_prompts_replace_the_training_prompts_and_keep_the_held_out_ones(task, tmp_path):
    """Every sampled pair's prompt is one of the given prompts; the held-out prompts are the task's; a
    given prompt that is a held-out prompt is refused (the data split) before any run folder exists."""
    prompts = [f"w{i} w{i + 3}" for i in range(4, 28)]
    run = bpo.train(tiny_config(task), tmp_path / "run", prompts=prompts, progress=False)
    assert {p["prompt"] for p in pairs_of(run.folder)} <= set(prompts)
    held_out = [json.loads(line)["prompt"] for line in (task.parent / "eval.jsonl").read_text().splitlines()]
    assert [e["prompt"] for e in run.evaluation["examples"]] == held_out[:4]
    with pytest.raises(Exception, match="held-out") as err:
        bpo.train(tiny_config(task), tmp_path / "leaky", prompts=prompts + [held_out[2]], progress=False)
    assert "Traceback" not in str(err.value)
    assert not (tmp_path / "leaky").exists()


def test_a_mapping_is_validated_with_the_command_lines_messages():
    with pytest.raises(ConfigError) as from_cli:
        load_config(RunConfig, None, ["schedule.stepz=4"])
    with pytest.raises(ConfigError) as from_api:
        bpo.make_config({"schedule": {"stepz": 4}})
    assert str(from_api.value).split(": ", 1)[1] == str(from_cli.value).split(": ", 1)[1]
    assert bpo.make_config({"schedule": {"steps": 4}}, {"beta": 0.25}).beta == 0.25
    assert bpo.make_config(bpo.make_config({"beta": 0.3})).beta == 0.3  # a RunConfig goes through as itself
