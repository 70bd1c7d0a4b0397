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


class GuardStop(StopRequested):
    """The collapse guard stopped the run (guard.on_collapse=stop), after a checkpoint: resumable, exit code 5."""

    def __init__(self, message: str):
        super().__init__(message, 0)
        self.exit_code = EXIT_GUARD


EXIT_GUARD = 5


class StopFlag:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict = {}

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
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.signum is not None


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
