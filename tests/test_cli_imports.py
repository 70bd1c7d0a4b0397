"""`bpo --help` answers at once: the CLI imports torch, transformers and the rest only in the command that
needs them. Checked by what a fresh interpreter has loaded, not by a clock."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "numpy", "safetensors")


def loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code` (SystemExit from --help ignored)."""
    script = (
        "import json, sys\n"
        f"try:\n    {code}\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_package():
    assert not set(HEAVY) & loaded_after("import bpo.cli")


@pytest.mark.parametrize(
    "command", [[], ["eval"], ["compare"], ["export"], ["annotate"], ["status"], ["reproduce"], ["demo"]]
)
def test_help_loads_no_heavy_package(command):
    assert not set(HEAVY) & loaded_after(f"import bpo.cli; bpo.cli.main({command + ['--help']!r})")


def test_the_check_can_fail():
    """The same probe sees torch when a command's module does import it."""
    assert "torch" in loaded_after("import bpo.cli; import bpo.loop.online")


def test_train_help_still_lists_every_configuration_key(capsys):
    from bpo.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "configuration keys" in out and "log.to (" in out and "sft.data (" in out and "schedule.phases (" in out
