"""Preference data in the layouts TRL and most datasets use: `prompt`, `chosen`, `rejected` (and
optionally `id`) per row, in a JSONL file, a Parquet file or a `datasets` folder (bpo.data.datafiles).

    plain            {"prompt": "...", "chosen": "...", "rejected": "..."}
    conversational   {"prompt": [messages], "chosen": [one assistant message], "rejected": [...]};
                     the prompt conversation is kept whole (system prompt, earlier turns) and rendered
                     with the chat template (bpo.data.chat)
    implicit prompt  {"chosen": [messages ..., assistant], "rejected": [messages ..., assistant]}: the
                     messages before the final assistant message are the prompt, the same in both
                     (TRL's implicit prompt); a text `prompt` next to such whole conversations (the
                     IOPO data sets' copy of the last user turn) is not read

Reading checks the whole file before returning anything (file, line or row, and field named in every
error): broken JSON, missing/empty/non-string fields, messages with an empty content or an unknown
role, a prompt conversation without a user turn or ending with an assistant turn, a conversational
response that is not one assistant message, whole conversations whose prompts differ or that do not end
with one assistant message, chosen == rejected, ids that are not a string or an
integer, duplicate ids, an empty file, a file that is not UTF-8. A BOM and CRLF line ends are
accepted; so are U+2028, U+0085 and escaped NULs in strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bpo.common.configlib import option
from bpo.common.jsonl import DataFileError, check_row, write_jsonl
from bpo.data.chat import Prompt, as_prompt, as_response, prompt_messages, split_pair
from bpo.data.datafiles import read_rows


@dataclass(frozen=True)
class DataConfig:
    pairs: str | None = option(
        None,
        help="a preference file (JSONL, Parquet, a datasets folder, or a Hub data set id with its split, e.g. "
        "trl-lib/ultrafeedback_binarized:train; TRL layout: prompt/chosen/rejected, plain or "
        "conversational) used as the labelled pairs of phase 0 instead of sampling; for offline baselines",
    )


@dataclass(frozen=True)
class PreferenceRecord:
    id: str
    prompt: Prompt  # a text, or the whole conversation before the response (bpo.data.chat)
    chosen: str
    rejected: str
    line: int = field(default=0, compare=False)  # where it was read (0: not read from a file)


def _id(row: dict, path: Path, line: int) -> str:
    """The row's id as text: a non-empty string or an integer (default: line-N)."""
    if "id" not in row:
        return f"line-{line}"
    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise DataFileError(f"{path}:{line}: id: expected a string or an integer, got {json.dumps(rid)[:40]}")
    if isinstance(rid, str) and not rid.strip():
        raise DataFileError(f"{path}:{line}: id: empty string")
    return str(rid)


def read_preferences(path: str | Path) -> list[PreferenceRecord]:
    path = Path(path)
    records, seen = [], {}
    for line, row in read_rows(path):
        check_row(row, path, line, ["chosen", "rejected"])
        lists = isinstance(row["chosen"], list) and isinstance(row["rejected"], list)
        turns = lists and any(m["role"] != "assistant" for m in row["chosen"] + row["rejected"])
        # chosen and rejected hold the whole conversations: no prompt, or one given as text (the IOPO data sets)
        whole = lists and ("prompt" not in row or (turns and not isinstance(row["prompt"], list)))
        if not whole:
            check_row(row, path, line, ["prompt"])
        rid = _id(row, path, line)
        if rid in seen:
            raise DataFileError(f"{path}:{line}: id: duplicate id {rid!r} (first on line {seen[rid]})")
        seen[rid] = line
        if whole:
            prompt, chosen, rejected = split_pair(row["chosen"], row["rejected"], f"{path}:{line}")
        else:
            prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
        prompt = as_prompt(prompt, f"{path}:{line}: prompt")
        chosen, rejected = (
            as_response(chosen, f"{path}:{line}: chosen"),
            as_response(rejected, f"{path}:{line}: rejected"),
        )
        if not chosen.strip() or not rejected.strip():
            raise DataFileError(f"{path}:{line}: {'chosen' if not chosen.strip() else 'rejected'}: empty response")
        if chosen == rejected:
            raise DataFileError(f"{path}:{line}: chosen: identical to rejected (a pair needs two different responses)")
        records.append(PreferenceRecord(rid, prompt, chosen, rejected, line))
    return records


LAYOUTS = ("plain", "conversational", "implicit")


def write_preferences(path: str | Path, records: Iterable[PreferenceRecord], layout: str = "plain") -> None:
    """A JSONL file in one of the LAYOUTS, which reads back as `records`: `plain` writes texts (and a
    conversation prompt as its messages), the other two write every prompt and response as messages."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")

    def row(r: PreferenceRecord) -> dict:
        if layout == "plain":
            return {"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
        prompt = prompt_messages(r.prompt)
        chosen, rejected = [{"role": "assistant", "content": r.chosen}], [{"role": "assistant", "content": r.rejected}]
        if layout == "implicit":
            return {"id": r.id, "chosen": prompt + chosen, "rejected": prompt + rejected}
        return {"id": r.id, "prompt": prompt, "chosen": chosen, "rejected": rejected}

    write_jsonl(path, (row(r) for r in records))
