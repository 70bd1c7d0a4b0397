"""Schedule arithmetic (N = T * B, K = T / F, M = N / F) and its error messages."""

import pytest

from bpo.common.configlib import ConfigError, load_config
from bpo.core.schedule import DEFAULT_BATCH_SIZE, DEFAULT_STEPS, ScheduleError, resolve_schedule
from bpo.loop.config import RunConfig


@pytest.mark.parametrize(
    "given, expected",
    [
        (dict(steps=8, pairs=64, phases=2), (8, 2, 64, 8)),
        (dict(steps=8, batch_size=4, phases=8), (8, 8, 32, 4)),
        (dict(pairs=48, batch_size=6, phases=1), (8, 1, 48, 6)),
        (dict(steps=4, pairs=16, batch_size=4, phases=4), (4, 4, 16, 4)),
    ],
)
def test_any_two_determine_the_third(given, expected):
    s = resolve_schedule(**given)
    assert (s.steps, s.phases, s.pairs, s.batch_size) == expected


def test_phases_and_pairs_per_phase():
    s = resolve_schedule(steps=12, phases=3, batch_size=2)
    assert (s.steps_per_phase, s.pairs_per_phase) == (4, 8)
    phases = list(s.iter_phases())
    assert [(p.index, p.first_step, p.steps, p.pairs) for p in phases] == [(0, 0, 4, 8), (1, 4, 4, 8), (2, 8, 4, 8)]
    assert sum(p.pairs for p in phases) == s.pairs == 24  # T * B = 12 * 2, three phases of 8
    assert [s.phase_of_step(t) for t in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    assert [t for t in range(12) if s.is_phase_start(t)] == [0, 4, 8]


def test_offline_and_on_policy_extremes():
    off = resolve_schedule(steps=5, phases=1, batch_size=2)
    on = resolve_schedule(steps=5, phases=5, batch_size=2)
    assert (off.steps_per_phase, off.pairs_per_phase) == (5, 10)
    assert (on.steps_per_phase, on.pairs_per_phase) == (1, 2)


@pytest.mark.parametrize(
    "given, message",
    [
        (
            dict(steps=16, phases=3, batch_size=2),
            "schedule.phases=3 does not divide schedule.steps=16, so phases would be unevenly spaced; use "
            "schedule.phases=2 (divisors of 16: 1, 2, 4, 8, 16)",
        ),
        (
            dict(steps=6, pairs=20, phases=1),
            "schedule.steps=6 does not divide schedule.pairs=20; each pair is trained on once (N = T * B), so use "
            "e.g. schedule.pairs=24",
        ),
        (
            dict(steps=4, pairs=20, batch_size=4, phases=1),
            "schedule.pairs=20 != schedule.steps * schedule.batch_size = 4 * 4; each pair is trained on once, so set "
            "schedule.pairs=16 or leave one of the three out",
        ),
        (
            dict(steps=4, phases=8, batch_size=2),
            "schedule.phases=8 > schedule.steps=4: at most one phase per step (schedule.phases=4 is on-policy)",
        ),
        (dict(steps=0, phases=1, batch_size=2), "schedule.steps must be a positive integer, got 0"),
        (dict(steps=4, phases=-1, batch_size=2), "schedule.phases must be a positive integer, got -1"),
        (
            dict(pairs=10, batch_size=4, phases=1),
            "schedule.pairs=10 is not a multiple of schedule.batch_size=4; each pair is trained on once, so use e.g. "
            "schedule.pairs=12",
        ),
        (dict(steps=4, phases=1), "give two of schedule.steps (T), schedule.pairs (N) and schedule.batch_size (B)"),
    ],
)
def test_inconsistent_schedules_are_refused_with_an_alternative(given, message):
    with pytest.raises(ScheduleError) as err:
        resolve_schedule(**given)
    assert str(err.value).startswith(message)


# ----------------------------------------------------------------- from the command line's keys


def cli_schedule(*overrides: str):
    """The schedule a run gets from `bpo train key=value ...` (method bpo: F = T unless given)."""
    s = load_config(RunConfig, None, list(overrides)).resolved_schedule()
    return (s.steps, s.phases, s.pairs, s.batch_size)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        # steps and pairs fix B = N / T: the default batch size does not get in the way
        (["schedule.steps=4", "schedule.pairs=32"], (4, 4, 32, 8)),
        (["schedule.steps=4", "schedule.pairs=12"], (4, 4, 12, 3)),
        (["schedule.steps=6", "schedule.pairs=60", "schedule.phases=2"], (6, 2, 60, 10)),
        # one of steps and pairs: B is the default
        (["schedule.steps=5"], (5, 5, 80, 16)),
        (["schedule.pairs=48"], (3, 3, 48, 16)),
        (["schedule.pairs=96", "schedule.phases=2"], (6, 2, 96, 16)),
        # B given with one of them
        (["schedule.steps=5", "schedule.batch_size=3"], (5, 5, 15, 3)),
        (["schedule.pairs=12", "schedule.batch_size=4"], (3, 3, 12, 4)),
        # all three, consistent
        (["schedule.steps=4", "schedule.pairs=12", "schedule.batch_size=3"], (4, 4, 12, 3)),
        # none: the default T = 64 and B = 16
        ([], (64, 64, 1024, 16)),
        (["method=offline_dpo", "schedule.steps=4", "schedule.pairs=8"], (4, 1, 8, 2)),
    ],
)
def test_cli_keys_any_two_determine_the_third(overrides, expected):
    assert (DEFAULT_STEPS, DEFAULT_BATCH_SIZE) == (64, 16), "the expected tuples assume these defaults"
    assert cli_schedule(*overrides) == expected


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["schedule.steps=4", "schedule.pairs=12", "schedule.batch_size=4"],
            "schedule.pairs=12 != schedule.steps * schedule.batch_size = 4 * 4; each pair is trained on once, so set "
            "schedule.pairs=16 or leave one of the three out",
        ),
        (
            ["schedule.steps=6", "schedule.pairs=20"],
            "schedule.steps=6 does not divide schedule.pairs=20; each pair is trained on once (N = T * B), so use "
            "e.g. schedule.pairs=24",
        ),
        (
            ["schedule.pairs=20"],
            "schedule.pairs=20 is not a multiple of schedule.batch_size=16; each pair is trained on once, so use e.g. "
            "schedule.pairs=32",
        ),
    ],
)
def test_cli_keys_inconsistent_are_refused(overrides, message):
    """Refused when the config is loaded (validation resolves the schedule), with the same message."""
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, None, overrides)
    assert str(err.value).startswith(message)
