"""Judges that stop answering, for the timeout tests (tests/test_timeouts.py): importable as
`timeoutjudges:...` with tests/ on PYTHONPATH (subprocesses get it through the environment)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tinytask import score

HANG_SECONDS = 60  # far beyond any test's timeout; the thread left behind ends by itself


def hangs_when(prompts, responses):
    """tinytask's judge, which hangs once the file $BPO_TEST_HANG_WHEN exists (a run's pairs of phase 0, a
    checkpoint, ...), first touching $BPO_TEST_HANGING so that a test knows the call is under way."""
    trigger = os.environ.get("BPO_TEST_HANG_WHEN")
    if trigger and Path(trigger).exists():
        if os.environ.get("BPO_TEST_HANGING"):
            Path(os.environ["BPO_TEST_HANGING"]).touch()
        time.sleep(HANG_SECONDS)
    return score(prompts, responses)
