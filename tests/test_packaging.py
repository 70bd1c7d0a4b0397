"""What `pip install bpo` brings: the library's own dependencies, each one imported by the library; the
demo's, TensorBoard's, the data readers' and the labelling page's only with their extras."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import bpo

tomllib = pytest.importorskip("tomllib")
ROOT = Path(bpo.__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
IMPORT_NAME = {"pyyaml": "yaml", "vadersentiment": "vaderSentiment", "chatterbot-corpus": "chatterbot_corpus"}
# Declared for the multi-process runs of issue 12 (bpo.model.distributed), which import it; may be unused until
# they have landed (then remove it from here).
PENDING = {"accelerate"}


def name_of(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


def imported_by_the_library() -> set[str]:
    """Top-level names of every import statement in bpo/ (lazy ones inside functions included)."""
    names = set()
    for path in (ROOT / "bpo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_declared_dependency_is_imported_by_the_library():
    imported = imported_by_the_library()
    declared = {name_of(r) for r in PROJECT["dependencies"]}
    unused = {d for d in declared if IMPORT_NAME.get(d, d.replace("-", "_")) not in imported}
    assert unused <= PENDING, unused


def test_the_demo_and_optional_features_are_extras():
    core = {name_of(r) for r in PROJECT["dependencies"]}
    extras = {k: {name_of(r) for r in v} for k, v in PROJECT["optional-dependencies"].items()}
    assert {"gguf", "vadersentiment", "chatterbot-corpus"} <= extras["demo"] and not extras["demo"] & core
    assert {"tensorboard"} == extras["tensorboard"] and {"pyarrow"} == extras["data"] and {"openai"} == extras["llm"]
    assert not (extras["tensorboard"] | extras["data"] | extras["annotate"] | extras["llm"]) & core
    # `make test` installs .[test]; it must hold every extra the suite and `make demo` use
    assert "bpo" in extras["test"] and "bpo" in extras["dev"]
    test_extra = next(r for r in PROJECT["optional-dependencies"]["test"] if name_of(r) == "bpo")
    used = {"demo", "annotate", "tensorboard", "data", "llm"}
    assert set(re.search(r"\[(.*)\]", test_extra).group(1).split(",")) == used
    peft = next(r for r in PROJECT["dependencies"] if name_of(r) == "peft")
    assert "<" in peft  # bpo.model.policy uses peft's layer internals


def test_the_chatterbot_task_without_the_demo_packages_says_which_extra(monkeypatch, capsys, tmp_path):
    import sys

    from bpo.cli import main

    for name in ("vaderSentiment", "vaderSentiment.vaderSentiment"):  # as if not installed (an earlier test may
        monkeypatch.setitem(sys.modules, name, None)  # have imported the submodule the task uses)
    monkeypatch.delitem(sys.modules, "bpo.tasks.chatterbot", raising=False)
    assert main(["train", "task=chatterbot", f"out={tmp_path / 'run'}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "task=chatterbot needs the package vaderSentiment" in err and "pip install 'bpo[demo]'" in err
    assert not (tmp_path / "run").exists()
