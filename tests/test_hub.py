"""Hub ids wherever a model or a data set is named, resolved offline from a Hugging Face cache.

The cache is built here in huggingface_hub's own layout (HF_HUB_CACHE/models--OWNER--NAME/refs/main holding
a commit hash, snapshots/HASH/ the files; datasets--OWNER--NAME/ the same for a data set repository), with
HF_HUB_OFFLINE=1, so nothing can be downloaded: resolving an id reads that cache through huggingface_hub.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import save_tiny_llama
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.common.hub import HubError, dataset_files, model_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_cache(cache: Path, repo: str, files: Path, kind: str = "models", ref: str = "main") -> Path:
    """Copy `files` (a folder) into the cache as repo's snapshot at COMMIT, with `ref` pointing at it."""
    root = cache / f"{kind}--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    shutil.copytree(files, snapshot)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(COMMIT)
    return snapshot


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_model_ids_resolve_to_the_cached_snapshot(hub, tmp_path):
    snapshot = put_in_cache(hub, "bpo-test/tiny-llama", save_tiny_llama(tmp_path / "model"))
    assert model_folder("bpo-test/tiny-llama") == snapshot
    assert model_folder(f"bpo-test/tiny-llama@{COMMIT}") == snapshot
    assert model_folder(tmp_path / "model") == tmp_path / "model"  # a local folder is itself
    with pytest.raises(HubError, match=r"bpo-test/tiny-llama@v2: not in the Hugging Face cache .*HF_HUB_OFFLINE"):
        model_folder("bpo-test/tiny-llama@v2")
    with pytest.raises(HubError, match="bpo-test/absent: not in the Hugging Face cache"):
        model_folder("bpo-test/absent")


def test_dataset_ids_find_the_split_file(hub, tmp_path):
    files = tmp_path / "ds"
    (files / "data").mkdir(parents=True)
    (files / "data" / "train-00000-of-00001.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    (files / "test.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    snapshot = put_in_cache(hub, "bpo-test/prefs", files, kind="datasets")
    assert dataset_files("bpo-test/prefs:train") == [snapshot / "data" / "train-00000-of-00001.jsonl"]
    assert dataset_files(f"bpo-test/prefs@{COMMIT}:test") == [snapshot / "test.jsonl"]
    with pytest.raises(HubError, match=r"no split 'validation' \(its data files: data/train-00000-of-00001.jsonl"):
        dataset_files("bpo-test/prefs:validation")


def test_a_split_in_several_parquet_files_is_read_as_one(hub, tmp_path):
    """TL;DR's layout: a split in Parquet shards (data/train-0000K-of-00002[-HASH].parquet) is all of them, in name
    order, as one table: a task file reads its rows in that order, numbered across the shards, and an error names
    the split and that row. Shards of two kinds are refused, naming them."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from bpo.common.jsonl import DataFileError
    from bpo.tasks.files import load_task_file

    def post(i, summary):
        return {"subreddit": "tifu", "title": f"title {i}", "post": f"post {i}", "summary": summary}

    files = tmp_path / "tldr"
    (files / "data").mkdir(parents=True)
    shards = {  # written out of name order, read in it
        "train-00001-of-00002-9f8e7d.parquet": [post(2, "two"), post(3, "three")],
        "train-00000-of-00002-1a2b3c.parquet": [post(0, "zero"), post(1, "one")],
        "test-00000-of-00001.parquet": [post(9, "nine")],
    }
    for name, rows in shards.items():
        pq.write_table(pa.Table.from_pylist(rows), files / "data" / name)
    snapshot = put_in_cache(hub, "bpo-test/tldr", files, kind="datasets")
    assert dataset_files("bpo-test/tldr:train") == [
        snapshot / "data" / "train-00000-of-00002-1a2b3c.parquet",
        snapshot / "data" / "train-00001-of-00002-9f8e7d.parquet",
    ]
    task_file = tmp_path / "tldr.yaml"
    task_file.write_text("format: tldr\ntrain: bpo-test/tldr:train\neval: bpo-test/tldr:test\n")
    task = load_task_file(task_file)
    assert [e.prompt for e in task.train] == [
        f"SUBREDDIT: r/tifu\nTITLE: title {i}\nPOST: post {i}\nTL;DR:" for i in range(4)
    ]
    assert [e.reference for e in task.train] == ["zero", "one", "two", "three"]
    assert [e.reference for e in task.eval] == ["nine"]

    pq.write_table(  # the second shard's first row, row 3 of the split, has an empty post
        pa.Table.from_pylist([post(2, "two") | {"post": " "}, post(3, "three")]),
        snapshot / "data" / "train-00001-of-00002-9f8e7d.parquet",
    )
    with pytest.raises(DataFileError) as err:
        load_task_file(task_file)
    assert str(err.value) == "bpo-test/tldr:train:3: post: empty string"

    (snapshot / "data" / "train-00002-of-00002.jsonl").write_text(json.dumps(post(4, "four")) + "\n")
    with pytest.raises(DataFileError) as err:
        load_task_file(task_file)
    assert str(err.value) == (
        "bpo-test/tldr:train: split 'train' is in files of more than one kind or folder (data/train-00000-of-00002-"
        "1a2b3c.parquet, data/train-00001-of-00002-9f8e7d.parquet, data/train-00002-of-00002.jsonl); bpo reads a "
        "split's files only when they are of one kind in one folder: give a local file"
    )


def test_splits_no_file_names_are_read_by_the_datasets_library(hub, tmp_path, monkeypatch):
    """Layouts bpo's own conventions do not cover, read by the `datasets` library from the cached snapshot (Hub
    offline): a CSV split (train.csv) and a gzip-compressed JSON Lines split (data/test.jsonl.gz), each with its
    rows in file order, numbered from 1 in an error; a split neither finds is one line naming both answers."""
    import gzip

    pytest.importorskip("datasets")
    from bpo.common.jsonl import DataFileError
    from bpo.data.prefdata import read_preferences

    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "bpo-cache"))
    files, gz = tmp_path / "csvds", tmp_path / "gzds"
    files.mkdir()
    (files / "train.csv").write_text("prompt,chosen,rejected\nw1 w2,w40 w41,w10\nw3,w42,w11 w12\n")
    (gz / "data").mkdir(parents=True)
    with gzip.open(gz / "data" / "test.jsonl.gz", "wt") as f:
        f.write(json.dumps({"prompt": "w5", "chosen": "w43", "rejected": "w13"}) + "\n")
    put_in_cache(hub, "bpo-test/csv-prefs", files, kind="datasets")
    put_in_cache(hub, "bpo-test/gz-prefs", gz, kind="datasets")
    train = read_preferences("bpo-test/csv-prefs:train")
    assert [(r.prompt, r.chosen, r.rejected) for r in train] == [("w1 w2", "w40 w41", "w10"), ("w3", "w42", "w11 w12")]
    [test] = read_preferences("bpo-test/gz-prefs:test")
    assert (test.prompt, test.chosen, test.rejected) == ("w5", "w43", "w13")
    with pytest.raises(DataFileError) as err:
        read_preferences("bpo-test/csv-prefs:validation")
    message = str(err.value)
    assert message.startswith("bpo-test/csv-prefs:validation: the data set has no split 'validation'")
    assert "the datasets library: " in message and "\n" not in message

    (files / "train.csv").write_text("prompt,chosen,rejected\nw1 w2,w40 w41,w10\nw3,,w11 w12\n")  # row 2: empty
    bad = put_in_cache(hub, "bpo-test/csv-bad", files, kind="datasets")
    assert (bad / "train.csv").is_file()
    with pytest.raises(DataFileError, match=r"^bpo-test/csv-bad:train:2: chosen: "):
        read_preferences("bpo-test/csv-bad:train")


def test_a_run_loads_policy_reference_and_data_by_hub_id(hub, tmp_path):
    """An offline DPO run whose policy.path, reference.path (fixed), data.pairs and sft.data are Hub ids: it
    trains on the cached data set's pairs and records the ids it was given."""
    task = write_task(tmp_path / "task")
    put_in_cache(hub, "bpo-test/tiny-llama", tmp_path / "task" / "model")
    rows = [{"prompt": f"w{i + 4} w5", "chosen": "w40 w41", "rejected": "w10"} for i in range(8)]
    files = tmp_path / "ds"
    files.mkdir()
    (files / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    put_in_cache(hub, "bpo-test/prefs", files, kind="datasets")
    out = tmp_path / "run"
    replaced = ("policy.path=", "schedule.phases=", "schedule.steps=", "--quiet")
    args = [a for a in run_args(task.parent, out) if not a.startswith(replaced)]
    code = main(
        [
            *args,
            "policy.path=bpo-test/tiny-llama",
            "method=offline_dpo",
            "schedule.phases=1",
            "schedule.steps=2",
            "data.pairs=bpo-test/prefs:train",
            "reference.kind=fixed",
            "reference.path=bpo-test/tiny-llama",
            "sft.data=bpo-test/prefs:train",
            "sft.steps=1",
            "eval.before=false",
            "--quiet",
        ]
    )
    assert code == 0
    trained = [json.loads(line) for line in (out / "pairs" / "phase-000.jsonl").read_text().splitlines()]
    assert {p["chosen"] for p in trained} == {"w40 w41"} and len(trained) == 8
    config = (out / "config.yaml").read_text()
    assert "bpo-test/tiny-llama" in config and "bpo-test/prefs:train" in config


def test_an_uncached_policy_id_is_one_line(hub, tmp_path, capsys):
    task = write_task(tmp_path / "task")
    capsys.readouterr()  # the tiny model's save, when this test is the first to build it
    args = [a for a in run_args(task.parent, tmp_path / "run") if not a.startswith("policy.path=")]
    assert main(["policy.path=bpo-test/not-cached" if a == "--quiet" else a for a in args] + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bpo: error: policy.path: bpo-test/not-cached: not in the Hugging Face cache ({hub}), HF_HUB_OFFLINE is set: "
        "fetch it first with `hf download bpo-test/not-cached`"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "setting, value, repo, kind",
    [
        ("data.pairs", "bpo-test/no-prefs:train", "bpo-test/no-prefs", " --repo-type dataset"),
        ("sft.data", "bpo-test/no-sft:train", "bpo-test/no-sft", " --repo-type dataset"),
        ("annotator.judge", "bpo-test/no-rm", "bpo-test/no-rm", ""),
        ("eval.judge", "bpo-test/no-rm", "bpo-test/no-rm", ""),
    ],
)
def test_an_uncached_id_is_one_line_naming_its_setting(hub, tmp_path, capsys, setting, value, repo, kind):
    """Every setting that takes a Hub id names itself when the id is not cached (the Hub offline): one line, no
    run folder."""
    task = write_task(tmp_path / "task")
    capsys.readouterr()  # the tiny model's save, when this test is the first to build it
    extra = {
        "data.pairs": ["method=offline_dpo", "schedule.phases=1", "reference.kind=sft"],
        "sft.data": ["sft.steps=1"],
    }.get(setting, [])
    replaced = tuple(f"{a.partition('=')[0]}=" for a in extra)
    args = [a for a in run_args(task.parent, tmp_path / "run") if not a.startswith(replaced) and a != "--quiet"]
    assert main([*args, *extra, f"{setting}={value}", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bpo: error: {setting}: {value}: not in the Hugging Face cache ({hub}), HF_HUB_OFFLINE is set: fetch it "
        f"first with `hf download {repo}{kind}`"
    ]
    assert not (tmp_path / "run").exists()


def test_reward_model_judge_by_hub_id(hub, tmp_path):
    """annotator.judge / eval.judge as a Hub id of a reward model: the cached snapshot is loaded as the judge,
    and its scores equal those of the same model loaded from its local folder."""
    import torch
    from conftest import WORDS, tiny_tokenizer
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from bpo.judging.annotators import AnnotatorConfig
    from bpo.judging.judges import RewardModelJudge, load_judge

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
        pad_token_id=0,
    )
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tiny_tokenizer().save_pretrained(tmp_path / "rm")
    put_in_cache(hub, "bpo-test/tiny-rm", tmp_path / "rm")
    AnnotatorConfig(kind="reward_model", judge="bpo-test/tiny-rm").validate()  # accepted as a reward model
    judge = load_judge("bpo-test/tiny-rm")
    assert isinstance(judge, RewardModelJudge)
    prompts, responses = ["w4 w5", "w6"], ["w40 w41", "w10"]
    assert judge(prompts, responses) == RewardModelJudge(tmp_path / "rm")(prompts, responses)


def test_task_file_prompt_files_by_hub_id(hub, tmp_path):
    """A task file's train/eval/dev may name a data set split by id: read through the cache when the task is
    built; checking the file (read_task_spec) reads no data, so an id that is not cached is refused only then."""
    from bpo.common.jsonl import DataFileError
    from bpo.tasks.files import load_task_file, read_task_spec

    files = tmp_path / "prompts"
    (files / "data").mkdir(parents=True)
    for split, n in (("train", 3), ("test", 2)):
        rows = [json.dumps({"prompt": f"{split} prompt {i}", "reference": f"answer {i}"}) for i in range(n)]
        (files / "data" / f"{split}-00000-of-00001.jsonl").write_text("\n".join(rows) + "\n")
    put_in_cache(hub, "bpo-test/prompts", files, kind="datasets")
    task_file = tmp_path / "task.yaml"
    task_file.write_text("train: bpo-test/prompts:train\neval: bpo-test/prompts:test\n")
    task = load_task_file(task_file)
    assert [e.prompt for e in task.train] == ["train prompt 0", "train prompt 1", "train prompt 2"]
    assert [e.reference for e in task.eval] == ["answer 0", "answer 1"]
    absent = tmp_path / "absent.yaml"
    absent.write_text("train: bpo-test/absent:train\neval: bpo-test/absent:test\n")
    assert read_task_spec(absent)["train"] == "bpo-test/absent:train"  # checked, nothing fetched
    with pytest.raises(DataFileError, match="bpo-test/absent:train: not in the Hugging Face cache"):
        load_task_file(absent)
