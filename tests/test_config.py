"""Every shipped config loads and validates; run-level rules (method defaults, bad values) hold."""

from pathlib import Path

import pytest
import yaml

from bpo.cli import main
from bpo.common.configlib import ConfigError, load_config
from bpo.loop.config import RunConfig

ROOT = Path(__file__).parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "bpo" / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_and_keeps_the_schedule_it_states(path):
    """Whatever a shipped file says of T, F and B is what the run gets (nothing silently re-derived)."""
    cfg = load_config(RunConfig, path)
    schedule = cfg.resolved_schedule()
    stated = (yaml.safe_load(path.read_text()) or {}).get("schedule", {})
    for key in ("steps", "phases", "batch_size", "pairs"):
        if key in stated:
            assert getattr(schedule, key) == stated[key], (path.name, key)


def test_defaults_resolve_to_the_documented_schedule():
    """No schedule keys: T = 64, B = 16, so N = 1024; bpo's F defaults to T (on-policy)."""
    schedule = RunConfig().resolved_schedule()
    assert (schedule.steps, schedule.batch_size, schedule.pairs, schedule.phases) == (64, 16, 1024, 64)


def test_method_defaults_for_phases_and_reference():
    """online methods default to F = T; offline to F = 1; bpo's reference is the behavior policy."""
    on = load_config(RunConfig, None, ["method=online_dpo", "schedule.steps=6"])
    off = load_config(RunConfig, None, ["method=offline_dpo", "schedule.steps=6"])
    bpo = load_config(RunConfig, None, ["method=bpo", "schedule.steps=6", "schedule.phases=2"])
    assert (on.resolved_schedule().phases, on.reference_kind()) == (6, "sft")
    assert (off.resolved_schedule().phases, off.reference_kind()) == (1, "sft")
    assert (bpo.resolved_schedule().phases, bpo.reference_kind()) == (2, "behavior")
    assert load_config(RunConfig, None, ["loss=ipo"]).reduction() == "mean"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=offline_dpo", "schedule.phases=2"], "method=offline_dpo has one phase"),
        (["beta=0"], "beta must be positive"),
        (["reference.kind=fixed"], "reference: kind=fixed needs reference.path"),
        (["loss=dpx"], "'loss' must be one of dpo, ipo, slic, hinge, kto_pair; got 'dpx'"),
        (["schedule.phases=3"], "schedule.phases=3 does not divide schedule.steps=64"),
    ],
)
def test_bad_values_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(RunConfig, None, overrides)


def test_cli_bad_key_exits_2_with_one_line(capsys):
    assert main(["train", "metod=bpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'metod'" in err and "did you mean 'method'" in err
    assert main(["train", "method=ppo"]) == 2
    assert "'method' must be one of bpo, online_dpo, offline_dpo, iopo; got 'ppo'" in capsys.readouterr().err
