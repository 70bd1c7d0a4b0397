"""Graceful stops: the first SIGINT/SIGTERM asks the loop to finish its step, checkpoint and exit;
a second one exits at once (the last complete checkpoint stays valid).

Outside the training loop (start-up, final evaluation) a signal interrupts the command:
`interruptible` turns SIGTERM into `Interrupted` as SIGINT is turned into KeyboardInterrupt, so the
CLI can clean up (a run not yet started leaves no folder) and exit with a message, not a traceback."""

from __future__ import annotations

import os
import signal
import sys


class StopRequested(Exception):
    """Raised by the loop after it checkpointed in answer to a signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum

    def __reduce__(self):
        # A sweep's worker process sends its run's stop back to the parent (bpo.experiments.sweep): rebuilt as a
        # StopRequested with the same message and exit code (the default pickling would call __init__(message)).
        return _rebuilt_stop, (str(self), self.exit_code)


def _rebuilt_stop(message: str, exit_code: int) -> StopRequested:
    stop = StopRequested(message, 0)
    stop.exit_code = exit_code
    return stop


class GuardStop(StopRequested):
    """The collapse guard stopped the run (guard.on_collapse=stop), after a checkpoint: resumable, exit code 5."""

    def __init__(self, message: str):
        super().__init__(message, 0)
        self.exit_code = EXIT_GUARD


EXIT_GUARD = 5
EXIT_JUDGE_TIMEOUT = 6  # a judge gave no answer within its timeout (bpo.judging.judges.JudgeTimeout); resumable


class StopFlag:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    active: StopFlag | None = None  # the flag in effect, for code that waits (pending_signal)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict = {}
        self._outer: StopFlag | None = None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: leave now
            sys.stderr.write("\nbpo: second signal, exiting at once; the last complete checkpoint is kept\n")
            os._exit(128 + signum)
        self.signum = signum
        sys.stderr.write(
            f"\nbpo: {signal.Signals(signum).name} received; finishing this step, then checkpointing (signal again to "
            "exit at once)\n"
        )

    def __enter__(self) -> StopFlag:
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        self._outer, StopFlag.active = StopFlag.active, self
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        StopFlag.active = self._outer

    @property
    def requested(self) -> bool:
        return self.signum is not None


def pending_signal() -> int | None:
    """The signal a StopFlag in effect has received and not yet acted on, if any: code that waits (a judge's
    call, bpo.judging.judges.with_timeout) stops waiting on it instead of making the stop wait for an answer."""
    flag = StopFlag.active
    return flag.signum if flag is not None else None


class Interrupted(Exception):
    """SIGINT or SIGTERM outside the training loop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class interruptible:
    """Within the block, SIGTERM raises Interrupted (SIGINT raises KeyboardInterrupt, as always)."""

    def __enter__(self) -> interruptible:
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    @staticmethod
    def _raise(signum, frame) -> None:
        raise Interrupted(signum)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
