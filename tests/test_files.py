"""bpo.common.files: an atomic write puts the whole content in place, and a writer that fails in the middle
leaves the old file (or folder) as it was and no temporary file behind."""

from __future__ import annotations

import json

import pytest

from bpo.common.files import atomic_folder, atomic_open, atomic_path, atomic_write_bytes, atomic_write_text
from bpo.common.jsonl import write_jsonl


class Boom(RuntimeError):
    pass


def test_text_and_bytes_are_written(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo\nwörld\n")
    assert (tmp_path / "a.txt").read_bytes() == "héllo\nwörld\n".encode("utf-8")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff\n")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff\n"
    atomic_write_text(tmp_path / "a.txt", "replaced", fsync=True)
    assert (tmp_path / "a.txt").read_text() == "replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]  # no temporary file left


def test_a_file_object_writer(tmp_path):
    with atomic_open(tmp_path / "rows.jsonl", fsync=True) as f:
        for i in range(3):
            f.write(f"{i}\n")
        assert not (tmp_path / "rows.jsonl").exists()  # nothing under the final name before the block ends
    assert (tmp_path / "rows.jsonl").read_text() == "0\n1\n2\n"


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_writer_that_raises_leaves_the_old_file_and_no_temporary(tmp_path, mode):
    path = tmp_path / "eval.json"
    path.write_text("old")
    with pytest.raises(Boom):
        with atomic_open(path, mode) as f:
            f.write("half a" if mode == "w" else b"half a")
            f.flush()
            raise Boom
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]


def test_a_failed_write_of_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_open(tmp_path / "new.txt") as f:
            f.write("x")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_text_that_cannot_be_encoded_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "caf\u00e9", encoding="ascii")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_writer_that_takes_a_file_name(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text("old\n")
    with atomic_path(path, fsync=True) as tmp:
        assert tmp == tmp_path / "prefs.jsonl.tmp"
        tmp.write_text("new\n")
        assert path.read_text() == "old\n"
    assert path.read_text() == "new\n"
    with pytest.raises(Boom):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise Boom
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["prefs.jsonl"]


def test_an_own_temporary_name(tmp_path):
    """Processes that may write the same file at once each pass their own temporary file."""
    atomic_write_text(tmp_path / "k.json", "{}", tmp=tmp_path / "k.json.123.tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def test_write_jsonl_that_fails_in_the_middle_keeps_the_old_rows(tmp_path):
    path = tmp_path / "phase-000.jsonl"
    write_jsonl(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise Boom

    with pytest.raises(Boom):
        write_jsonl(path, rows())
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["phase-000.jsonl"]


def test_a_folder_is_renamed_into_place_when_complete(tmp_path):
    final = tmp_path / "step-000004"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_folder(final, fsync=True) as tmp:
        assert tmp == tmp_path / ".tmp-step-000004" and tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "state.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x").write_text("x")
    assert sorted(p.relative_to(final).as_posix() for p in final.rglob("*")) == ["state.json", "sub", "sub/x"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-000004"]


def test_a_folder_writer_that_raises_leaves_the_old_folder_and_no_temporary(tmp_path):
    final = tmp_path / "sft-base"
    final.mkdir()
    (final / "config.json").write_text("old")
    (tmp_path / ".tmp-sft-base").mkdir()  # left by a crash: emptied and reused
    (tmp_path / ".tmp-sft-base" / "stale").write_text("stale")
    with pytest.raises(Boom):
        with atomic_folder(final) as tmp:
            assert not (tmp / "stale").exists()
            (tmp / "config.json").write_text("new")
            raise Boom
    assert (final / "config.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["sft-base"]


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "a", "a"):
            pass


def test_eval_json_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A sweep takes a run whose eval.json exists for finished: a write that fails keeps the old one."""
    import bpo.common.files
    from bpo.run.rundir import RunDir

    run = RunDir(tmp_path)
    run.write_eval({"win_rate": 0.25, "ci_low": float("nan")})
    assert json.loads(run.eval.read_text()) == {"win_rate": 0.25, "ci_low": None}

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bpo.common.files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        run.write_eval({"win_rate": 0.75})
    assert json.loads(run.eval.read_text())["win_rate"] == 0.25
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]
