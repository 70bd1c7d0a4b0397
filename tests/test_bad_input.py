"""The bad-input corpus (tests/data/bad/, listed in EXPECTED.json): every case is run through the CLI
(`bpo train ...` in this process, on a tiny local model) and must end with its exit code and message
fragment, one or two `bpo:` lines on stderr, no traceback, and no run folder left behind (a folder
that existed before is left exactly as it was).

EXPECTED.json maps a case name to
    family    preference file | config file | config value | task file | judge | model folder |
              run folder | OS and decoding | mid-run | timeouts
    args      key=value arguments added to the tiny run's (placeholders: {bad} this folder, {task} the
              tiny task file, {model} the tiny model, {models} mutated model folders, {out} the run
              folder, {tmp} a scratch folder); or argv: the whole command line
    config    a config file of this folder, given before the arguments
    setup     a named preparation (SETUPS below)
    code      the exit code (2 for bad input, 6 for a judge's timeout)
    message   a fragment of stderr
Model folder mutations are the functions of MODELS below (the weights are built, not stored).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from tinytask import write_task

from bpo.cli import main
from bpo.common.configlib import ConfigError, load_config
from bpo.common.jsonl import DataFileError
from bpo.data.prefdata import read_preferences
from bpo.loop.config import RunConfig

BAD = Path(__file__).parent / "data" / "bad"
EXPECTED = json.loads((BAD / "EXPECTED.json").read_text())
FAMILIES = {
    "preference file",
    "config file",
    "config value",
    "task file",
    "judge",
    "model folder",
    "run folder",
    "OS and decoding",
    "mid-run",
    "timeouts",
}


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _drop_tensors(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if "layers.1." not in k}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _pickle_only(folder: Path) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _no_eos(folder: Path) -> None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if path.exists():
            data = json.loads(path.read_text())
            for key in ("eos_token", "pad_token"):
                data.pop(key, None)
            data.get("added_tokens_decoder", {})
            path.write_text(json.dumps(data))


def _embedding_smaller(folder: Path) -> None:
    """Weights and config.json of 40 embedding rows (they agree), under the 64-token tokenizer."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[name] = tensors[name][:40].clone()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _edit_json(folder / "config.json", vocab_size=40)


def _config_folder(folder: Path) -> None:
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()


MODELS = {
    "no_config": lambda f: (f / "config.json").unlink(),
    "config_is_folder": _config_folder,
    "config_broken_json": lambda f: (f / "config.json").write_text('{"model_type": "llama",\n  oops}'),
    "config_control_char": lambda f: (f / "config.json").write_text('{"model_type": "llama\x01"}'),
    "config_no_model_type": lambda f: _edit_json(f / "config.json", model_type=None, architectures=None),
    "config_unknown_model_type": lambda f: _edit_json(f / "config.json", model_type="no_such_arch"),
    "config_vocab_bigger": lambda f: _edit_json(f / "config.json", vocab_size=100),
    "config_vocab_smaller": lambda f: _edit_json(f / "config.json", vocab_size=40),
    "config_short_context": lambda f: _edit_json(f / "config.json", max_position_embeddings=8),
    "embedding_smaller": _embedding_smaller,
    "no_weights": lambda f: (f / "model.safetensors").unlink(),
    "pickle_only": _pickle_only,
    "weights_truncated": lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:3000]),
    "weights_garbage": lambda f: (f / "model.safetensors").write_bytes(b"not a safetensors file at all"),
    "weights_missing_tensors": _drop_tensors,
    "no_tokenizer": lambda f: [
        (f / n).unlink()
        for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
        if (f / n).exists()
    ],
    "tokenizer_broken": lambda f: (f / "tokenizer.json").write_text("{oops"),
    "tokenizer_no_eos": _no_eos,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny task and model, and every mutated model folder."""
    root = tmp_path_factory.mktemp("bad-world")
    task = write_task(root / "task")
    models = root / "models"
    for name, mutate in MODELS.items():
        shutil.copytree(root / "task" / "model", models / name)
        mutate(models / name)
    (models / "a_file").write_text("not a folder\n")
    return {"task": task, "model": root / "task" / "model", "models": models}


def _setup_out_file(out: Path, tmp: Path, world) -> None:
    out.write_text("a file where the run folder should go\n")


def _setup_out_holds_run(out: Path, tmp: Path, world) -> None:
    out.mkdir()
    (out / "config.yaml").write_text("task: reviews\n")
    (out / "settings.json").write_text('{"hash": "0", "settings": {}}\n')


def _setup_user_files(out: Path, tmp: Path, world) -> None:
    """The user's own metrics.jsonl and eval.json (before the fix: both replaced, exit 0)."""
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"mine": 1}\n')
    (out / "eval.json").write_text('{"mine": true}\n')


def _setup_user_pairs(out: Path, tmp: Path, world) -> None:
    """A pairs/ folder too (before the fix: metrics.jsonl emptied, config.yaml and settings.json added)."""
    _setup_user_files(out, tmp, world)
    (out / "pairs").mkdir()
    (out / "pairs" / "notes.txt").write_text("my notes\n")


def _setup_user_config(out: Path, tmp: Path, world) -> None:
    """Only the user's own config.yaml (before the fix: called "already holds a run")."""
    out.mkdir()
    (out / "config.yaml").write_text("task: reviews\n")


def _setup_fake_run(out: Path, tmp: Path, world, **edit) -> None:
    from bpo.run.rundir import RunDir

    cfg = load_config(
        RunConfig,
        None,
        [f"task={world['task']}", f"policy.path={world['model']}", "schedule.steps=6", "schedule.batch_size=4"],
    )
    RunDir(out).create(cfg)


def _setup_edited_run(out: Path, tmp: Path, world) -> None:
    _setup_fake_run(out, tmp, world)
    text = (out / "config.yaml").read_text().replace("beta: 0.5", "beta: 0.25").replace("  rank: 8", "  rank: 2")
    (out / "config.yaml").write_text(text)


def _setup_broken_run_config(out: Path, tmp: Path, world) -> None:
    _setup_fake_run(out, tmp, world)  # a run whose config.yaml was then broken
    (out / "config.yaml").write_text("task: [reviews\n")


def _setup_bad_settings(out: Path, tmp: Path, world) -> None:
    _setup_fake_run(out, tmp, world)
    (out / "settings.json").write_text("{oops")


def _setup_out_under_file(out: Path, tmp: Path, world) -> None:
    (tmp / "afile").write_text("a file\n")


def _setup_broken_module(out: Path, tmp: Path, world) -> None:
    (tmp / "broken_judge_module.py").write_text("def score(prompts, responses)\n    return [0.0]\n")


SETUPS = {
    "out_is_file": _setup_out_file,
    "out_holds_run": _setup_out_holds_run,
    "user_files": _setup_user_files,
    "user_pairs": _setup_user_pairs,
    "user_config": _setup_user_config,
    "fake_run": _setup_fake_run,
    "edited_run": _setup_edited_run,
    "broken_run_config": _setup_broken_run_config,
    "bad_settings": _setup_bad_settings,
    "out_under_file": _setup_out_under_file,
    "broken_module": _setup_broken_module,
}


def _fill(text: str, places: dict) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _state(path: Path):
    """What a path holds: None (nothing), a file's bytes, or a folder's files and their bytes."""
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


def argv_of(case: dict, places: dict) -> list[str]:
    if "argv" in case:
        return [_fill(a, places) for a in case["argv"]] + ["--quiet"]
    base = [
        f"task={places['task']}",
        f"policy.path={places['model']}",
        f"out={places['out']}",
        "schedule.steps=6",
        "schedule.batch_size=4",
        "lora.ensemble=1",
        "sampling.max_new_tokens=8",
        "eval.prompts=2",
    ]
    config = [str(BAD / case["config"])] if "config" in case else []
    args = [_fill(a, places) for a in case.get("args", [])]
    given = {a.partition("=")[0] for a in args}  # a case's own value replaces the base one (no key twice)
    return ["train", *config, *[a for a in base if a.partition("=")[0] not in given], *args, "--quiet"]


def test_corpus_is_large_and_covers_every_family():
    assert len(EXPECTED) >= 60
    assert {case["family"] for case in EXPECTED.values()} == FAMILIES
    for name, case in EXPECTED.items():
        assert case["message"] and case["code"] in (2, 3, 6), name  # 6: a judge's timeout


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_exits_with_its_code_and_message_no_traceback_no_run_folder(
    name, world, tmp_path, capsys, monkeypatch
):
    case = EXPECTED[name]
    monkeypatch.syspath_prepend(str(BAD))  # badjudges.py
    monkeypatch.syspath_prepend(str(tmp_path))  # modules a setup writes
    out = tmp_path / "run"
    places = {"bad": BAD, "out": out, "tmp": tmp_path, **{k: v for k, v in world.items()}}
    if "setup" in case:
        SETUPS[case["setup"]](out, tmp_path, world)
    before = _state(out)
    code = main(argv_of(case, places))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == case["code"], err
    assert _fill(case["message"], places) in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2 and all(line.startswith("bpo: ") for line in lines), err
    assert _state(out) == before  # no half-made run; a folder that was there is untouched


# ---- the files of the corpus, read directly: the message starts with the file (and line) ----

AGAINST_THE_RUN = {
    "too_few_pairs",
    "too_long_pair",
    "conversation_no_chat_template",
}  # valid files, refused against the schedule or the model (context, chat template)


@pytest.mark.parametrize(
    "name", sorted(n for n, c in EXPECTED.items() if c["family"] == "preference file" and n not in AGAINST_THE_RUN)
)
def test_bad_preference_file_is_refused_by_the_reader(name):
    path = BAD / next(a for a in EXPECTED[name]["args"] if a.startswith("data.pairs=")).split("/")[-1]
    with pytest.raises(DataFileError) as err:
        read_preferences(path)
    assert str(err.value).startswith(f"{path}"), str(err.value)
    assert EXPECTED[name]["message"].replace("{bad}/", "") in str(err.value)


@pytest.mark.parametrize("name", sorted(n for n, c in EXPECTED.items() if "config" in c))
def test_bad_config_file_is_refused_by_the_loader(name):
    path = BAD / EXPECTED[name]["config"]
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, path)
    assert str(err.value).startswith(f"{path}"), str(err.value)


def test_bom_and_crlf_are_accepted():
    records = read_preferences(BAD.parent / "bom_crlf.jsonl")
    assert [(r.prompt, r.chosen, r.rejected) for r in records] == [("a", "b", "c"), ("d", "e", "f")]


def test_raw_line_separators_in_strings_are_accepted(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 unescaped; they are not line ends of a JSONL file."""
    path = tmp_path / "odd.jsonl"
    path.write_text('{"prompt": "a\u2028b", "chosen": "c\u0085d", "rejected": "e\u2029f\\u0000"}\n', encoding="utf-8")
    (record,) = read_preferences(path)
    assert (record.prompt, record.chosen, record.rejected) == ("a\u2028b", "c\u0085d", "e\u2029f\x00")


def test_message_lists_accept_every_known_role(tmp_path):
    path = tmp_path / "chat.jsonl"
    row = {
        "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "hello"}],
        "rejected": [{"role": "assistant", "content": "go"}],
        "id": 3,
    }
    path.write_text(json.dumps(row) + "\n")
    (record,) = read_preferences(path)
    assert (record.id, record.prompt, record.chosen) == ("3", row["prompt"], "hello")  # the whole conversation


if __name__ == "__main__":  # print each case's stderr, to write or check EXPECTED.json
    sys.exit(pytest.main([__file__, "-q"]))
