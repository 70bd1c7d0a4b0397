"""Build a cache folder once, atomically: a folder in place is always a complete one.

`cached_folder(final, build)` returns `final` at once if it holds the COMPLETE_MARKER file. Otherwise
`build(tmp)` fills an empty temporary folder beside it; the marker is written last and the folder is
renamed to `final`, so an interrupted or failed build never leaves a `final` that looks finished (and
leaves no temporary folder behind). If another process renamed its own complete folder into place
first, that one is kept and ours is dropped.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Mapping

from bpo.common.files import TMP_PREFIX

COMPLETE_MARKER = "COMPLETE"


def cache_dir() -> Path:
    """bpo's cache (built-in models, inputs, initial responses, data sets read by the datasets library):
    $BPO_CACHE, else ~/.cache/bpo."""
    return Path(os.environ.get("BPO_CACHE", Path.home() / ".cache" / "bpo"))


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).exists()


def cached_folder(final: str | Path, build: Callable[[Path], object], stamp: Mapping | None = None) -> Path:
    """`final`, built by `build(folder)` unless already complete; the marker holds `stamp` as JSON."""
    final = Path(final)
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # left by an earlier process with our pid
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(dict(stamp or {}), sort_keys=True) + "\n")
        if final.exists() and not is_complete(final):
            shutil.rmtree(final)  # left by something else; a folder renamed in here always has the marker
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same folder first; keep theirs
            if not is_complete(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a rename; otherwise failed or not needed
    return final
