"""Labels from other tools (annotator.kind=external): files they import, and their exports read back.

Written for each sampling round of a phase, in RUN_DIR/external/:
    phase-000-round-0.jsonl   one pair per line: {"pair_id", "prompt", "response_a", "response_b"}
                              (Argilla: load it with `datasets` and log the rows as records)
    phase-000-round-0.json    the same rows as one JSON list (Label Studio's importer)
    label-studio.xml          a Label Studio labelling interface whose choice `preference` is A, B, tie or both_bad
A is the response sampled first, B the second: both come from the same policy, so the order says
nothing about which is better.

Read back from RUN_DIR/external/labels/*.json and *.jsonl (a JSON list or one object per line),
in any of these layouts:
    flat (Label Studio's JSON-MIN export, or written by hand):  {"pair_id", "preference", "annotator"?}
    Label Studio JSON export:  {"data": {"pair_id"}, "annotations": [{"result": [{"from_name": "preference",
                               "value": {"choices": ["A"]}}], "completed_by": 1}]}
    Argilla record:            {"fields" | "metadata": {"pair_id"}, "responses": {"preference": [{"value": "A",
    "user_id"}]}}
                               or flattened: {"pair_id", "preference.responses": ["A"], "preference.responses.users":
                               [...]}
Values: A, B, tie, both_bad (case and spaces ignored). A row without any label (a task nobody did,
a cancelled annotation) is skipped. A label for a pair this run does not have, with another value, or
contradicting another label of the same rater is refused, naming file, line and field; nothing of an
import is stored unless all of it is valid.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bpo.annotate.store import LabelConflict, LabelStore
from bpo.common.files import atomic_write_text
from bpo.common.jsonl import DataFileError, read_text, split_lines, write_jsonl
from bpo.data.chat import prompt_text

EXTERNAL_FOLDER = "external"  # RUN_DIR/external/ (bpo.run.rundir.RunDir.external)
VALUES = {"a": "first", "b": "second", "tie": "tie", "both_bad": "both_bad"}
FIELD = "preference"
LABEL_STUDIO_CONFIG = """<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Response A"/>
  <Text name="response_a" value="$response_a"/>
  <Header value="Response B"/>
  <Text name="response_b" value="$response_b"/>
  <Choices name="preference" toName="prompt" choice="single" required="true">
    <Choice value="A"/>
    <Choice value="B"/>
    <Choice value="tie"/>
    <Choice value="both_bad"/>
  </Choices>
</View>
"""


def export_folder(run_root: Path) -> Path:
    return Path(run_root) / EXTERNAL_FOLDER


def labels_folder(run_root: Path) -> Path:
    return export_folder(run_root) / "labels"


def write_exports(store: LabelStore, run_root: Path, phase: int) -> None:
    """The phase's files for the other tool, one pair of files per sampling round (written once, atomically)."""
    folder = export_folder(run_root)
    labels_folder(run_root).mkdir(parents=True, exist_ok=True)
    config = folder / "label-studio.xml"
    if not config.exists():
        config.write_text(LABEL_STUDIO_CONFIG)
    candidates = store.candidates(phase)
    for round_ in sorted({c.round for c in candidates}):
        stem = folder / f"phase-{phase:03d}-round-{round_}"
        if stem.with_suffix(".jsonl").exists():
            continue
        rows = [
            {"pair_id": c.id, "prompt": prompt_text(c.prompt), "response_a": c.first.text, "response_b": c.second.text}
            for c in candidates
            if c.round == round_
        ]
        atomic_write_text(stem.with_suffix(".json"), json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        write_jsonl(stem.with_suffix(".jsonl"), rows)  # last: its presence means both are complete


def import_labels(store: LabelStore, run_root: Path) -> int:
    """Read every export in RUN_DIR/external/labels/ into the store (all or nothing); new labels stored."""
    folder = labels_folder(run_root)
    files = sorted(p for p in folder.glob("*") if p.suffix in (".json", ".jsonl")) if folder.is_dir() else []
    known = {c.id for c in store.candidates()}
    rows, seen = [], {}
    for path in files:
        for line, record in records_of(path):
            for field, pair_id, rater, value in labels_in(record, path, line):
                if pair_id not in known:
                    raise DataFileError(f"{path}:{line}: pair_id: {pair_id!r} is not a pair of this run")
                choice = VALUES.get(str(value).strip().lower().replace(" ", "_"))
                if choice is None:
                    raise DataFileError(f"{path}:{line}: {field}: {value!r} is not one of A, B, tie, both_bad")
                where = f"{path.name}:{line}"
                earlier = seen.setdefault((pair_id, rater), (choice, where))
                if earlier[0] != choice:
                    raise DataFileError(
                        f"{path}:{line}: {field}: rater {rater} labels {pair_id} {choice} here and {earlier[0]} in "
                        f"{earlier[1]}"
                    )
                nonce = hashlib.sha256(f"{pair_id}\0{rater}\0{choice}".encode()).hexdigest()
                rows.append((pair_id, rater, choice, nonce, where))
    try:
        return store.add_labels(rows)
    except LabelConflict as err:
        raise DataFileError(f"{folder}: {err}; the exports contradict a label already stored") from None


def records_of(path: Path) -> list[tuple[int, dict]]:
    """(line, object) of a JSONL file or of a JSON list (each element's line is where it starts)."""
    text = read_text(path, "labels file")
    if path.suffix == ".jsonl":
        out = []
        for number, line in enumerate(split_lines(text), start=1):
            if line.strip():
                out.append((number, _object(line, path, number)))
        return out
    decoder, out = json.JSONDecoder(), []
    i = _skip(text, 0)
    if i >= len(text) or text[i] != "[":
        return [(1, _object(text, path, 1))]  # a single JSON object
    i = _skip(text, i + 1)
    while i < len(text) and text[i] != "]":
        line = text.count("\n", 0, i) + 1
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{path}:{text.count(chr(10), 0, err.pos) + 1}: broken JSON ({err.msg})") from None
        if not isinstance(value, dict):
            raise DataFileError(f"{path}:{line}: expected a JSON object, got {type(value).__name__}")
        out.append((line, value))
        i = _skip(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _object(text: str, path: Path, line: int) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFileError(f"{path}:{line}: broken JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise DataFileError(f"{path}:{line}: expected a JSON object, got {type(value).__name__}")
    return value


def labels_in(record: dict, path: Path, line: int) -> list[tuple[str, str, str, object]]:
    """(field, pair id, rater, value) for each label a record holds, in any of the layouts above."""
    pair_id = _pair_id(record, path, line)
    out = []
    if isinstance(record.get("annotations"), list):  # Label Studio JSON export
        for k, annotation in enumerate(record["annotations"]):
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            rater = f"labelstudio:{annotation.get('completed_by', 'unknown')}"
            for r in annotation.get("result") or []:
                if isinstance(r, dict) and r.get("from_name") == FIELD:
                    choices = (r.get("value") or {}).get("choices") or [None]
                    out.append((f"annotations[{k}].result.value.choices", pair_id, rater, choices[0]))
        return out
    responses = record.get("responses")
    if isinstance(responses, dict) and isinstance(responses.get(FIELD), list):  # Argilla record
        for k, r in enumerate(responses[FIELD]):
            if isinstance(r, dict) and r.get("value") is not None:
                out.append(
                    (f"responses.{FIELD}[{k}].value", pair_id, f"argilla:{r.get('user_id', 'unknown')}", r["value"])
                )
        return out
    if isinstance(record.get(f"{FIELD}.responses"), list):  # Argilla, flattened
        users = record.get(f"{FIELD}.responses.users") or []
        for k, value in enumerate(record[f"{FIELD}.responses"]):
            if value is not None:
                out.append(
                    (f"{FIELD}.responses[{k}]", pair_id, f"argilla:{users[k] if k < len(users) else 'unknown'}", value)
                )
        return out
    if record.get(FIELD) not in (None, ""):  # flat
        rater = record.get("annotator", record.get("rater", "external"))
        out.append((FIELD, pair_id, f"external:{rater}", record[FIELD]))
    return out


def _pair_id(record: dict, path: Path, line: int) -> str:
    for holder in (record, record.get("data"), record.get("fields"), record.get("metadata")):
        if isinstance(holder, dict) and "pair_id" in holder:
            if not isinstance(holder["pair_id"], str):
                raise DataFileError(
                    f"{path}:{line}: pair_id: expected a string, got {json.dumps(holder['pair_id'])[:40]}"
                )
            return holder["pair_id"]
    raise DataFileError(f"{path}:{line}: pair_id: missing (keep the pair_id column of the exported pairs)")
