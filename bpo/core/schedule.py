"""The annotation schedule of BPO: T training steps, F annotation phases, N labelled pairs, batch B.

Each labelled pair is trained on exactly once, so N = T * B: any two of T, N, B give the third. (IOPO with
shared pairs is the one exception: its two players walk the same N = T' * B pairs, T' of its T steps being
the protagonist's; bpo.training.players.)
Phases are K = T / F steps apart and each annotates M = N / F pairs. F = 1 is offline DAP (all pairs
labelled up front from the initial policy); F = T is on-policy (every step trains on fresh pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from bpo.common.configlib import option

# The defaults make `bpo train` with no arguments learn the built-in task visibly (win rate and mean
# score up, intervals apart) in about a minute on 2 CPU cores: N = 64 * 16 = 1024 pairs. With 16 * 8
# = 128 pairs the default run ended where it started (tests/test_default_run.py).
DEFAULT_STEPS = 64  # T when neither steps nor pairs is given
DEFAULT_BATCH_SIZE = 16  # B when it is not given and steps and pairs do not both fix it


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int | None = option(
        None,
        help=f"T, training steps; any two of steps, pairs, batch_size give the third (steps = {DEFAULT_STEPS} if "
        "neither steps nor pairs is set)",
    )
    phases: int | None = option(
        None, help="F, annotation phases (1 = offline, = steps for on-policy); null: the method's default"
    )
    pairs: int | None = option(None, help="N, labelled pairs in total (N = T * B: each is trained on once)")
    batch_size: int | None = option(
        None, help=f"B, pairs per training step; null: pairs / steps if both are given, else {DEFAULT_BATCH_SIZE}"
    )

    def steps_or_default(self) -> int | None:
        """T as given; else None where pairs is given (T follows from N and B), else the default."""
        return self.steps if (self.steps is not None or self.pairs is not None) else DEFAULT_STEPS

    def batch_size_or_default(self) -> int | None:
        """B as given; else None where steps and pairs are both given (they fix B = N / T), else the default."""
        if self.batch_size is not None or (self.steps is not None and self.pairs is not None):
            return self.batch_size
        return DEFAULT_BATCH_SIZE


class ScheduleError(ValueError):
    """An inconsistent schedule; the message names the keys and a consistent alternative."""


@dataclass(frozen=True)
class Phase:
    index: int  # 0-based phase number
    first_step: int  # global index of the phase's first training step
    steps: int  # K
    pairs: int  # M

    @property
    def end(self) -> int:
        """Global index one past the phase's last step."""
        return self.first_step + self.steps

    def steps_from(self, start: int) -> range:
        """The phase's global step indices not yet done when `start` steps are complete."""
        return range(max(start, self.first_step), self.end)


@dataclass(frozen=True)
class Schedule:
    steps: int  # T
    phases: int  # F
    pairs: int  # N
    batch_size: int  # B

    @property
    def steps_per_phase(self) -> int:  # K
        return self.steps // self.phases

    @property
    def pairs_per_phase(self) -> int:  # M
        return self.pairs // self.phases

    def iter_phases(self) -> Iterator[Phase]:
        for f in range(self.phases):
            yield Phase(f, f * self.steps_per_phase, self.steps_per_phase, self.pairs_per_phase)

    def phases_from(self, start: int) -> Iterator[Phase]:
        """The phases with steps left when `start` steps are complete (a resumed run skips the others)."""
        return (phase for phase in self.iter_phases() if phase.end > start)

    def checkpoint_due(self, done: int, every: int) -> bool:
        """After `done` steps: always at a phase's end, and every `every` steps if every > 0."""
        return done % self.steps_per_phase == 0 or (every > 0 and done % every == 0)

    def phase_of_step(self, step: int) -> int:
        return step // self.steps_per_phase

    def is_phase_start(self, step: int) -> bool:
        return step % self.steps_per_phase == 0


def _positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ScheduleError(f"schedule.{name} must be a positive integer, got {value!r}")


def resolve_schedule(
    steps: int | None = None,
    phases: int = 1,
    pairs: int | None = None,
    batch_size: int | None = None,
) -> Schedule:
    """Complete and check a schedule from any two of steps (T), pairs (N), batch_size (B), and phases (F)."""
    for name, value in (("steps", steps), ("phases", phases), ("pairs", pairs), ("batch_size", batch_size)):
        _positive(name, value)
    if phases is None:
        raise ScheduleError("schedule.phases must be given (1 = offline, = steps for on-policy)")
    given = sum(v is not None for v in (steps, pairs, batch_size))
    if given < 2:
        raise ScheduleError(
            "give two of schedule.steps (T), schedule.pairs (N) and schedule.batch_size (B); "
            f"got steps={steps}, pairs={pairs}, batch_size={batch_size}"
        )
    if steps is None:
        if pairs % batch_size:
            raise ScheduleError(
                f"schedule.pairs={pairs} is not a multiple of schedule.batch_size={batch_size}; "
                f"each pair is trained on once, so use e.g. schedule.pairs={_round_up(pairs, batch_size)}"
            )
        steps = pairs // batch_size
    elif batch_size is None:
        if pairs % steps:
            raise ScheduleError(
                f"schedule.steps={steps} does not divide schedule.pairs={pairs}; each pair is trained on "
                f"once (N = T * B), so use e.g. schedule.pairs={_round_up(pairs, steps)}"
            )
        batch_size = pairs // steps
    elif pairs is None:
        pairs = steps * batch_size
    elif pairs != steps * batch_size:
        raise ScheduleError(
            f"schedule.pairs={pairs} != schedule.steps * schedule.batch_size = {steps} * {batch_size}; "
            f"each pair is trained on once, so set schedule.pairs={steps * batch_size} or leave one of the three out"
        )
    if phases > steps:
        raise ScheduleError(
            f"schedule.phases={phases} > schedule.steps={steps}: at most one phase per step "
            f"(schedule.phases={steps} is on-policy)"
        )
    if steps % phases:
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        nearest = min(divisors, key=lambda d: (abs(d - phases), d))
        raise ScheduleError(
            f"schedule.phases={phases} does not divide schedule.steps={steps}, so phases would be unevenly "
            f"spaced; use schedule.phases={nearest} (divisors of {steps}: {', '.join(map(str, divisors))})"
        )
    return Schedule(steps=steps, phases=phases, pairs=pairs, batch_size=batch_size)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
