"""The code is linted and formatted by ruff, configured in pyproject.toml ([tool.ruff]): the same check
CI runs through `make test`. A violation fails here with ruff's own report."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["bpo", "tests", "benchmarks", "docs/hooks"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args, *PATHS], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_passes():
    out = ruff("check", "--output-format", "concise")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_code_is_formatted():
    out = ruff("format", "--check")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_the_check_can_fail(tmp_path):
    """A line past the configured length and an unused import are reported (the configuration is read)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\nx = '" + "a" * 130 + "'\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--output-format",
            "concise",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "E501" in out.stdout and "F401" in out.stdout
