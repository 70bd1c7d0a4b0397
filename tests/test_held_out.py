"""No run is evaluated on prompts its policy was trained on, whatever its seed, for every kind of task;
and the dev prompts (Task.dev, on which `bpo reproduce` chooses learning rates) are none of train, eval,
demonstration or SFT prompts either.

Each task is built as `bpo train task=... seed=...` builds it (bpo.loop.build.build_task on the loaded
RunConfig), for run seeds 0..4. Its held-out eval prompts must be disjoint from its train prompts,
from its demonstration (SFT) prompts and, for the reviews and sorting tasks, from the prompts of the
demonstrations their ready-made initial policies were fine-tuned on (`reviews.sft_policy`,
`sorting.sft_policy`, reached as a run reaches them, through bpo.loop.build.initial_model_folder; their
training is intercepted, not run).
"""

from __future__ import annotations

import json

import pytest

from bpo.common.configlib import load_config
from bpo.loop.build import build_task, initial_model_folder
from bpo.loop.config import RunConfig

SEEDS = range(5)


def prompts(examples) -> set[str]:
    return {e.prompt for e in examples}


def run_config(task: str, seed: int) -> RunConfig:
    return load_config(RunConfig, None, [f"task={task}", f"seed={seed}"])


def assert_held_out(task, dev: bool = True) -> None:
    held_out = prompts(task.eval)
    assert held_out
    assert held_out.isdisjoint(prompts(task.train))
    assert held_out.isdisjoint(prompts(task.demonstrations))
    if dev:
        chosen_on = prompts(task.dev)
        assert len(chosen_on) == len(task.dev) > 0
        for other in (task.train, task.demonstrations, task.eval):
            assert chosen_on.isdisjoint(prompts(other))
        assert all(e.reference for e in task.dev)


class Trained(Exception):
    """Raised by the stand-in for supervised_finetune once it has seen the demonstrations."""


def sft_prompts(cfg: RunConfig, monkeypatch: pytest.MonkeyPatch, cache) -> set[str]:
    """The prompts of the demonstrations the task's initial policy would be fine-tuned on."""
    seen = []

    def record(model, tokenizer, examples, **kwargs):
        seen.extend(examples)
        raise Trained  # nothing is trained or cached

    monkeypatch.setenv("BPO_CACHE", str(cache))
    monkeypatch.setattr("bpo.training.sft.supervised_finetune", record)
    with pytest.raises(Trained):
        initial_model_folder(cfg, progress=False)
    assert seen
    return prompts(seen)


def test_reviews(tmp_path, monkeypatch):
    first = build_task(run_config("reviews", 0))
    for seed in SEEDS:
        cfg = run_config("reviews", seed)
        task = build_task(cfg)
        assert_held_out(task)
        seen = sft_prompts(cfg, monkeypatch, tmp_path / "cache")
        assert prompts(task.eval).isdisjoint(seen) and prompts(task.dev).isdisjoint(seen)
        assert task == first  # the run seed does not change the task
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_sorting(tmp_path, monkeypatch):
    """As for reviews; and no held-out list of numbers is trained on under another template or order either."""
    from bpo.tasks.sorting import prompt_numbers

    def problems(texts) -> set[tuple[int, ...]]:
        return {tuple(sorted(prompt_numbers(t))) for t in texts}

    first = build_task(run_config("sorting", 0))
    for seed in SEEDS:
        cfg = run_config("sorting", seed)
        task = build_task(cfg)
        assert_held_out(task)
        seen = sft_prompts(cfg, monkeypatch, tmp_path / "cache")
        assert prompts(task.eval).isdisjoint(seen) and prompts(task.dev).isdisjoint(seen)
        held_out, dev = problems(prompts(task.eval)), problems(prompts(task.dev))
        assert len(held_out) == len(task.eval) and len(dev) == len(task.dev)
        assert held_out.isdisjoint(problems(prompts(task.train) | seen))
        assert dev.isdisjoint(problems(prompts(task.train) | prompts(task.eval) | seen))
        assert task == first
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_chatterbot():
    """The demo's task has no dev split (carving one from its train prompts would change the demo's run):
    asking for it is refused, never answered with other prompts."""
    pytest.importorskip("vaderSentiment")
    pytest.importorskip("chatterbot_corpus")
    first = build_task(run_config("chatterbot", 0))
    for seed in SEEDS:
        task = build_task(run_config("chatterbot", seed))
        assert_held_out(task, dev=False)
        assert task == first
    with pytest.raises(ValueError, match="no dev split"):
        first.split("dev")


def test_task_file(tmp_path):
    """A task file with its own demonstrations (the loader refuses leaking files: tests/test_task_files.py)."""

    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    write("train.jsonl", [{"prompt": f"train prompt {i}"} for i in range(20)])
    write("sft.jsonl", [{"prompt": f"sft prompt {i}", "reference": f"answer {i}"} for i in range(20)])
    write("eval.jsonl", [{"prompt": f"eval prompt {i}", "reference": f"answer {i}"} for i in range(8)])
    write("dev.jsonl", [{"prompt": f"dev prompt {i}", "reference": f"answer {i}"} for i in range(6)])
    (tmp_path / "task.yaml").write_text(
        "train: train.jsonl\neval: eval.jsonl\ndev: dev.jsonl\ndemonstrations: sft.jsonl\n"
    )
    first = build_task(run_config(str(tmp_path / "task.yaml"), 0))
    for seed in SEEDS:
        task = build_task(run_config(str(tmp_path / "task.yaml"), seed))
        assert_held_out(task)
        assert task == first
    assert first.split("dev") == first.dev and len(first.dev) == 6


@pytest.mark.parametrize("other", ["train", "sft", "eval"])
def test_task_file_dev_leak_refused(tmp_path, other):
    """A dev prompt that is also a train, demonstration or eval prompt (here in other case and spacing) is
    refused when the task is loaded, naming the two files' roles."""
    from bpo.common.jsonl import DataFileError

    rows = {
        "train": [{"prompt": f"train prompt {i}"} for i in range(4)],
        "sft": [{"prompt": f"sft prompt {i}", "reference": "a"} for i in range(4)],
        "eval": [{"prompt": f"eval prompt {i}", "reference": "a"} for i in range(4)],
    }
    for name, lines in rows.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "dev.jsonl").write_text(json.dumps({"prompt": f"  {other.upper()}  prompt 2", "reference": "a"}) + "\n")
    (tmp_path / "task.yaml").write_text(
        "train: train.jsonl\neval: eval.jsonl\ndev: dev.jsonl\ndemonstrations: sft.jsonl\n"
    )
    role = {"train": "train", "sft": "demonstrations", "eval": "eval"}[other]
    with pytest.raises(DataFileError, match=f"1 dev prompt\\(s\\) are also {role} prompts"):
        build_task(run_config(str(tmp_path / "task.yaml"), 0))
