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


def test_a_key_given_twice_on_the_command_line_is_refused_but_distinct_keys_are_not():
    """Issue 24, defect 4 (before: the last value won silently). The corpus runs the CLI cases."""
    from bpo.common.configlib import ConfigError, refuse_repeated_keys

    refuse_repeated_keys(["beta=0.1", "lora.rank=4", "lora.alpha=8", "loss=ipo"])
    with pytest.raises(ConfigError, match=r"override 'lora.rank=8': lora.rank is given twice .*first: 'lora.rank=4'"):
        refuse_repeated_keys(["lora.rank=4", "beta=1", "lora.rank=8"])


def test_a_key_given_twice_in_a_json_line_is_refused_at_any_depth(tmp_path):
    from bpo.common.jsonl import DataFileError
    from bpo.data.prefdata import read_preferences

    path = tmp_path / "pairs.jsonl"
    turn = '{"role": "user", "content": "a", "content": "b"}'
    path.write_text(f'{{"prompt": [{turn}], "chosen": "c", "rejected": "d"}}\n')
    with pytest.raises(DataFileError, match=rf"^{path}:1: content: key given twice in one JSON object"):
        read_preferences(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "beta=1", "--quiet", "cfg.yaml", "out=DIR"],  # before: unrecognized arguments: cfg.yaml
        ["train", "beta=1", "cfg.yaml", "--quiet", "out=DIR"],  # before: override 'cfg.yaml': expected key=value
        ["train", "--quiet", "cfg.yaml", "beta=1", "out=DIR"],
    ],
)
def test_the_config_file_may_stand_anywhere_among_the_settings(argv):
    args = _parse(argv)
    assert (args.config, args.overrides, args.quiet) == ("cfg.yaml", ["beta=1", "out=DIR"], True)


def test_two_config_files_are_refused(capsys):
    from bpo.cli import main

    assert main(["train", "a.yaml", "--quiet", "b.yaml"]) == 2
    assert "bpo: error: one config file at most, got a.yaml, b.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["eval", "--quiet", "RUN", "eval.prompts=4"], ("RUN", ["eval.prompts=4"])),
        (["eval", "RUN", "--quiet", "eval.prompts=4"], ("RUN", ["eval.prompts=4"])),
        (["demo", "beta=1", "--quiet", "seed=2"], (None, ["beta=1", "seed=2"])),
    ],
)
def test_every_command_takes_options_and_settings_in_any_order(argv, expected):
    args = _parse(argv)
    assert (getattr(args, "run_dir", None), args.overrides) == expected and args.quiet is True
