"""How bpo speaks on the console: its warnings as one line of its own, in every process that runs a run."""

from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def bpo_warnings():
    """Warnings printed as bpo's own one line, `bpo: warning: ...`, not Python's `FILE:LINE: UserWarning: ...`
    followed by the warnings.warn(...) source line, which name bpo's code rather than the user's input. The
    CLI enters it, and so does each worker process of a sweep (`bpo reproduce --jobs N`)."""
    previous = warnings.formatwarning
    warnings.formatwarning = lambda message, category, filename, lineno, line=None: f"bpo: warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = previous
