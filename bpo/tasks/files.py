"""Tasks read from local files: a small YAML file naming JSONL files, so a user's task needs no code.

    # mytask.yaml
    train: train.jsonl            # {"prompt": ..., "reference": ...} per line (reference optional here);
                                  # or a Parquet file, or a datasets folder (bpo.data.datafiles)
    eval: eval.jsonl              # {"prompt": ..., "reference": ...}: held-out prompts and human references
    dev: dev.jsonl                # optional, same layout: prompts for choosing settings (bpo reproduce's
                                  # learning-rate selection), disjoint from train, eval and demonstrations
    demonstrations: sft.jsonl     # optional SFT targets, same layout; default: train rows with a reference
    judge: mypkg.scoring:score    # optional: the task's judge (module:function or a reward-model folder)
    chat_template: true           # wrap prompts in the policy tokenizer's chat template
    format: plain                 # plain | tldr | hh: how rows become prompts (see bpo.tasks.presets)
    layout: reference             # reference | chosen: where a row's reference is (below)

A `prompt` may be a conversation, a list of {"role", "content"} messages (system prompt and earlier
turns kept, rendered with the chat template: bpo.data.chat), with format plain; a `reference` may then be
one assistant message.

With `layout: chosen` (format plain) the rows are preference rows, like Anthropic HH's, and the reference is
the `chosen` response: `chosen` is a whole conversation (messages: the prompt's turns, then the final
assistant reply), HH's raw text "\n\nHuman: ...\n\nAssistant: ..." (the prompt is the dialogue up to and
including the final "\n\nAssistant:", or its turns as messages when the task uses the chat template), or a
response (a text or one assistant message) with the prompt in `prompt`. Other fields (`rejected`) are not
read. Relative paths are resolved against the YAML file's folder. A prompt file may also
be a Hugging Face data set id with its split (`train: owner/name[@revision]:train`, bpo.common.hub),
resolved when the task is built, not when the file is checked, so checking a task file downloads nothing;
a local file of that name wins. A held-out (eval)
prompt may not also be a train or demonstration prompt (compared ignoring case and runs of whitespace),
and a dev prompt may be none of these: such a file is refused. So is a key given twice, a value of the
wrong type, or a file that is not UTF-8.
"""

from __future__ import annotations

from pathlib import Path

from bpo.common.configlib import parse_yaml, read_text_file
from bpo.common.hub import is_dataset_id
from bpo.common.jsonl import DataFileError, check_row
from bpo.data.chat import Prompt, as_prompt, as_response, prompt_text, split_response
from bpo.data.datafiles import read_rows
from bpo.data.task import Example, Task
from bpo.judging.judges import load_judge
from bpo.tasks.presets import FORMAT_FIELDS, PROMPT_FORMATS, hh_dialogue, is_hh_dialogue, reference_of

BUILTIN_JUDGE = "builtin:"  # `judge: builtin:reviews`: the judge of a built-in task (bpo.tasks.registry)


def builtin_judge(spec: str):
    from bpo.tasks.registry import BUILTIN_TASKS

    name = spec[len(BUILTIN_JUDGE) :]
    if name not in BUILTIN_TASKS:
        raise DataFileError(f"judge {spec!r}: no built-in task {name!r} (built-in: {', '.join(BUILTIN_TASKS)})")
    return BUILTIN_TASKS[name].build().judge


TASK_KEYS = {"train", "eval", "dev", "demonstrations", "judge", "chat_template", "name", "format", "layout"}
LAYOUTS = ("reference", "chosen")  # a row's reference: its `reference` field, or its `chosen` response
KEY_TYPES = {
    "train": str,
    "eval": str,
    "dev": str,
    "demonstrations": str,
    "judge": str,
    "chat_template": bool,
    "name": str,
    "format": str,
    "layout": str,
}


def _chosen_example(row: dict, path: Path | str, number: int, chat_template: bool) -> Example:
    """The example of a preference row (layout chosen): the reference is its chosen response, the prompt what
    comes before it in `chosen` or, for a lone response, the row's `prompt`."""
    where, chosen = f"{path}:{number}", row["chosen"]
    if isinstance(chosen, list) and any(m["role"] != "assistant" for m in chosen):
        prompt, reference = split_response(chosen, f"{where}: chosen")
    elif isinstance(chosen, str) and is_hh_dialogue(chosen):
        messages, text, reference = hh_dialogue(chosen, f"{where}: chosen")
        prompt = messages if chat_template else text
    else:
        check_row(row, Path(path), number, ["prompt"])
        prompt, reference = row["prompt"], as_response(chosen, f"{where}: chosen")
    return Example(as_prompt(prompt, f"{where}: prompt"), reference)


def _examples(
    path: Path | str, need_reference: bool, fmt: str = "plain", layout: str = "reference", chat_template=False
) -> list[Example]:
    if layout == "chosen":  # every row has a reference: check_row refuses an empty `chosen`
        rows = read_rows(path, required=["chosen"])
        return [_chosen_example(row, path, number, chat_template) for number, row in rows]
    fields = list(FORMAT_FIELDS[fmt])
    examples = []
    for number, row in read_rows(path, required=fields, optional=["reference", "summary", "query", "prompt"]):
        if fmt == "hh" and not ("query" in row or "prompt" in row):
            raise DataFileError(f"{path}:{number}: query: missing field (format hh needs 'query' or 'prompt')")
        if fmt != "plain":
            listed = next((k for k in (*fields, "query", "prompt") if isinstance(row.get(k), list)), None)
            if listed:
                raise DataFileError(
                    f"{path}:{number}: {listed}: expected a string (a message list is a conversation: use format plain)"
                )
            prompt = PROMPT_FORMATS[fmt](row)
        else:
            prompt = as_prompt(row["prompt"], f"{path}:{number}: prompt")
        reference = reference_of(row)
        reference = as_response(reference, f"{path}:{number}: reference") if reference else ""
        if need_reference and not reference.strip():
            raise DataFileError(
                f"{path}:{number}: reference: missing or empty (held-out prompts need a human reference)"
            )
        examples.append(Example(prompt, reference))
    return examples


def data_path(here: Path, value: str) -> Path | str:
    """A task file's prompt file: `value` under the task file's folder, or a Hub data set id with its split
    (owner/name[@revision]:split) as given, which bpo.data.datafiles.read_rows resolves through the Hub cache."""
    local = here / value
    return value if not local.exists() and is_dataset_id(value) else local


def _key(prompt: Prompt) -> str:
    return " ".join(prompt_text(prompt).split()).casefold()


def check_held_out(
    path: Path, eval_examples: list[Example], key: str, examples: list[Example], held_out: str = "eval"
) -> None:
    """Refuse `held_out` prompts (eval or dev) that are also `key` prompts: the policy would be scored, or a
    setting chosen, on what it trained on."""
    seen = {_key(e.prompt) for e in examples}
    leaked = [prompt_text(e.prompt) for e in eval_examples if _key(e.prompt) in seen]
    if leaked:
        raise DataFileError(
            f"{path}: {len(leaked)} {held_out} prompt(s) are also {key} prompts, e.g. {leaked[0][:80]!r}; "
            "held-out prompts must not be trained on, so remove them from one of the two files"
        )


def load_task_file(path: str | Path) -> Task:
    path = Path(path)
    return task_from_spec(path, read_task_spec(path))


def read_task_spec(path: Path) -> dict:
    """A task file's mapping, checked (keys, types, format): read once, so a caller that needs its judge too
    (bpo.loop.inputs) reads the file it was built from, not a later edit."""
    if not path.exists():
        raise DataFileError(f"{path}: not a built-in task name and no such task file")
    spec = parse_yaml(read_text_file(path, "task file"), str(path))[0] or {}
    if not isinstance(spec, dict):
        raise DataFileError(f"{path}: a task file is a mapping with keys {', '.join(sorted(TASK_KEYS))}")
    unknown = set(spec) - TASK_KEYS
    if unknown:
        raise DataFileError(
            f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(TASK_KEYS))}"
        )
    for key in ("train", "eval"):
        if spec.get(key) is None:
            raise DataFileError(f"{path}: missing key '{key}' (a JSONL file of prompts)")
    for key, value in spec.items():
        if value is not None and not isinstance(value, KEY_TYPES[key]):
            raise DataFileError(
                f"{path}: {key}: expected a {KEY_TYPES[key].__name__}, got {type(value).__name__} {value!r:.40}"
            )
    fmt = spec.get("format") or "plain"
    if fmt not in PROMPT_FORMATS:
        raise DataFileError(f"{path}: format: {fmt!r} is not one of {', '.join(PROMPT_FORMATS)}")
    layout = spec.get("layout") or "reference"
    if layout not in LAYOUTS:
        raise DataFileError(f"{path}: layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "chosen" and fmt != "plain":
        raise DataFileError(
            f"{path}: layout: chosen takes the prompts from the rows as they are; it goes with format plain, not {fmt}"
        )
    return spec


def task_from_spec(path: Path, spec: dict) -> Task:
    """The task a checked spec (read_task_spec) describes, its prompt files read once each."""
    how = spec.get("format") or "plain", spec.get("layout") or "reference", bool(spec.get("chat_template"))
    here = path.parent
    train = _examples(data_path(here, spec["train"]), False, *how)
    demos = (
        _examples(data_path(here, spec["demonstrations"]), True, *how)
        if spec.get("demonstrations")
        else [e for e in train if e.reference]
    )
    eval_examples = _examples(data_path(here, spec["eval"]), True, *how)
    for key, examples in (("train", train), ("demonstrations", demos)):
        check_held_out(path, eval_examples, key, examples)
    dev = _examples(data_path(here, spec["dev"]), True, *how) if spec.get("dev") else []
    for key, examples in (("train", train), ("demonstrations", demos), ("eval", eval_examples)):
        check_held_out(path, dev, key, examples, "dev")
    judge = None
    if spec.get("judge"):
        judge_spec = str(spec["judge"])
        judge = (
            builtin_judge(judge_spec)
            if judge_spec.startswith(BUILTIN_JUDGE)
            else load_judge(str(here / judge_spec) if (here / judge_spec).is_dir() else judge_spec)
        )
    return Task(
        name=spec.get("name") or path.stem,
        train=train,
        eval=eval_examples,
        demonstrations=demos,
        judge=judge,
        chat_template=bool(spec.get("chat_template", False)),
        dev=dev,
    )
