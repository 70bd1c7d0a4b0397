"""Reading and writing JSON Lines, with errors that name the file, the line and the field.

Lines are split on "\\n" only (a "\\r" before it is dropped), never with `str.splitlines`: a JSON
string may hold U+2028, U+2029, U+0085 or a form feed as raw characters, and splitting there would
cut a valid row in two (a pairs file written with such a string could never be read back).

Reading a data file is all-or-nothing: the whole file is checked before any row is returned, so a
bad line never leaves half a file imported. A UTF-8 byte-order mark and CRLF line ends are accepted;
a file that is not UTF-8 (or is gzip-compressed, or a folder) is refused with the file (and line) named.
Run logs (`read_log`) are read leniently: a line cut short by a kill is dropped with a warning.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from bpo.common.configlib import read_text_file
from bpo.common.files import atomic_open

ROLES = ("system", "user", "assistant", "tool")  # roles of a conversational message


class DataFileError(ValueError):
    """`file:line: field: problem`, one line a user can act on."""


def split_lines(text: str) -> list[str]:
    """The lines of a JSONL text: split on "\\n" only, a trailing "\\r" removed, no empty last line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's contents (BOM dropped); OS and decoding errors become DataFileError naming it."""
    return read_text_file(Path(path), what, DataFileError)


def read_jsonl(path: str | Path, required: Sequence[str] = (), optional: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a JSONL file; `required` fields must be present, non-empty strings (or lists, for messages)."""
    return [row for _, row in read_jsonl_lines(path, required, optional)]


def read_jsonl_lines(
    path: str | Path, required: Sequence[str] = (), optional: Sequence[str] = ()
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs, so later checks can name the line too."""
    path = Path(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(split_lines(read_text(path, "JSONL file")), start=1):
        if not line.strip():
            continue
        row = _parse(line, path, number)
        check_row(row, path, number, required, optional)
        rows.append((number, row))
    if not rows:
        raise DataFileError(f"{path}: empty file (no JSON lines)")
    return rows


def check_row(
    row: dict[str, Any], path: Path, number: int, required: Sequence[str] = (), optional: Sequence[str] = ()
) -> None:
    """`required` fields present and non-empty strings or message lists; `optional` ones too where given
    (not null). Errors name `path`:`number` (a line, or a table's row: bpo.data.datafiles) and the field."""
    for key in required:
        _check_text(row, key, path, number, must_exist=True)
    for key in optional:
        if key in row and row[key] is not None:
            _check_text(row, key, path, number, must_exist=False)


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a key given twice in one object is refused (json.loads keeps the last one
    silently, so a row with two `chosen` would train on the second)."""
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _RepeatedKey(key)
        row[key] = value
    return row


def _parse(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line, object_pairs_hook=_unique_keys)
    except _RepeatedKey as err:
        raise DataFileError(f"{path}:{number}: {err.key}: key given twice in one JSON object") from None
    except json.JSONDecodeError as err:
        what = err.msg.removesuffix(" at")  # "Invalid control character at"
        raise DataFileError(f"{path}:{number}: broken JSON ({what} at column {err.colno})") from None
    if not isinstance(row, dict):
        raise DataFileError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
    return row


def _check_text(row: dict, key: str, path: Path, number: int, must_exist: bool) -> None:
    if key not in row:
        raise DataFileError(f"{path}:{number}: {key}: missing field (have: {', '.join(row) or 'none'})")
    value = row[key]
    if isinstance(value, list):  # conversational form: a list of {"role", "content"} messages
        if not value:
            raise DataFileError(f"{path}:{number}: {key}: empty message list")
        for i, m in enumerate(value):
            where = f"{path}:{number}: {key}[{i}]"
            if not isinstance(m, dict):
                raise DataFileError(
                    f"{where}: a message must be an object with 'role' and 'content', got {type(m).__name__}"
                )
            if m.get("role") not in ROLES:
                raise DataFileError(f"{where}: role: {m.get('role')!r} is not one of {', '.join(ROLES)}")
            if not isinstance(m.get("content"), str):
                raise DataFileError(
                    f"{where}: content: expected a string, got "
                    f"{type(m.get('content')).__name__ if 'content' in m else 'nothing'}"
                )
            if not m["content"].strip():
                raise DataFileError(f"{where}: content: empty string")
        return
    if not isinstance(value, str):
        raise DataFileError(f"{path}:{number}: {key}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataFileError(f"{path}:{number}: {key}: empty string")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run log (metrics.jsonl, phases.jsonl) that the run appends to. A line a kill cut short
    (the last one, without its newline) or any other unreadable line is dropped with a warning naming it."""
    path = Path(path)
    if not path.exists():
        return []
    text = read_text(path, "run log")
    lines = split_lines(text)
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            cut = number == len(lines) and not text.endswith("\n")
            why = "cut short (the run was killed while writing it)" if cut else "not a JSON object"
            warnings.warn(f"{path}:{number}: dropping a line {why}")
            continue
        rows.append(row)
    return rows


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, for strict JSON (a missing number)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(row: Any, indent: int | None = None) -> str:
    """Strict JSON (no NaN or Infinity: they become null), ASCII (so any reader's encoding can read it)."""
    return json.dumps(json_safe(row), allow_nan=False, indent=indent)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write durably: a temporary file, fsync, then an atomic rename over the destination (bpo.common.files)."""
    with atomic_open(path, fsync=True) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row as one write of one full line (a kill leaves at most a partial last line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps(row) + "\n")
