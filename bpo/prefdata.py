"""Preference data files in the layout TRL and most datasets use: one JSON object per line with
`prompt`, `chosen`, `rejected` (and optionally `id`), either plain strings or conversational message
lists ([{"role": "user", "content": ...}, ...]).

Reading checks the whole file before returning anything (file, line and field named in every error):
broken JSON, missing/empty/non-string fields, messages with an empty content or an unknown role,
chosen == rejected, ids that are not a string or an integer, duplicate ids, an empty file, a file that
is not UTF-8. A BOM and CRLF line ends are accepted; so are U+2028, U+0085 and escaped NULs in strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bpo.configlib import option
from bpo.jsonl import DataFileError, read_jsonl_lines, write_jsonl


@dataclass(frozen=True)
class DataConfig:
    pairs: str | None = option(None, help="a preference JSONL file (TRL layout: prompt/chosen/rejected) used as the labelled pairs of phase 0 instead of sampling; for offline baselines")


@dataclass(frozen=True)
class PreferenceRecord:
    id: str
    prompt: str  # the user turn (the last user message of a conversational prompt)
    chosen: str
    rejected: str
    line: int = field(default=0, compare=False)  # where it was read (0: not read from a file)


def _text(value, path: Path, line: int, key: str, role: str) -> str:
    """A plain string, or the content of the last `role` message of a conversation."""
    if isinstance(value, str):
        return value
    messages = [m for m in value if m.get("role") == role]
    if not messages:
        raise DataFileError(f"{path}:{line}: {key}: no message with role '{role}'")
    return messages[-1]["content"]


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
    for line, row in read_jsonl_lines(path, required=["prompt", "chosen", "rejected"]):
        rid = _id(row, path, line)
        if rid in seen:
            raise DataFileError(f"{path}:{line}: id: duplicate id {rid!r} (first on line {seen[rid]})")
        seen[rid] = line
        prompt = _text(row["prompt"], path, line, "prompt", "user")
        chosen = _text(row["chosen"], path, line, "chosen", "assistant")
        rejected = _text(row["rejected"], path, line, "rejected", "assistant")
        if not chosen.strip() or not rejected.strip():
            raise DataFileError(f"{path}:{line}: {'chosen' if not chosen.strip() else 'rejected'}: empty response")
        if chosen == rejected:
            raise DataFileError(f"{path}:{line}: chosen: identical to rejected (a pair needs two different responses)")
        records.append(PreferenceRecord(rid, prompt, chosen, rejected, line))
    return records


def write_preferences(path: str | Path, records: Iterable[PreferenceRecord], conversational: bool = False) -> None:
    def row(r: PreferenceRecord) -> dict:
        if conversational:
            return {"id": r.id, "prompt": [{"role": "user", "content": r.prompt}],
                    "chosen": [{"role": "assistant", "content": r.chosen}],
                    "rejected": [{"role": "assistant", "content": r.rejected}]}
        return {"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}

    write_jsonl(path, (row(r) for r in records))
