"""Issue 24: options and key=value settings in any order (defect 7)."""

from __future__ import annotations

import pytest

from bpo.cli import parse_arguments, parser, split_config_arg


def _parse(argv):
    args = parse_arguments(parser(), argv)
    split_config_arg(args)
    return args


def test_a_setting_after_an_option_is_read_in_order():
    """Before: `unrecognized arguments: out=DIR`. Now the three settings, in the order given."""
    args = _parse(["train", "method=iopo", "--quiet", "out=DIR", "beta=0.5"])
    assert args.quiet is True
    assert args.config is None
    assert args.overrides == ["method=iopo", "out=DIR", "beta=0.5"]


def test_an_unknown_option_is_still_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["train", "method=iopo", "--quiet", "--nope", "out=DIR"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
