"""Helpers for the human-annotation tests: a tiny run paused for labels, and `bpo annotate` as a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tinytask import run_args, write_task

TESTS = Path(__file__).parent


def paused_run(folder: Path, *extra: str) -> tuple[Path, list[str]]:
    """A tiny BPO run (2 phases of 4 pairs, 4 steps) stopped at phase 0 for labels; (run folder, its train args)."""
    from bpo.cli import main

    task = folder / "task"
    if not (task / "task.yaml").exists():
        write_task(task)
    run = folder / "run"
    given = {a.partition("=")[0] for a in extra}
    defaults = [
        a
        for a in ("annotator.kind=human", "schedule.steps=4", "schedule.batch_size=2")
        if a.partition("=")[0] not in given
    ]
    args = run_args(task, run, *defaults, *extra)  # a case's own value replaces this helper's default
    assert main(args) == 4  # EXIT_AWAITING_LABELS
    return run, args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`bpo annotate RUN --port P` in its own process (killable), ready when it answers."""

    def __init__(self, run: Path, port: int | None = None):
        self.run, self.port = run, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bpo.cli", "annotate", str(self.run), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bpo annotate exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                httpx.get(self.url + "/api/state", timeout=1)  # 401: it is up
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("bpo annotate did not start within 60 s")

    def stop(self) -> str:
        """Terminate; the server's stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
