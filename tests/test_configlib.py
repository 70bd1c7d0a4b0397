from __future__ import annotations  # the loader must resolve string annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Optional

import pytest

from bpo.common.configlib import (
    ConfigError,
    config_from_dict,
    describe,
    dump_yaml,
    fixed_settings,
    load_config,
    option,
    to_dict,
)


@dataclass
class Phase:
    name: str = option(help="phase name")
    weight: float = option(1.0, help="loss weight")


@dataclass
class Schedule:
    steps: int = option(100, help="training steps")
    phases: list[Phase] = option(default_factory=list, help="annotation phases")
    pairs: tuple[int, ...] = option((1, 2), help="pair counts")
    batch_size: int = option(8, help="pairs per step")

    def validate(self) -> None:
        if self.batch_size > self.steps:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed steps ({self.steps})")


@dataclass
class Reward:
    scale: float = option(1.0, help="reward scale")


@dataclass
class Config:
    model: str = option(help="model id")
    method: str = option("bpo", help="algorithm", choices=["bpo", "online_dpo", "offline_dpo"])
    beta: float = option(0.1, help="KL strength")
    loss: Literal["sigmoid", "ipo"] = option("sigmoid", help="loss")
    seed: Optional[int] = option(None, help="random seed")
    use_lora: bool = option(False, help="train LoRA adapters")
    output_dir: Path = option(Path("runs"), help="where to write")
    tags: list[str] = option(default_factory=list, help="free-form tags")
    weights: dict[str, float] = option(default_factory=dict, help="per-task weights")
    schedule: Schedule = option(default_factory=lambda: Schedule(steps=50), help="schedule")
    reward: Reward | None = option(None, help="optional reward section")

    def validate(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    return str(info.value)


def test_option_metadata():
    f = {f.name: f for f in fields(Config)}
    assert f["method"].metadata == {
        "help": "algorithm",
        "choices": ["bpo", "online_dpo", "offline_dpo"],
        "may_change_on_resume": False,
    }
    assert f["beta"].default == 0.1 and f["tags"].default_factory() == []


def test_fixed_settings_leave_out_what_may_change_on_resume():
    """A marked leaf and a marked section are left out; a mapping's entries are leaves of their own:
    Outer(a=1, where="x" (marked), inner=Inner(b=2, c=3 (marked)), logs=Inner (section marked),
    extra={"k": 4, "n": {"m": 5}}) -> {a: 1, inner.b: 2, extra.k: 4, extra.n.m: 5}."""

    @dataclass(frozen=True)
    class Inner:
        b: int = option(2, help="")
        c: int = option(3, help="", may_change_on_resume=True)

    @dataclass(frozen=True)
    class Outer:
        a: int = option(1, help="")
        where: str = option("x", help="", may_change_on_resume=True)
        inner: Inner = option(default_factory=Inner, help="")
        logs: Inner = option(default_factory=Inner, help="", may_change_on_resume=True)
        extra: dict = option(default_factory=lambda: {"k": 4, "n": {"m": 5}}, help="")

    assert fixed_settings(Outer()) == {"a": 1, "inner.b": 2, "extra.k": 4, "extra.n.m": 5}


def test_loads_yaml_and_converts_types(tmp_path):
    path = write(
        tmp_path,
        "model: gpt2\nbeta: 1\noutput_dir: out/x\n"
        "schedule:\n  steps: 40\n  pairs: [3, 4]\n"
        "  phases:\n    - {name: a}\n    - {name: b, weight: 2}\n"
        "weights: {chat: 1, code: 0.5}\nreward: {scale: 3}\n",
    )
    cfg = load_config(Config, path)
    assert cfg.beta == 1.0 and type(cfg.beta) is float
    assert cfg.output_dir == Path("out/x")
    assert cfg.schedule == Schedule(steps=40, phases=[Phase("a"), Phase("b", 2.0)], pairs=(3, 4))
    assert cfg.weights == {"chat": 1.0, "code": 0.5}
    assert cfg.reward == Reward(3.0)
    assert (cfg.method, cfg.seed, cfg.use_lora, cfg.tags) == ("bpo", None, False, [])


def test_overrides_are_parsed_as_yaml(tmp_path):
    path = write(tmp_path, "model: gpt2\nseed: 3\n")
    cfg = load_config(
        Config, path, ["beta=0.5", "use_lora=true", "tags=[a,b]", "seed=null", "method=online_dpo", "weights.chat=2"]
    )
    assert (cfg.beta, cfg.use_lora, cfg.tags, cfg.seed) == (0.5, True, ["a", "b"], None)
    assert cfg.method == "online_dpo"
    assert cfg.weights == {"chat": 2.0}


def test_override_inside_section_the_file_did_not_mention_keeps_defaults(tmp_path):
    cfg = load_config(Config, write(tmp_path, "model: gpt2\n"), ["schedule.batch_size=4"])
    # steps=50 comes from the parent's default_factory, not Schedule's own default of 100
    assert cfg.schedule == Schedule(steps=50, batch_size=4)
    assert load_config(Config, None, ["model=m", "reward.scale=2"]).reward == Reward(2.0)


def test_override_of_str_field_keeps_text_as_typed():
    assert load_config(Config, None, ["model=2024"]).model == "2024"
    # YAML 1.1 reads `on` as True; the str field keeps the text instead
    assert load_config(Config, None, ["model=on", "seed=7"]).model == "on"
    # only a whole scalar override keeps its text; list items were parsed by YAML
    assert (
        error(Config, None, ["model=m", "tags=[on]"]) == "override 'tags=[on]': 'tags.0' must be a str, got True (bool)"
    )


def test_unknown_key_in_file_names_line_and_suggests(tmp_path):
    path = write(tmp_path, "model: gpt2\nschedule:\n  steps: 40\n  stpes: 3\n")
    assert error(Config, path) == (
        f"{path}:4: unknown key 'schedule.stpes'; allowed keys of 'schedule': "
        "steps, phases, pairs, batch_size (did you mean 'steps'?)"
    )


def test_unknown_key_in_override():
    assert error(Config, None, ["model=m", "schedule.stpes=3"]) == (
        "override 'schedule.stpes=3': unknown key 'schedule.stpes'; allowed keys of 'schedule': "
        "steps, phases, pairs, batch_size (did you mean 'steps'?)"
    )
    msg = error(Config, None, ["model=m", "zzz=1"])
    assert msg.startswith("override 'zzz=1': unknown key 'zzz'; allowed top-level keys: model,")
    assert "did you mean" not in msg


def test_wrong_type_names_line(tmp_path):
    path = write(tmp_path, "model: gpt2\n\nbeta: abc\n")
    assert error(Config, path) == f"{path}:3: 'beta' must be a float, got 'abc' (str)"


@pytest.mark.parametrize(
    "override, message",
    [
        ("beta=true", "'beta' must be a float, got True (bool)"),
        ("schedule.steps=1.5", "'schedule.steps' must be an int, got 1.5 (float)"),
        ("schedule.steps=false", "'schedule.steps' must be an int, got False (bool)"),
        ("use_lora=1", "'use_lora' must be a bool, got 1 (int)"),
        ("seed=x", "'seed' must be an int, got 'x' (str)"),
        ("tags=a", "'tags' must be a list[str], got 'a' (str)"),
        ("weights=[1]", "'weights' must be a dict[str, float], got [1] (list)"),
        ("output_dir=3", "'output_dir' must be a path, got 3 (int)"),
        ("schedule.pairs=[1, x]", "'schedule.pairs.1' must be an int, got 'x' (str)"),
        ("model=null", "'model' must be a str, got null"),
    ],
)
def test_wrong_type_in_override(override, message):
    assert error(Config, None, ["model=m", override]) == f"override '{override}': {message}"


def test_bad_choice():
    assert (
        error(Config, None, ["model=m", "method=foo"])
        == "override 'method=foo': 'method' must be one of bpo, online_dpo, offline_dpo; got 'foo'"
    )
    assert (
        error(Config, None, ["model=m", "loss=hinge"])
        == "override 'loss=hinge': 'loss' must be one of sigmoid, ipo; got 'hinge'"
    )


def test_malformed_overrides():
    assert error(Config, None, ["abc"]) == "override 'abc': expected key=value"
    assert error(Config, None, ["=3"]) == "override '=3': expected key=value"
    assert error(Config, None, ["model=[1"]) == "override 'model=[1': cannot parse '[1' as a YAML value"
    assert (
        error(Config, None, ["model=m", "beta.x=1"])
        == "override 'beta.x=1': 'beta' must be a float, got {'x': 1} (dict)"
    )


def test_bad_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert error(Config, missing) == f"{missing}: config file not found"
    path = write(tmp_path, "- a\n- b\n")
    assert error(Config, path) == f"{path}: the top level must be a mapping of keys, got ['a', 'b'] (list)"
    path = write(tmp_path, "model: gpt2\nbeta: [1, 2\n")
    assert error(Config, path).startswith(f"{path}:3: invalid YAML: ")
    # an empty file means all defaults
    assert load_config(Config, write(tmp_path, ""), ["model=m"]).model == "m"


def test_scalar_where_section_expected(tmp_path):
    path = write(tmp_path, "model: gpt2\nschedule: 5\n")
    assert error(Config, path) == f"{path}:2: 'schedule' must be a mapping (section Schedule), got 5 (int)"
    assert (
        error(Config, None, ["model=m", "schedule=5"])
        == "override 'schedule=5': 'schedule' must be a mapping (section Schedule), got 5 (int)"
    )
    assert (
        error(Config, path, ["schedule.steps=3"])
        == "override 'schedule.steps=3': 'schedule' is not a section, cannot set 'schedule.steps'"
    )


def test_missing_required_key(tmp_path):
    path = write(tmp_path, "beta: 0.2\n")
    assert error(Config, path) == f"{path}: missing required key 'model'"
    path = write(tmp_path, "model: m\nschedule:\n  phases:\n    - {weight: 2}\n")
    assert error(Config, path) == f"{path}:4: missing required key 'schedule.phases.0.name'"


def test_validate_runs_bottom_up_with_prefix():
    both = ["model=m", "beta=-1", "schedule.batch_size=99"]
    assert error(Config, None, both) == "schedule: batch_size (99) must not exceed steps (50)"
    assert error(Config, None, both[:2]) == "beta must be positive, got -1.0"


def test_type_errors_come_before_validation():
    assert (
        error(Config, None, ["model=m", "schedule.batch_size=99", "beta=x"])
        == "override 'beta=x': 'beta' must be a float, got 'x' (str)"
    )


def test_config_from_dict_and_round_trip(tmp_path):
    schedule = {"pairs": [5], "phases": [{"name": "a"}]}
    cfg = config_from_dict(Config, {"model": "m", "schedule": schedule, "output_dir": "o"})
    assert cfg.schedule.pairs == (5,) and cfg.output_dir == Path("o")
    data = to_dict(cfg)
    assert data["schedule"] == {"steps": 50, "phases": [{"name": "a", "weight": 1.0}], "pairs": [5], "batch_size": 8}
    assert data["output_dir"] == "o" and list(data)[:3] == ["model", "method", "beta"]
    dump_yaml(cfg, tmp_path / "resolved.yaml")
    assert load_config(Config, tmp_path / "resolved.yaml") == cfg
    with pytest.raises(ConfigError) as info:
        config_from_dict(Config, {"beta": 1}, source="defaults")
    assert str(info.value) == "defaults: missing required key 'model'"
    with pytest.raises(ConfigError) as info:
        config_from_dict(Config, [1])  # type: ignore[arg-type]
    assert str(info.value) == "<dict>: the top level must be a mapping (section Config), got [1] (list)"


def test_describe_lists_every_leaf():
    rows = {row[0]: row[1:] for row in describe(Config)}
    assert rows["model"] == ("str", "(required)", "model id")
    assert rows["method"] == ("{bpo,online_dpo,offline_dpo}", "'bpo'", "algorithm")
    assert rows["seed"] == ("int or null", "None", "random seed")
    assert rows["output_dir"] == ("path", "'runs'", "where to write")
    assert rows["schedule.steps"] == ("int", "50", "training steps")
    assert rows["schedule.pairs"] == ("tuple[int, ...]", "[1, 2]", "pair counts")
    assert rows["reward"] == ("mapping (Reward) or null", "None", "optional reward section")
    assert "schedule" not in rows and len(rows) == 14


@dataclass
class Levels:
    level: Literal[0, 1] = option(0, help="a numeric choice")


def test_bool_does_not_match_numeric_choice():
    assert load_config(Levels, None, ["level=1"]).level == 1
    assert error(Levels, None, ["level=true"]) == "override 'level=true': 'level' must be one of 0, 1; got True"


@dataclass
class Opt:
    lr: float = option(0.1, help="learning rate")


def test_scientific_notation_without_dot_is_a_float():
    """PyYAML reads '5e-3' as a string (YAML 1.1); a float field takes it as 0.005; other text still fails."""
    assert load_config(Opt, None, ["lr=5e-3"]).lr == 0.005
    assert config_from_dict(Opt, {"lr": "1E4"}).lr == 10000.0
    with pytest.raises(ConfigError, match="'lr' must be a float, got 'fast'"):
        load_config(Opt, None, ["lr=fast"])
