"""Checks a run makes before its folder exists, so that bad input costs nothing and leaves nothing.

`bpo.loop.online.open_session` calls these between building the pieces and creating the run folder:

    base_tokenizer      the base's folder, tokenizer and architecture (on the meta device: no weights
                        are read), checked: EOS token, chat template when the task asks for one,
                        tokenizer size against the embedding rows, LoRA target modules that exist
    fit_task            prompts (and SFT demonstrations) longer than the model's context, with room
                        for sampling.max_new_tokens, are skipped with a warning that counts them
    check_reference     a fixed reference's folder, as the base's (tokenizer size against the embedding rows)
    check_pairs_file    a preference file (data.pairs): enough pairs for the schedule, each fitting
                        the context, else an error naming the file and line
    probe_judges        the annotator's and the evaluation judge called once on a sample

Each error names the file, folder or key to fix, and is one of the CLI's user errors (exit code 2).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bpo.common.configlib import ConfigError
from bpo.common.jsonl import DataFileError
from bpo.data.chat import is_conversation, prompt_text
from bpo.data.prefdata import PreferenceRecord
from bpo.data.task import Example, Task
from bpo.data.tokens import encode_prompt, encode_response
from bpo.judging.judges import probe
from bpo.loop.build import initial_model_folder
from bpo.loop.config import RunConfig
from bpo.model.loading import (
    ModelFolderError,
    check_model_folder,
    context_length,
    load_errors,
    load_failure,
    load_tokenizer,
    naming,
    quiet_transformers,
)


@dataclass
class Base:
    folder: Path
    tokenizer: object
    context: int | None  # longest prompt + response the model's positions allow (None: the config does not say)


def base_folder(cfg: RunConfig, sft_base: Path, progress: bool) -> Path:
    """The folder `bpo.loop.build.load_base` will load: the run's saved SFT base, the configured or the built-in
    policy."""
    if cfg.sft.steps and (sft_base / "config.json").is_file():
        return sft_base
    return initial_model_folder(cfg, progress)


def base_tokenizer(cfg: RunConfig, task: Task, sft_base: Path, progress: bool) -> Base:
    """The base's tokenizer and context, with the model folder checked before any weight is read."""
    chosen = base_folder(cfg, sft_base, progress)
    with naming("policy.path" if cfg.policy.path and chosen != sft_base else None):
        return _checked_base(cfg, task, check_model_folder(chosen, cfg.policy.allow_pickle))


def _checked_base(cfg: RunConfig, task: Task, folder: Path) -> Base:
    tokenizer = load_tokenizer(folder, cfg.policy.trust_remote_code)
    if task.chat_template and not getattr(tokenizer, "chat_template", None):
        raise ModelFolderError(
            f"{folder}: the task {task.name!r} asks for the chat template (chat_template: true) but the tokenizer has "
            "none; "
            "use an instruction-tuned model folder or set chat_template: false in the task file"
        )
    if not getattr(tokenizer, "chat_template", None) and any(
        is_conversation(ex.prompt) for ex in task.train + task.eval + task.demonstrations
    ):
        raise ModelFolderError(
            f"{folder}: the task {task.name!r} has conversation prompts, which are rendered with the chat template, "
            "but the tokenizer has none; use an instruction-tuned model folder"
        )
    model = _meta_model(folder, cfg.policy.trust_remote_code)
    check_embedding_rows(folder, tokenizer, model)
    check_lora_targets(cfg, model, folder)
    return Base(folder, tokenizer, context_length(model))


def check_embedding_rows(folder: Path, tokenizer, model) -> None:
    """Every token id has a row of the embedding: an id past the table would crash (IndexError) or read garbage."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelFolderError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model's embedding only {rows} rows; "
            "token ids past the table would crash or read garbage, so tokenizer and weights do not belong together"
        )


def check_reference(cfg: RunConfig) -> None:
    """A fixed reference's folder, checked as the policy's is before any weight is read (build_reference loads
    it later and compares the vocabularies)."""
    if cfg.reference_kind() != "fixed":
        return
    with naming("reference.path"):
        folder = check_model_folder(cfg.reference.path, cfg.policy.allow_pickle)
        tokenizer = load_tokenizer(folder, cfg.policy.trust_remote_code)
        check_embedding_rows(folder, tokenizer, _meta_model(folder, cfg.policy.trust_remote_code))


def _meta_model(folder: Path, trust_remote_code: bool):
    """The architecture config.json describes, built on the meta device (no memory, no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with quiet_transformers(), torch.device("meta"):
            config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except load_errors() as err:
        raise ModelFolderError(f"{folder}: cannot build the model config.json describes: {load_failure(err)}") from None


def check_lora_targets(cfg: RunConfig, model, folder: Path) -> None:
    """Every name in lora.target_modules matches a linear layer (peft matches a name or a dotted suffix)."""
    linear = [
        name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"
    ]
    for target in cfg.lora.target_modules:
        if not any(name == target or name.endswith("." + target) for name in linear):
            available = sorted({name.rsplit(".", 1)[-1] for name in linear})
            raise ConfigError(
                f"lora.target_modules: {target!r} matches no linear layer of {folder}; "
                f"its linear layers are named {', '.join(available[:12])}"
            )


def _fits(length: int, room: int | None) -> bool:
    return room is None or length <= room


def fit_task(cfg: RunConfig, task: Task, base: Base) -> Task:
    """The task without prompts too long for the context (a warning counts them); none left is an error.
    Asking to evaluate on more prompts than the split holds is said once here, not at every evaluation."""
    fitted = _fit_to_context(cfg, task, base)
    held_out = len(fitted.split(cfg.eval.split))
    if cfg.eval.prompts > held_out:
        warnings.warn(
            f"eval.prompts={cfg.eval.prompts}, but task {task.name!r} has {held_out} {cfg.eval.split} prompts; "
            f"evaluating on those {held_out}"
        )
    return fitted


def _fit_to_context(cfg: RunConfig, task: Task, base: Base) -> Task:
    if cfg.eval.split == "dev" and not task.dev:
        raise ConfigError(f"eval.split=dev: task {task.name!r} has no dev split (a task file names one with 'dev:')")
    if base.context is None:
        return task
    new = cfg.sampling.max_new_tokens
    if new >= base.context:
        raise ConfigError(
            f"sampling.max_new_tokens={new} leaves no room for a prompt in the model's context of {base.context} "
            f"tokens ({base.folder})"
        )
    tok, chat = base.tokenizer, task.chat_template

    def prompt_fits(ex: Example) -> bool:
        return _fits(len(encode_prompt(tok, ex.prompt, chat)) + new, base.context)

    def demo_fits(ex: Example) -> bool:
        return _fits(len(encode_prompt(tok, ex.prompt, chat)) + len(encode_response(tok, ex.reference)), base.context)

    kept = {}
    for name, examples, fits in (
        ("train", task.train, prompt_fits),
        ("eval", task.eval, prompt_fits),
        ("dev", task.dev, prompt_fits),
        ("demonstrations", task.demonstrations, demo_fits),
    ):
        if (name == "demonstrations" and not cfg.sft.steps) or not examples:
            kept[name] = examples
            continue
        kept[name] = [ex for ex in examples if fits(ex)]
        skipped = len(examples) - len(kept[name])
        what = "prompt + demonstration" if name == "demonstrations" else f"prompt + sampling.max_new_tokens={new}"
        if skipped and not kept[name]:
            raise DataFileError(
                f"{cfg.task}: all {len(examples)} {name} examples are longer ({what}) than the model's context of "
                f"{base.context} tokens"
            )
        if skipped:
            warnings.warn(
                f"{cfg.task}: skipping {skipped} of {len(examples)} {name} examples longer ({what}) than the model's "
                f"context of {base.context} tokens"
            )
    return replace(task, train=kept["train"], eval=kept["eval"], dev=kept["dev"], demonstrations=kept["demonstrations"])


def check_pairs_file(
    cfg: RunConfig, path: str, records: list[PreferenceRecord], base: Base, chat_template: bool
) -> None:
    """Enough pairs for the schedule (N of phase 0), each within the model's context."""
    talk = next((r for r in records if is_conversation(r.prompt)), None)
    if talk is not None and not getattr(base.tokenizer, "chat_template", None):
        raise DataFileError(
            f"{path}:{talk.line}: prompt: a conversation is rendered with the chat template, but {base.folder}'s "
            "tokenizer has none"
        )
    wanted = cfg.resolved_schedule().pairs
    if len(records) < wanted:
        raise DataFileError(
            f"{path}: holds {len(records)} pairs, the schedule trains on {wanted} (schedule.pairs); lower it or add "
            "pairs"
        )
    if base.context is None:
        return
    tok = base.tokenizer
    for record in records[:wanted]:
        prompt = len(encode_prompt(tok, record.prompt, chat_template))
        longest = prompt + max(len(encode_response(tok, record.chosen)), len(encode_response(tok, record.rejected)))
        if longest > base.context:
            raise DataFileError(
                f"{path}:{record.line}: prompt + response is {longest} tokens, longer than the model's context of "
                f"{base.context} ({base.folder})"
            )


def probe_judges(task: Task, annotator, eval_judge) -> None:
    """Call the annotator's judge and the evaluation judge once, on held-out prompts and their references."""
    sample = task.eval[:2] or task.train[:2]
    prompts = [ex.prompt for ex in sample]
    responses = [ex.reference or prompt_text(ex.prompt) for ex in sample]
    if getattr(annotator, "judge", None) is not None:
        probe(annotator.judge, "annotator.judge", prompts, responses)
    if hasattr(annotator, "probe"):  # an LLM judge (bpo.judging.llm): one question on the sample
        annotator.probe(prompts, responses)
    if hasattr(eval_judge, "probe"):  # an LLM evaluation judge: one question on the sample
        eval_judge.probe(prompts, responses)
    else:
        probe(eval_judge, "eval.judge", prompts, responses)
