"""Issue 24, defect 3: each input a run reads is read once, validated and kept. A pipe
(`data.pairs=<(...)`, /dev/fd/N) can be read only once, and a file edited between a check and a second
read would be trained on in its second form."""

from __future__ import annotations

import json
import os
import pathlib
import random
from pathlib import Path

import pytest
from tinytask import run_args, write_task

from bpo.cli import main


def _pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def words(k):
        return " ".join(f"w{rng.randrange(4, 60)}" for _ in range(k))

    return [{"prompt": words(3), "chosen": "w40 " + words(2), "rejected": words(5)} for _ in range(n)]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _offline(task: Path, out: Path, *extra: str) -> list[str]:
    return run_args(task.parent, out, "method=offline_dpo", "schedule.phases=1", "lora.ensemble=1", *extra)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("read-once") / "task")


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """Every file read through Path.read_bytes (how bpo reads its text inputs), in order."""
    seen: list[Path] = []
    original = pathlib.Path.read_bytes

    def recorded(self):
        seen.append(Path(os.path.abspath(self)))
        return original(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", recorded)
    return seen


def test_pairs_from_a_pipe_train(task, tmp_path):
    """Before: `/dev/fd/N: empty file (no JSON lines)`: the check read the pipe, training found it empty."""
    read_end, write_end = os.pipe()
    os.write(write_end, _jsonl(_pairs(24)).encode())
    os.close(write_end)
    try:
        code = main(_offline(task, tmp_path / "run", f"data.pairs=/dev/fd/{read_end}"))
    finally:
        os.close(read_end)
    assert code == 0
    stored = [json.loads(line) for line in (tmp_path / "run" / "pairs" / "phase-000.jsonl").read_text().splitlines()]
    assert [p["chosen"] for p in stored] == [p["chosen"] for p in _pairs(24)]


def test_every_input_file_is_read_once(task, tmp_path, reads):
    """data.pairs, sft.data, the task file and its prompt files: one read each in one run."""
    (tmp_path / "pairs.jsonl").write_text(_jsonl(_pairs(24)))
    (tmp_path / "sft.jsonl").write_text(_jsonl(_pairs(8, seed=1)))
    args = [f"data.pairs={tmp_path / 'pairs.jsonl'}", f"sft.data={tmp_path / 'sft.jsonl'}", "sft.steps=1"]
    assert main(_offline(task, tmp_path / "run", *args)) == 0
    inputs = [tmp_path / "pairs.jsonl", tmp_path / "sft.jsonl", task, task.parent / "train.jsonl"]
    inputs.append(task.parent / "eval.jsonl")
    assert {str(p): reads.count(p) for p in inputs} == {str(p): 1 for p in inputs}


def test_python_api_prompts_read_the_task_file_and_sft_data_once(task, tmp_path, reads, monkeypatch):
    """bpo.train(prompts=...) builds a task file from the configured one: before, it read the user's task file
    twice (once for its prompts, once for its judge) and sft.data twice (here and again at the run's start)."""
    import bpo

    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "sft.jsonl").write_text(_jsonl(_pairs(8, seed=1)))
    settings = [a for a in run_args(task.parent, tmp_path / "run") if "=" in a]
    settings += [f"sft.data={tmp_path / 'sft.jsonl'}", "sft.steps=1"]
    bpo.train(overrides=settings, prompts=[p["prompt"] for p in _pairs(16, seed=2)], progress=False)
    assert reads.count(task) == 1
    assert reads.count(tmp_path / "sft.jsonl") == 1
