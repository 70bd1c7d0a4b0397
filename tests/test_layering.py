"""Tasks and annotators do not import each other; both build on bpo.judges (the Judge type, loading).

Checked twice: by reading every import statement of the two packages (lazy ones inside functions
included), and by importing each package in a fresh interpreter and looking at what got loaded.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bpo

PACKAGE_ROOT = Path(bpo.__file__).parent
SEPARATE = {"bpo.tasks": "bpo.annotators", "bpo.annotators": "bpo.tasks"}


def modules_of(package: str) -> dict[str, Path]:
    folder = PACKAGE_ROOT / package.split(".", 1)[1]
    return {
        package if path.stem == "__init__" else f"{package}.{path.stem}": path
        for path in sorted(folder.glob("*.py"))
    }


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
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from bpo import annotators`
    return names


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("package", sorted(SEPARATE))
def test_import_statements_do_not_cross(package):
    other = SEPARATE[package]
    modules = modules_of(package)
    assert modules
    crossing = {
        module: sorted(n for n in imported_names(module, path) if is_within(n, other))
        for module, path in modules.items()
    }
    assert {m: names for m, names in crossing.items() if names} == {}


def test_the_parser_sees_crossing_imports(tmp_path):
    """The check above can fail: a lazy, relative import of the other package is found."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ..annotators import judges\n    import bpo.annotators\n")
    names = imported_names("bpo.tasks.probe", path)
    assert {"bpo.annotators", "bpo.annotators.judges"} <= names


@pytest.mark.parametrize("package", sorted(SEPARATE))
def test_importing_one_package_loads_nothing_of_the_other(package):
    """Transitive imports too (through bpo.judges, bpo.pretrained, ...): a fresh interpreter imports
    every module of `package` that the environment can import, then lists what was loaded."""
    modules = sorted(modules_of(package))
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_ROOT.parent)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert package in loaded
    assert [m for m in loaded if is_within(m, SEPARATE[package])] == []
