"""A corpus of bad input files (tests/data/bad/), each refused with its expected message, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpo.cli import main
from bpo.config import RunConfig
from bpo.configlib import ConfigError, load_config
from bpo.jsonl import DataFileError
from bpo.prefdata import read_preferences

BAD = Path(__file__).parent / "data" / "bad"
EXPECTED = json.loads((BAD / "EXPECTED.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_refused_with_its_message(name):
    path = BAD / name
    with pytest.raises((DataFileError, ConfigError)) as err:
        if name.endswith(".yaml"):
            load_config(RunConfig, path)
        else:
            read_preferences(path)
    assert str(err.value).startswith(f"{path.parent}/{EXPECTED[name]}"), str(err.value)


def test_bom_and_crlf_are_accepted():
    records = read_preferences(BAD.parent / "bom_crlf.jsonl")
    assert [(r.prompt, r.chosen, r.rejected) for r in records] == [("a", "b", "c"), ("d", "e", "f")]


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith(".jsonl")])
def test_cli_refuses_bad_data_before_creating_the_run(name, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "method=offline_dpo", f"data.pairs={BAD / name}", f"out={out}", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert EXPECTED[name] in err and err.count("\n") == 1
    assert not out.exists()  # nothing half-created
