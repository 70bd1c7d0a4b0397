"""The defaults study's own task (benchmarks/defaults_study/study_task.py): its judge by hand and its splits
disjoint, read back through bpo's task-file loader as a user's task would be."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "defaults_study"))
import study_task  # noqa: E402


def test_judge_by_hand():
    """Target "green blue red": the answer scores 1; "green red blue ." agrees at position 0 only: 1/3; the
    list copied ("red blue green .") agrees in the middle: 1/3; one word short and no full stop:
    2/3 - 0.25 - 0.5."""
    prompt = "reverse : red blue green"
    assert study_task.score_one(prompt, "green blue red .") == 1
    assert study_task.score_one(prompt, "green red blue .") == pytest.approx(1 / 3)
    assert study_task.score_one(prompt, "red blue green .") == pytest.approx(1 / 3)
    assert study_task.score_one(prompt, "green blue") == pytest.approx(2 / 3 - 0.25 - 0.5)


def test_splits_are_disjoint_through_the_task_file_loader(tmp_path, monkeypatch):
    """Loaded by bpo's own task-file reader (which refuses leaks): no eval or dev prompt is a train or
    demonstration prompt, and not even the same list under another template."""
    from bpo.tasks.files import load_task_file

    monkeypatch.syspath_prepend(str(Path(study_task.__file__).parent))
    task = load_task_file(study_task.write_task(tmp_path / "reverse"))
    lists = {
        name: {tuple(study_task.prompt_list(ex.prompt)) for ex in getattr(task, name)}
        for name in ("train", "eval", "dev", "demonstrations")
    }
    assert [len(lists[n]) for n in ("train", "eval", "dev", "demonstrations")] == [512, 128, 128, 512]
    for held in ("eval", "dev"):
        assert not lists[held] & (lists["train"] | lists["demonstrations"])
    assert not lists["eval"] & lists["dev"]
