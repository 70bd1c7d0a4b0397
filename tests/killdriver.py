"""Run the `bpo` CLI in this process and interrupt it at a chosen point (for reliability tests).

    python killdriver.py POINT N bpo-args...

POINT is where the N-th event kills the process with SIGKILL (or, for `sigterm`, sends SIGTERM):
sampling (N-th generate call), labels-stored (right after the N-th pairs file is written),
training (after the N-th training step), checkpoint-write (at the N-th fsync of a checkpoint),
sigterm (after the N-th step), nan (the N-th loss evaluation returns NaN), startup-sigint and
startup-sigterm (that signal as the N-th model load starts, before training), eval-sigterm (SIGTERM as
the N-th final evaluation starts, after training).
"""

import os
import signal
import sys
from pathlib import Path

# Python turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when it started, and a process
# started in the background of a non-interactive shell inherits it ignored: restore Python's handler so the
# startup-sigint point behaves the same however the tests were launched.
signal.signal(signal.SIGINT, signal.default_int_handler)

import torch

import bpo.common.files
import bpo.judging.pairs
import bpo.loop.online
import bpo.run.checkpoint
import bpo.run.rundir
from bpo.cli import main
from bpo.core.losses import Loss

point, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
count = 0


def hit() -> bool:
    global count
    count += 1
    return count == n


def kill(sig=signal.SIGKILL):
    os.kill(os.getpid(), sig)


def after(owner, name, action):
    original = getattr(owner, name)

    def wrapper(*a, **kw):
        result = original(*a, **kw)
        if hit():
            action()
        return result

    setattr(owner, name, wrapper)


def before(owner, name, action):
    original = getattr(owner, name)

    def wrapper(*a, **kw):
        if hit():
            action()
        return original(*a, **kw)

    setattr(owner, name, wrapper)


if point == "sampling":
    before(bpo.judging.pairs, "generate", kill)
elif point == "labels-stored":
    after(bpo.run.rundir.RunDir, "write_pairs", kill)
elif point == "training":
    after(bpo.loop.online, "train_step", kill)
elif point == "checkpoint-write":  # the N-th fsync of a checkpoint's files or folder (bpo.common.files)
    real_fsync = bpo.common.files.fsync_path

    def fsync_path(path):
        if "checkpoints" in Path(path).parts and hit():
            kill()
        return real_fsync(path)

    bpo.common.files.fsync_path = fsync_path
elif point == "sigterm":
    after(bpo.loop.online, "train_step", lambda: kill(signal.SIGTERM))
elif point == "nan":
    real_bind_loss = bpo.loop.online.bind_loss

    def poisoned(*args):
        loss = real_bind_loss(*args)

        def fn(*args):
            out = loss.fn(*args)
            return out * torch.nan if hit() else out

        return Loss(fn, loss.beta, loss.reduction)

    bpo.loop.online.bind_loss = poisoned
elif point in ("startup-sigint", "startup-sigterm"):
    before(bpo.loop.online, "load_base", lambda: kill(signal.SIGINT if point == "startup-sigint" else signal.SIGTERM))
elif point == "eval-sigterm":
    before(bpo.loop.online, "evaluate_run", lambda: kill(signal.SIGTERM))
else:
    raise SystemExit(f"unknown point {point}")

sys.exit(main(argv))
