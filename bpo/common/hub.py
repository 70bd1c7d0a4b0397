"""Hugging Face Hub ids wherever a model or a data set is named, resolved through huggingface_hub's cache.

    policy.path=HuggingFaceTB/SmolLM2-135M-Instruct            a model repository (its main revision)
    reference.path=org/model@v1.0                               ... at a revision (branch, tag or commit)
    annotator.judge=OpenAssistant/reward-model-deberta-v3-large-v2
    data.pairs=trl-lib/ultrafeedback_binarized:train            a data set repository and its split
    sft.data=org/data@abc123:test

A local path that exists always wins, so local folders keep working as before. With HF_HUB_OFFLINE=1 (or
huggingface_hub's other offline settings) nothing is fetched: an id that is not in the cache is one line
saying so, at once. Otherwise the repository is downloaded into the cache on first use (snapshot_download).
A data set's split is read from the repository's files by the Hub's own naming conventions: a file or
folder named after the split (train.jsonl, data/train-00000-of-00001.parquet, train/...). A split stored in
several files of one kind in one folder (data/train-00000-of-00003.parquet, ...) is all of them, in name order.
Where none of those names it (CSV files, compressed JSON Lines, splits declared in the card's YAML), the
`datasets` library, when installed, reads the snapshot by its own conventions (bpo.data.datafiles).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# owner/name, then an optional @revision; a data set adds :split. Owner and name as the Hub allows them.
_REPO = r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w.\-/]+?))?"
MODEL_ID = re.compile(rf"^{_REPO}$")
DATASET_ID = re.compile(rf"^{_REPO}:(?P<split>[\w.-]+)$")
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


class HubError(ValueError):
    """A Hub id that cannot be resolved (not cached while offline, no such split, ...): one line."""


class NoSplitFiles(HubError):
    """No file of the split by the conventions split_files knows; the snapshot is there (`root`), so the
    `datasets` library's own conventions may still find it (bpo.data.datafiles)."""

    def __init__(self, message: str, root: Path, split: str):
        super().__init__(message)
        self.root, self.split = root, split


def offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it once, at import): tests and users may set it late."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> str | None:
    """HF_HUB_CACHE (or HF_HOME/hub) read now, like offline(); None: huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None


def is_model_id(spec: str | Path) -> bool:
    """A Hub model id that is not also an existing local path."""
    return not Path(spec).exists() and MODEL_ID.match(str(spec)) is not None


def is_dataset_id(spec: str | Path) -> bool:
    return not Path(spec).exists() and DATASET_ID.match(str(spec)) is not None


def _snapshot(repo: str, revision: str | None, repo_type: str, spec: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo, revision=revision, repo_type=repo_type, local_files_only=offline(), cache_dir=cache_dir()
        )
        return Path(folder)
    except LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE is set" if offline() else "and the Hub cannot be reached"
        kind = " --repo-type dataset" if repo_type == "dataset" else ""
        raise HubError(
            f"{spec}: not in the Hugging Face cache ({cache_dir() or 'its default folder'}), "
            f"{where}: fetch it first with `hf download {repo}{kind}`"
        ) from None
    except HfHubHTTPError as err:
        raise HubError(f"{spec}: the Hub refused it ({str(err).splitlines()[0][:160]})") from None


def model_folder(spec: str | Path) -> Path:
    """The local folder of a model: `spec` itself when it exists (or is not a Hub id), else the cached
    snapshot of the Hub repository it names."""
    if not is_model_id(spec):
        return Path(spec)
    match = MODEL_ID.match(str(spec))
    return _snapshot(match["repo"], match["revision"], "model", str(spec))


def dataset_files(spec: str | Path) -> list[Path]:
    """The local files (or folder) holding a data set's split: `spec` itself when it exists (or is not a Hub
    data set id), else the split's files in the cached snapshot of the data set repository."""
    if not is_dataset_id(spec):
        return [Path(spec)]
    match = DATASET_ID.match(str(spec))
    root = _snapshot(match["repo"], match["revision"], "dataset", str(spec))
    return split_files(root, match["split"], str(spec))


def split_files(root: Path, split: str, spec: str) -> list[Path]:
    """The data files of `split` under a data set repository's snapshot, in name order: `split.jsonl|.json|
    .parquet` at the top or in data/, the Hub's shards `data/split-00000-of-00003[-HASH].parquet`, or the files
    of a folder named after the split. None, or files of two kinds or in two folders, are refused, naming what
    is there."""
    candidates = [
        p
        for folder in (root, root / "data", root / split)
        if folder.is_dir()
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.suffix in DATA_SUFFIXES
        and (
            p.stem == split
            or re.fullmatch(rf"{re.escape(split)}-\d+-of-\d+(-[0-9a-f]+)?", p.stem)
            or folder.name == split
        )
    ]
    if len({p.parent for p in candidates}) == 1 and len({p.suffix for p in candidates}) == 1:
        return sorted(candidates, key=lambda p: p.name)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
    if not candidates:
        raise NoSplitFiles(
            f"{spec}: the data set has no split {split!r} (its data files: {', '.join(files) or 'none'})", root, split
        )
    found = ", ".join(str(p.relative_to(root)) for p in candidates)
    raise HubError(
        f"{spec}: split {split!r} is in files of more than one kind or folder ({found}); bpo reads a split's files "
        "only when they are of one kind in one folder: give a local file"
    )
