"""Built-in tasks: a name -> how to build the task and, if it has one, its ready-made initial policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bpo.tasks import reviews
from bpo.tasks.base import Task


@dataclass(frozen=True)
class BuiltinTask:
    build: Callable[[int], Task]  # seed -> task
    policy: Callable[[Path, bool], Path] | None = None  # (cache dir, progress) -> folder of the initial policy


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    "reviews": BuiltinTask(reviews.build_task, lambda cache, progress: reviews.sft_policy(cache, progress=progress)),
}
