"""Reading and writing JSON Lines, with errors that name the file, the line and the field.

Reading is all-or-nothing: the whole file is checked before any row is returned, so a bad line
never leaves half a file imported. A UTF-8 byte-order mark and CRLF line ends are accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence


class DataFileError(ValueError):
    """`file:line: field: problem`, one line a user can act on."""


def read_jsonl(path: str | Path, required: Sequence[str] = (), optional: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a JSONL file; `required` fields must be present, non-empty strings (or lists, for messages)."""
    return [row for _, row in read_jsonl_lines(path, required, optional)]


def read_jsonl_lines(path: str | Path, required: Sequence[str] = (), optional: Sequence[str] = ()) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs, so later checks can name the line too."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")  # utf-8-sig drops a leading BOM
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):  # splitlines handles \r\n
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{path}:{number}: broken JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataFileError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        for key in required:
            _check_text(row, key, path, number, must_exist=True)
        for key in optional:
            if key in row and row[key] is not None:
                _check_text(row, key, path, number, must_exist=False)
        rows.append((number, row))
    if not rows:
        raise DataFileError(f"{path}: empty file (no JSON lines)")
    return rows


def _check_text(row: dict, key: str, path: Path, number: int, must_exist: bool) -> None:
    if key not in row:
        raise DataFileError(f"{path}:{number}: {key}: missing field (have: {', '.join(row) or 'none'})")
    value = row[key]
    if isinstance(value, list):  # conversational form: a list of {"role", "content"} messages
        if not value or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value):
            raise DataFileError(f"{path}:{number}: {key}: a message list must hold objects with a string 'content'")
        return
    if not isinstance(value, str):
        raise DataFileError(f"{path}:{number}: {key}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataFileError(f"{path}:{number}: {key}: empty string")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write durably: a temporary file, fsync, then an atomic rename over the destination."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
