"""Tasks from files: plain prompts and the TL;DR / HH prompt formats, with clear errors."""

import json

import pytest

from bpo.jsonl import DataFileError
from bpo.tasks.files import load_task_file


def write(folder, name, rows):
    (folder / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_tldr_format(tmp_path):
    rows = [{"subreddit": "cats", "title": "My cat", "post": "She sleeps all day.", "summary": "cat sleeps"}]
    write(tmp_path, "train.jsonl", rows)
    write(tmp_path, "eval.jsonl", rows)
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\nformat: tldr\n")
    task = load_task_file(tmp_path / "task.yaml")
    assert task.eval[0].prompt == "SUBREDDIT: r/cats\nTITLE: My cat\nPOST: She sleeps all day.\nTL;DR:"
    assert task.eval[0].reference == "cat sleeps" and task.demonstrations == task.train


def test_hh_format_from_query_or_dialogue(tmp_path):
    write(tmp_path, "train.jsonl", [{"query": "How do I boil an egg?"}, {"prompt": "\n\nHuman: hi\n\nAssistant:"}])
    write(tmp_path, "eval.jsonl", [{"query": "Name a colour.", "reference": "Blue."}])
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\nformat: hh\n")
    task = load_task_file(tmp_path / "task.yaml")
    assert [e.prompt for e in task.train] == ["\n\nHuman: How do I boil an egg?\n\nAssistant:", "\n\nHuman: hi\n\nAssistant:"]
    assert task.eval[0].reference == "Blue."


def test_errors_name_file_line_and_field(tmp_path):
    write(tmp_path, "train.jsonl", [{"subreddit": "a", "title": "b", "post": "c"}, {"subreddit": "a", "post": "c"}])
    write(tmp_path, "eval.jsonl", [{"prompt": "x"}])
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\nformat: tldr\n")
    with pytest.raises(DataFileError, match=r"train.jsonl:2: title: missing field"):
        load_task_file(tmp_path / "task.yaml")
    (tmp_path / "task.yaml").write_text("train: eval.jsonl\neval: eval.jsonl\n")
    with pytest.raises(DataFileError, match=r"eval.jsonl:1: reference: missing or empty"):
        load_task_file(tmp_path / "task.yaml")
    (tmp_path / "task.yaml").write_text("train: eval.jsonl\neval: eval.jsonl\nformat: xsum\n")
    with pytest.raises(DataFileError, match="format: 'xsum' is not one of plain, tldr, hh"):
        load_task_file(tmp_path / "task.yaml")
    (tmp_path / "task.yaml").write_text("train: eval.jsonl\nevals: eval.jsonl\n")
    with pytest.raises(DataFileError, match="unknown key"):
        load_task_file(tmp_path / "task.yaml")
