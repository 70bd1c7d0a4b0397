"""Tasks from files: plain prompts and the TL;DR / HH prompt formats, with clear errors."""

import json

import pytest

from bpo.common.jsonl import DataFileError
from bpo.tasks.files import load_task_file


def write(folder, name, rows):
    (folder / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_tldr_format(tmp_path):
    write(
        tmp_path, "train.jsonl", [{"subreddit": "dogs", "title": "My dog", "post": "He barks.", "summary": "dog barks"}]
    )
    write(
        tmp_path,
        "eval.jsonl",
        [{"subreddit": "cats", "title": "My cat", "post": "She sleeps all day.", "summary": "cat sleeps"}],
    )
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\nformat: tldr\n")
    task = load_task_file(tmp_path / "task.yaml")
    assert task.eval[0].prompt == "SUBREDDIT: r/cats\nTITLE: My cat\nPOST: She sleeps all day.\nTL;DR:"
    assert task.eval[0].reference == "cat sleeps" and task.demonstrations == task.train


@pytest.mark.parametrize("leaky", ["train", "demonstrations"])
def test_eval_prompts_that_are_trained_on_are_refused(tmp_path, leaky):
    """Compared ignoring case and whitespace; the message counts them and shows one."""
    write(
        tmp_path,
        "train.jsonl",
        [{"prompt": "Name a fruit."}, {"prompt": "name a  COLOUR."}][: 2 if leaky == "train" else 1],
    )
    write(
        tmp_path,
        "sft.jsonl",
        [{"prompt": "Name a fruit.", "reference": "Apple."}]
        + ([{"prompt": "Name a colour.", "reference": "Red."}] if leaky == "demonstrations" else []),
    )
    write(
        tmp_path,
        "eval.jsonl",
        [{"prompt": "Name a colour.", "reference": "Blue."}, {"prompt": "Name a tree.", "reference": "Oak."}],
    )
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\ndemonstrations: sft.jsonl\n")
    with pytest.raises(
        DataFileError, match=rf"task.yaml: 1 eval prompt\(s\) are also {leaky} prompts, e.g. 'Name a colour.'"
    ):
        load_task_file(tmp_path / "task.yaml")


def test_hh_format_from_query_or_dialogue(tmp_path):
    write(tmp_path, "train.jsonl", [{"query": "How do I boil an egg?"}, {"prompt": "\n\nHuman: hi\n\nAssistant:"}])
    write(tmp_path, "eval.jsonl", [{"query": "Name a colour.", "reference": "Blue."}])
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\nformat: hh\n")
    task = load_task_file(tmp_path / "task.yaml")
    assert [e.prompt for e in task.train] == [
        "\n\nHuman: How do I boil an egg?\n\nAssistant:",
        "\n\nHuman: hi\n\nAssistant:",
    ]
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
