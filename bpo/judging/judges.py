"""Judges: functions that score a batch of (prompt, response) texts, higher is better.

This module sits below both the tasks (a task may carry its own judge) and the annotators (which
label pairs with a judge); it imports neither.

A judge is named by a string:
    task               the task's own scoring function (e.g. the built-in task's oracle)
    module:function    a user's Python function  f(prompts: list[str], responses: list[str]) -> list[float]
    a folder path      a Hugging Face sequence-classification reward model; it gets texts and
                       re-tokenises them with its own tokenizer, so its vocabulary need not match the policy's

Every judge `load_judge` returns is checked on every call: it must return exactly one finite number
per response, else a JudgeError names the judge and what it returned; an exception raised inside a
user's judge becomes a JudgeError naming the judge and where in its code it was raised.

Every call has a timeout (annotator.timeout, eval.judge_timeout; `with_timeout`): a Python judge runs in a
worker thread and the caller waits at most that long, then stops the run resumably (JudgeTimeout). A
signal while it waits stops the run as a signal does anywhere (JudgeStop), never as the judge's error.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from bpo.common.hub import is_model_id
from bpo.common.stop import EXIT_JUDGE_TIMEOUT, Interrupted, StopRequested, pending_signal
from bpo.data.chat import prompt_messages, prompt_text
from bpo.data.task import Judge


def pointwise_judge(score: Callable[[str, str], float]) -> Judge:
    """A Judge from a scorer of one (prompt, response) pair."""

    def judge(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return [score(p, r) for p, r in zip(prompts, responses)]

    judge.__doc__ = f"Judge built on {score.__module__}.{score.__name__}: one score per pair, higher is better."
    return judge


class JudgeError(ValueError):
    pass


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text if len(text) <= 80 else text[:77] + '...'} ({type(value).__name__})"


def _raised_at(err: BaseException) -> str:
    """' (at file.py:12)': the innermost frame of the exception's traceback, where the user's code failed."""
    if isinstance(err, SyntaxError):  # its message names the file and line already
        return ""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames or frames[-1].filename == __file__:  # raised by the call itself: the signature
        return " (a judge is called as f(prompts: list[str], responses: list[str]))"
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"


def check_scores(scores: Any, n: int, name: str) -> list[float]:
    """`scores` as n finite floats, or a JudgeError naming the judge and what it returned."""
    expected = f"a judge returns one finite number per response ({n} here)"
    returned = scores  # named in a refusal as the judge gave it (a NumPy array is not called a list)
    if hasattr(scores, "tolist") and getattr(scores, "ndim", 1) == 1:  # numpy array, torch tensor
        scores = scores.tolist()
    if not isinstance(scores, (list, tuple)):
        raise JudgeError(f"judge {name!r} returned {_show(returned)}; {expected}")
    if len(scores) != n:
        raise JudgeError(
            f"judge {name!r} returned {len(scores)} score(s) for {n} responses: {_show(returned)}; {expected}"
        )
    out = []
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise JudgeError(f"judge {name!r} returned {_show(score)} as score {i}; {expected}")
        if not math.isfinite(score):
            raise JudgeError(f"judge {name!r} returned {score} as score {i}; {expected}")
        out.append(float(score))
    return out


def checked(judge: Judge, name: str, user_code: bool = False) -> Judge:
    """`judge` with its output checked (check_scores); a user's function's exceptions become JudgeErrors."""
    if getattr(judge, "checked_as", None) == name:
        return judge

    def call(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        prompts = [prompt_text(p) for p in prompts]  # a conversation reaches a judge as its text (bpo.data.chat)
        try:
            scores = judge(prompts, responses)
        except (JudgeError, StopRequested, Interrupted):  # a stop or a signal is not the judge's error
            raise
        except Exception as err:  # the user's code: any exception is the judge's, named with its place
            if not user_code:
                raise
            raise JudgeError(f"judge {name!r} raised {type(err).__name__}: {err}{_raised_at(err)}") from err
        return check_scores(scores, len(responses), name)

    call.checked_as = name  # type: ignore[attr-defined]
    call.__doc__ = judge.__doc__
    return call


class JudgeStop(StopRequested):
    """The run stops during a judge's call: a signal came while it answered, or it timed out. The loop
    checkpoints and says how to resume (bpo.loop.online)."""

    def __init__(self, message: str, signum: int, exit_code: int | None = None):
        super().__init__(message, signum)
        self.signum = signum
        if exit_code is not None:
            self.exit_code = exit_code

    def __reduce__(self):
        return JudgeStop, (str(self), self.signum, self.exit_code)


class JudgeTimeout(JudgeStop):
    """A judge gave no answer within its timeout; exit code 6."""

    def __init__(self, name: str, seconds: float, setting: str):
        super().__init__(
            f"judge {name!r} gave no answer within {seconds:g} s ({setting}); make it answer, or raise {setting}",
            0,
            EXIT_JUDGE_TIMEOUT,
        )


# A Python judge's timeout unless set: long enough for a slow scorer (one call labels up to 64 responses of a
# phase, or scores a whole evaluation), short enough that a judge that hangs does not stall a run for hours. A
# reward model computes in this process for a time its batch bounds, and a thread on the GPU could not be
# abandoned cleanly: it has none.
PYTHON_JUDGE_TIMEOUT = 600.0
POLL_SECONDS = 0.05  # how often a wait for a judge looks for a signal


def judge_timeout(spec: str, setting: float | None) -> float | None:
    """The timeout of the judge named by `spec`, in seconds, or None for none: the setting (0: none), or the
    default of the judge's kind."""
    if setting is not None:
        return setting or None
    if Path(spec).is_dir() or is_model_id(spec):  # a reward model
        return None
    return PYTHON_JUDGE_TIMEOUT


def with_timeout(judge: Judge, name: str, seconds: float | None, setting: str) -> Judge:
    """`judge` whose every call returns within `seconds` or raises JudgeTimeout naming it and `setting`. The
    call runs in a daemon thread (a hung one cannot be killed: it is left behind, and does not keep the
    process alive); while it runs, a signal that a StopFlag caught stops the wait (JudgeStop), and one
    outside the loop (SIGTERM's Interrupted, SIGINT's KeyboardInterrupt) is raised in this thread, not the
    judge's."""
    if seconds is None:
        return judge

    def call(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["scores"] = judge(prompts, responses)
            except BaseException as err:  # handed to the caller's thread, raised there as it is
                outcome["error"] = err

        worker = threading.Thread(target=work, name=f"judge {name}", daemon=True)
        deadline = time.monotonic() + seconds
        worker.start()
        while worker.is_alive():
            worker.join(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            signum = pending_signal()
            if signum is not None:
                raise JudgeStop(f"{signal.Signals(signum).name} during a call of judge {name!r}", signum)
            if worker.is_alive() and time.monotonic() >= deadline:
                raise JudgeTimeout(name, seconds, setting)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["scores"]

    call.__doc__ = judge.__doc__
    return call


def import_function(spec: str) -> Judge:
    """'package.module:function' -> the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise JudgeError(f"judge {spec!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise JudgeError(f"judge {spec!r}: cannot import {module_name} ({err})") from None
    except Exception as err:  # the user's module failed while it ran (SyntaxError, NameError, ...)
        raise JudgeError(
            f"judge {spec!r}: importing {module_name} raised {type(err).__name__}: {err}{_raised_at(err)}"
        ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise JudgeError(f"judge {spec!r}: {module_name} has no {attr!r}")
    if not callable(fn):
        raise JudgeError(f"judge {spec!r}: {attr} is not callable ({type(fn).__name__})")
    return fn


class RewardModelJudge:
    """A sequence-classification model's first logit as the score, computed in batches from text."""

    def __init__(
        self, path: str | Path, batch_size: int = 16, max_length: int = 512, allow_pickle: bool = False, device="cpu"
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bpo.model.loading import (
            check_model_folder,
            load_errors,
            load_failure,
            quiet_transformers,
        )

        folder = check_model_folder(path, allow_pickle)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(folder)
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    folder, dtype=torch.float32, output_loading_info=True
                )
        except load_errors() as err:
            raise JudgeError(f"judge {str(path)!r}: cannot load the reward model: {load_failure(err)}") from None
        if info.get("missing_keys"):
            raise JudgeError(
                f"judge {str(path)!r}: not a trained reward model (its classification head {min(info['missing_keys'])} "
                "would start random); give a sequence-classification model folder"
            )
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise JudgeError(f"judge {str(path)!r}: the tokenizer has neither a pad nor an EOS token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model.eval().to(device)
        self.name = str(path)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def _texts(self, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        if getattr(self.tokenizer, "chat_template", None):  # the whole conversation, then the response
            return [
                self.tokenizer.apply_chat_template(
                    prompt_messages(p) + [{"role": "assistant", "content": r}], tokenize=False
                )
                for p, r in zip(prompts, responses)
            ]
        return [f"{prompt_text(p)} {r}" for p, r in zip(prompts, responses)]

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        import torch

        from bpo.model.device import autocast, model_device

        device = model_device(self.model)
        texts = self._texts(prompts, responses)
        scores: list[float] = []
        with torch.no_grad(), autocast(device):
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                ).to(device)
                scores += self.model(**enc).logits[:, 0].float().tolist()
        return check_scores(scores, len(texts), self.name)  # a model with broken weights gives NaN


@functools.lru_cache(maxsize=4)
def _reward_model(folder: Path, device: str) -> RewardModelJudge:
    """One copy per folder and device, so that the start-up check and the run share it."""
    return RewardModelJudge(folder, device=device)


REGISTERED_PREFIX = "api:"
_registered: dict[str, Judge] = {}  # judges given as Python objects in this process (bpo.api)


def register_judge(judge: Judge) -> str:
    """The spec under which `judge` is loaded from now on: `module:function` for an importable module-level
    function (so a run resumed in any process finds it), else `api:<name>`, known in this process only."""
    module, name = getattr(judge, "__module__", None), getattr(judge, "__qualname__", None) or type(judge).__name__
    if module and module != "__main__" and name.isidentifier():
        spec = f"{module}:{name}"
        try:
            if import_function(spec) is judge:
                return spec
        except JudgeError:
            pass
    spec = REGISTERED_PREFIX + "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    _registered[spec] = judge
    return spec


def load_judge(spec: str, task_judge: Judge | None = None, device="cpu") -> Judge:
    """The judge named by `spec` (checked on every call); 'task' means `task_judge`, the task's own judge.
    A reward model computes on `device` (the run's, bpo.model.device); Python judges run where they run."""
    if spec == "task":
        if task_judge is None:
            raise JudgeError(
                "judge 'task': this task has no built-in judge; name a module:function or a reward model folder"
            )
        return checked(task_judge, "task")
    if spec.startswith(REGISTERED_PREFIX):
        if spec not in _registered:
            raise JudgeError(
                f"judge {spec!r} was given to bpo.train as a Python object in another process: give it again, "
                "e.g. bpo.load_run(FOLDER).resume(judge=my_judge)"
            )
        return checked(_registered[spec], spec, user_code=True)
    if Path(spec).is_dir() or is_model_id(spec):  # a reward-model folder, or a Hub id of one
        return _reward_model(Path(spec) if Path(spec).is_dir() else spec, str(device))  # checks its own scores
    if ":" in spec:
        return checked(import_function(spec), spec, user_code=True)
    raise JudgeError(f"judge {spec!r}: not 'task', a 'module:function', or an existing reward-model folder")


def probe(judge: Judge, key: str, prompts: Sequence[str], responses: Sequence[str]) -> None:
    """Call `judge` once on a sample before a run starts, so a broken judge costs nothing; errors name `key`."""
    try:
        judge(list(prompts), list(responses))
    except JudgeError as err:
        raise JudgeError(
            f"{key}: {err} (checked on {len(responses)} sample responses before the run started)"
        ) from None
