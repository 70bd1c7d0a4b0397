"""Issue 24, defect 6: messages that name the key and the value, and bpo's own one-line warnings."""

from __future__ import annotations

import warnings

import pytest

from bpo.common.configlib import ConfigError, load_config
from bpo.loop.config import RunConfig


def _refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, None, list(overrides))
    return str(err.value)


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("lora.rank=0", "lora: rank must be positive, got 0"),
        ("lora.ensemble=-2", "lora: ensemble must be positive, got -2"),
        ("lora.alpha=0", "lora: alpha must be positive and finite, got 0.0"),
        ("sampling.top_p=1.5", "sampling: top_p must be in (0, 1], got 1.5"),
        ("sampling.max_new_tokens=0", "sampling: max_new_tokens must be positive, got 0"),
    ],
)
def test_a_refused_value_is_named_with_its_key(setting, fragment):
    """Before: 'rank, alpha and ensemble must be positive' and 'need 0 < top_p <= 1, ...', no value."""
    assert fragment in _refusal(setting)


def test_a_control_character_in_config_json_says_at_once(tmp_path):
    """Before: 'Invalid control character at at column ...'."""
    from bpo.model.loading import ModelFolderError, check_model_folder

    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text('{"model_type": "llama\x01"}')
    with pytest.raises(ModelFolderError) as err:
        check_model_folder(tmp_path)
    assert "at at" not in str(err.value) and "Invalid control character at column" in str(err.value)


def test_warnings_are_bpo_lines():
    """Before: '/path/file.py:12: UserWarning: ...' and the warnings.warn(...) source line."""
    from bpo.cli import bpo_warnings

    with bpo_warnings():
        text = warnings.formatwarning("skipping 3 of 8 eval examples", UserWarning, "/x/preflight.py", 12, "warn(...)")
    assert text == "bpo: warning: skipping 3 of 8 eval examples\n"
    assert warnings.formatwarning("m", UserWarning, "f.py", 1).startswith("f.py:1: UserWarning")  # restored
