"""Writing files and folders atomically: a reader finds the old version or the new one, never half of one.

The content goes to a temporary file (or folder) beside the destination, in the same folder so the
rename stays on one file system; `os.replace` then puts it in place in one step. A writer that fails
(an exception, a full disk) leaves the destination as it was and removes its temporary file. With
`fsync=True` the data reach the disk before the rename (and, for a folder, the rename itself after
it), so a crash of the machine cannot leave an empty or partial file under the final name either.

    atomic_write_text(path, text)          a text file (UTF-8)
    atomic_write_bytes(path, data)         a binary file
    with atomic_open(path) as f: ...       a writer that needs a file object (`f.write` line by line)
    with atomic_path(path) as tmp: ...     a writer that takes a file name (it writes `tmp`)
    with atomic_folder(final) as tmp: ...  a folder filled in `tmp`, renamed to `final` when complete

The temporary file is named PATH.tmp unless `tmp` names another (a folder: .tmp-NAME beside it), so
two processes that may write the same file at once each pass their own `tmp`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import IO, Iterator

TMP_SUFFIX = ".tmp"  # PATH.tmp: a file being written
TMP_PREFIX = ".tmp-"  # .tmp-NAME: a folder being filled


def temporary_name(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: PATH.tmp."""
    return path.with_name(path.name + TMP_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False, tmp: str | Path | None = None) -> Iterator[Path]:
    """The temporary file's path, for a writer that takes a file name; what it wrote there replaces `path`
    when the block ends without an exception. An exception leaves `path` untouched and removes the file."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else temporary_name(path)
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", *, fsync: bool = False, tmp: str | Path | None = None, encoding: str = "utf-8"
) -> Iterator[IO]:
    """A file object ("w": text in `encoding`, "wb": bytes) whose content replaces `path` when the block
    ends without an exception; an exception leaves `path` untouched and removes the temporary file."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path, tmp=tmp) as name:
        with open(name, mode, encoding=None if mode == "wb" else encoding) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def atomic_write_text(
    path: str | Path, text: str, *, fsync: bool = False, tmp: str | Path | None = None, encoding: str = "utf-8"
) -> None:
    """`path` holds `text` (old content until the new one is complete)."""
    with atomic_open(path, "w", fsync=fsync, tmp=tmp, encoding=encoding) as f:
        f.write(text)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False, tmp: str | Path | None = None) -> None:
    """`path` holds `data` (old content until the new one is complete)."""
    with atomic_open(path, "wb", fsync=fsync, tmp=tmp) as f:
        f.write(data)


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_folder(final: str | Path, *, fsync: bool = False, tmp: str | Path | None = None) -> Iterator[Path]:
    """An empty temporary folder (default .tmp-NAME beside `final`; one left by a crash is emptied first) to
    fill in the block; when it ends without an exception, a folder at `final` is removed and the temporary one
    renamed there. With `fsync`, every entry of the folder is synced before the rename and the parent after it.
    An exception leaves `final` untouched and removes the temporary folder."""
    final = Path(final)
    tmp = Path(tmp) if tmp is not None else final.parent / f"{TMP_PREFIX}{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if fsync:
            for entry in sorted(tmp.rglob("*")):
                fsync_path(entry)
        if final.exists():
            shutil.rmtree(final)  # an older version (os.replace cannot rename over a folder that is not empty)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if fsync:
        fsync_path(final.parent)
