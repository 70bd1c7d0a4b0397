"""The package is laid out in layers, and the layering is enforced here.

A module may import modules of its own layer and of the layers below it, never above; and no chain of
imports leads back to where it started (no import cycle, lazy imports inside functions included, since
a lazy import only hides a cycle). Every import statement of every module is read with `ast`, so the
check sees what a reader of the file sees. Tasks and machine annotators also never import each other
(both build on bpo.judging.judges), checked by reading their files and by importing them in a fresh
interpreter.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bpo

PACKAGE_ROOT = Path(bpo.__file__).parent

# Lowest first. Each entry is a subpackage (or a top-level module) of bpo.
LAYERS = [
    "bpo.common",  # configuration library, data files, cache folders, stop signals
    "bpo.core",  # losses, merge, schedule: the maths
    "bpo.data",  # prompts, preference files, tokens, the task record, pairs and batches
    "bpo.model",  # loading, the LoRA policy, log-probs, the sampler, devices, processes
    "bpo.judging",  # judges, machine annotators, a phase's labelled pairs
    "bpo.annotate",  # people label pairs (the web page, the label store)
    "bpo.training",  # the train step, references, IOPO's players, batches, SFT
    "bpo.tasks",  # the built-in tasks and task files
    "bpo.evaluation",  # win rates, head-to-head comparisons
    "bpo.run",  # the run folder: files, checkpoints, logs, report
    "bpo.loop",  # the run configuration, building the pieces, the session
    "bpo.api",  # the public Python API
    "bpo.experiments",  # sweeps and reports on top of the API
    "bpo.cli",  # the command line, a leaf
]
SEPARATE = {"bpo.tasks": "bpo.judging.annotators", "bpo.judging.annotators": "bpo.tasks"}


def all_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package's __init__ under the package's name)."""
    modules = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = ("bpo",) + path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = all_modules()


def imported_names(module: str, path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (relative imports resolved)."""
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from bpo.model import policy`
    return names


def bpo_imports(module: str) -> set[str]:
    """The package's own modules that `module` imports (not itself, not the top-level package)."""
    return {n for n in imported_names(module, MODULES[module]) if n in MODULES and n not in (module, "bpo")}


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_of(module: str) -> int:
    found = [i for i, layer in enumerate(LAYERS) if is_within(module, layer)]
    assert found, f"{module} belongs to no layer: add its package to LAYERS"
    return found[0]


def upward_imports(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    return {
        m: sorted(n for n in names if layer_of(n) > layer_of(m))
        for m, names in graph.items()
        if any(layer_of(n) > layer_of(m) for n in names)
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None; depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


GRAPH = {m: bpo_imports(m) for m in MODULES if m != "bpo"}


def test_every_module_has_a_layer_and_every_package_a_purpose():
    for module in GRAPH:
        layer_of(module)
    for layer in LAYERS:
        init = PACKAGE_ROOT / layer.split(".", 1)[1] / "__init__.py"
        if init.exists():
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc, f"{layer} has no docstring saying what it is for"


def test_no_module_imports_a_higher_layer():
    assert upward_imports(GRAPH) == {}


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None


def test_nothing_imports_the_command_line():
    assert sorted(m for m, names in GRAPH.items() if "bpo.cli" in names) == []


def test_the_checks_can_fail():
    """The checks above see a lazy upward import and a two-module cycle."""
    graph = {"bpo.core.losses": {"bpo.loop.online"}, "bpo.loop.online": {"bpo.core.losses"}}
    assert upward_imports(graph) == {"bpo.core.losses": ["bpo.loop.online"]}
    assert find_cycle(graph) == ["bpo.core.losses", "bpo.loop.online", "bpo.core.losses"]
    assert find_cycle({"bpo.a": {"bpo.b"}, "bpo.b": set()}) is None


def test_the_parser_sees_lazy_relative_imports(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ..judging import annotators\n    import bpo.loop.online\n")
    names = imported_names("bpo.tasks.probe", path)
    assert {"bpo.judging.annotators", "bpo.loop.online"} <= names


def modules_under(package: str) -> list[str]:
    return sorted(m for m in MODULES if is_within(m, package))


@pytest.mark.parametrize("package", sorted(SEPARATE))
def test_tasks_and_annotators_do_not_import_each_other(package):
    other = SEPARATE[package]
    crossing = {
        m: sorted(n for n in imported_names(m, MODULES[m]) if is_within(n, other)) for m in modules_under(package)
    }
    assert {m: names for m, names in crossing.items() if names} == {}


@pytest.mark.parametrize("package", sorted(SEPARATE))
def test_importing_one_package_loads_nothing_of_the_other(package):
    """Transitive imports too (through bpo.judging.judges, bpo.model.pretrained, ...): a fresh interpreter
    imports every module of `package` that the environment can import, then lists what was loaded."""
    modules = modules_under(package)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as err:\n"  # an optional dependency (vaderSentiment) may be missing
        "        if not (err.name or '').split('.')[0] or (err.name or '').startswith('bpo'):\n"
        "            raise\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_ROOT.parent
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert package in loaded
    assert [m for m in loaded if is_within(m, SEPARATE[package])] == []
