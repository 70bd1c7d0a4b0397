"""Objects given to bpo.train in place of path settings, saved once where the run can find them again.

A model and tokenizer, preference data and training prompts are written, content-addressed, under
$BPO_CACHE/inputs/ (the same object twice: the same folder, written once), and the configuration names
what was written: policy.path, data.pairs, and a task file whose training prompts are the given ones
(its held-out prompts, demonstrations and judge are the configured task's, so its held-out prompts stay
disjoint from the training prompts: a task file that mixes them is refused, bpo.tasks.files). A judge
callable is registered (bpo.judging.judges.register_judge) and both judge settings name it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from bpo.common.cachefolder import cache_dir, cached_folder
from bpo.common.configlib import ConfigError
from bpo.common.files import atomic_write_text
from bpo.data.task import Example, Task
from bpo.loop.build import initial_model_folder
from bpo.loop.config import RunConfig


def inputs_dir() -> Path:
    return cache_dir() / "inputs"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonl(rows: Sequence[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def saved_text(kind: str, text: str, suffix: str) -> Path:
    """`text` in inputs/<kind>-<sha256 prefix><suffix>, written atomically unless already there."""
    path = inputs_dir() / f"{kind}-{_digest(text)}{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return path


def saved_model(model, tokenizer, progress: bool) -> Path:
    """A transformers model and its tokenizer as a model folder, named by the digest of their weights,
    config and vocabulary."""
    from bpo.evaluation.evalcache import base_weights_digest, model_digest

    if tokenizer is None:
        raise ConfigError("bpo.train(model=...): give the model's tokenizer too (tokenizer=...)")
    if not hasattr(model, "save_pretrained") or not hasattr(tokenizer, "save_pretrained"):
        raise ConfigError(
            "bpo.train(model=..., tokenizer=...): expected a transformers model and tokenizer (with save_pretrained)"
        )
    digest = _digest(base_weights_digest(model) + model_digest(model, tokenizer))

    def build(folder: Path) -> None:
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "quantization_config"):  # a GGUF-loaded model's: not saveable as is
            del config.quantization_config
        model.save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(str(folder))

    return cached_folder(inputs_dir() / f"model-{digest}", build)


def preference_rows(pairs: Any) -> list[dict]:
    """A list of dicts (prompt/chosen/rejected, plain or conversational) or a `datasets.Dataset`."""
    if hasattr(pairs, "to_list"):  # datasets.Dataset
        pairs = pairs.to_list()
    if isinstance(pairs, (str, Path)) or not all(isinstance(row, dict) for row in pairs):
        raise ConfigError(
            "bpo.train(pairs=...): expected a list of dicts (prompt, chosen, rejected) or a datasets.Dataset; "
            "a file is given as data.pairs"
        )
    return list(pairs)


def _example_row(example: Example) -> dict:
    return {"prompt": example.prompt, "reference": example.reference}


def prompts_task(cfg: RunConfig, prompts: Sequence[str], judge_spec: str | None) -> Path:
    """A task file: the given training prompts, the configured task's held-out prompts, demonstrations and judge."""
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, (str, list)) for p in prompts):
        raise ConfigError("bpo.train(prompts=...): expected a non-empty list of prompts (texts or conversations)")
    task, task_judge = _configured_task(cfg)
    judge_spec = task_judge if judge_spec is None else judge_spec
    demonstrations = task.demonstrations or [e for e in task.train if e.reference]
    files = {
        "train": saved_text("prompts", _jsonl([{"prompt": p} for p in prompts]), ".jsonl"),
        "eval": saved_text("eval", _jsonl([_example_row(e) for e in task.eval]), ".jsonl"),
    }
    if demonstrations:
        files["demonstrations"] = saved_text(
            "demonstrations", _jsonl([_example_row(e) for e in demonstrations]), ".jsonl"
        )
    spec = {"name": task.name, **{k: str(v) for k, v in files.items()}, "chat_template": task.chat_template}
    if judge_spec:
        spec["judge"] = judge_spec
    return saved_text("task", json.dumps(spec, indent=1) + "\n", ".yaml")  # JSON is YAML


def _configured_task(cfg: RunConfig) -> tuple[Task, str | None]:
    """The configured task and its judge's spec. A task file is read once for both; sft.data is not read here
    (the run reads it once, at its start, bpo.loop.build.build_task)."""
    from bpo.tasks.files import read_task_spec, task_from_spec
    from bpo.tasks.registry import BUILTIN_TASKS

    if cfg.task in BUILTIN_TASKS:
        return BUILTIN_TASKS[cfg.task].build(), f"builtin:{cfg.task}"
    path = Path(cfg.task)
    spec = read_task_spec(path)
    return task_from_spec(path, spec), _task_file_judge(path, spec)


def _task_file_judge(path: Path, spec: dict) -> str | None:
    """The `judge` of a task file, a folder made absolute (the generated task file lives elsewhere)."""
    judge = spec.get("judge")
    if judge and (path.parent / str(judge)).is_dir():
        return str((path.parent / str(judge)).resolve())
    return judge


def given_inputs(
    cfg: RunConfig,
    *,
    model=None,
    tokenizer=None,
    judge: Callable | None = None,
    pairs=None,
    prompts: Sequence[str] | None = None,
    progress: bool = True,
) -> RunConfig:
    """`cfg` with each given object saved (or registered) and its setting pointing there."""
    from bpo.judging.judges import register_judge

    judge_spec = None
    if judge is not None:
        if not callable(judge):
            raise ConfigError("bpo.train(judge=...): expected a callable (prompts, responses) -> scores")
        judge_spec = register_judge(judge)
        cfg = dataclasses.replace(
            cfg,
            annotator=dataclasses.replace(cfg.annotator, judge=judge_spec),
            eval=dataclasses.replace(cfg.eval, judge=judge_spec),
        )
    if model is not None or tokenizer is not None:
        if model is None:
            raise ConfigError("bpo.train(tokenizer=...): give the model too (model=...)")
        cfg = dataclasses.replace(
            cfg, policy=dataclasses.replace(cfg.policy, path=str(saved_model(model, tokenizer, progress)))
        )
    if pairs is not None:
        path = saved_text("pairs", _jsonl(preference_rows(pairs)), ".jsonl")
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, pairs=str(path)))
    if prompts is not None:
        if cfg.policy.path is None:  # the configured task's own initial policy, named before the task is replaced
            cfg = dataclasses.replace(
                cfg, policy=dataclasses.replace(cfg.policy, path=str(initial_model_folder(cfg, progress)))
            )
        cfg = dataclasses.replace(cfg, task=str(prompts_task(cfg, prompts, judge_spec)))
    return _revalidated(cfg)


def _revalidated(cfg: RunConfig) -> RunConfig:
    """The replaced settings checked as a loaded config is (e.g. data.pairs with a behavior reference)."""
    from bpo.common.configlib import config_from_dict, to_dict

    return config_from_dict(RunConfig, to_dict(cfg), "<bpo.train>")
