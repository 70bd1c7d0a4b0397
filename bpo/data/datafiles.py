"""Data files as people have them: JSON Lines, Parquet, or a Hugging Face `datasets` folder.

    rows.jsonl            one JSON object per line (bpo.common.jsonl)
    rows.parquet          a Parquet table, one row per example
    folder/               written by `datasets.Dataset.save_to_disk` (state.json + Arrow files); a
                          DatasetDict's folder is refused with its splits named (give one split's folder)

A Hub data set split in several files (bpo.common.hub) is read as one table. Every layout gives (number,
row) pairs, the number being the line of a JSONL file or the row (from 1) of a table, and every row goes
through the same checks (bpo.common.jsonl.check_row), so an error names the file, the line or row, and the
field in the same words whatever the layout. Parquet and datasets folders are read with pyarrow (`pip
install 'bpo[data]'`); the `datasets` package is not needed, except for a Hub data set's split that no file
is named after (hub_dataset: then the library reads the cached snapshot by its own conventions).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Sequence

from bpo.common.jsonl import DataFileError, check_row, read_jsonl_lines, read_text

Rows = list[tuple[int, dict[str, Any]]]


class HubDataError(DataFileError):
    """A Hub data set id that cannot be read (not cached while offline, no such split, ...)."""


@contextlib.contextmanager
def naming_setting(setting: str):
    """A Hub data set id's error raised inside names the setting that gave the id (`data.pairs: owner/name:train:
    not in the Hugging Face cache ...`), as a model folder's names its setting."""
    try:
        yield
    except HubDataError as err:
        raise HubDataError(f"{setting}: {err}") from None


def hub_dataset(path: str | Path) -> list[Path] | list[dict]:
    """[a local path as given], or the local files of a Hub data set id's split (bpo.common.hub); where no file
    names the split, its rows as the `datasets` library reads the snapshot (when it is installed)."""
    from bpo.common.hub import HubError, NoSplitFiles, dataset_files

    try:
        return dataset_files(path)
    except NoSplitFiles as err:
        return library_split(err, str(path))
    except HubError as err:
        raise HubDataError(str(err)) from None


def library_split(err, spec: str) -> list[dict]:
    """The rows of split `err.split` of the snapshot `err.root`, by the `datasets` library's conventions (its
    packaged readers: CSV, JSON Lines compressed or not, Parquet, Arrow; splits declared in README.md's YAML).
    Read from the local snapshot only (nothing is fetched); its Arrow cache goes to bpo's cache folder."""
    try:
        import datasets
    except ImportError:
        raise HubDataError(f"{err} (the `datasets` package, if installed, would try its own conventions)") from None
    from bpo.common.cachefolder import cache_dir

    datasets.disable_progress_bars()
    try:
        rows = datasets.load_dataset(str(err.root), split=err.split, cache_dir=str(cache_dir() / "datasets"))
    except ValueError as library:  # e.g. 'Unknown split "x". Should be one of [...]'
        raise HubDataError(f"{err}; the datasets library: {str(library).splitlines()[0][:200]}") from None
    except Exception as library:  # noqa: BLE001 - a reader's own error: one line naming the data set
        raise HubDataError(
            f"{spec}: the datasets library cannot read it ({str(library).splitlines()[0][:200]})"
        ) from None
    return rows.to_list()


def is_table(path: Path) -> bool:
    return path.suffix == ".parquet" or (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def read_rows(path: str | Path, required: Sequence[str] = (), optional: Sequence[str] = ()) -> Rows:
    """(line or row number, row) of a JSONL file, a Parquet file or a datasets folder, all checked; `path` may
    be a Hub data set id with its split (org/name[@revision]:split, bpo.common.hub). A split stored in several
    files is read as one table, its files in name order: its rows are numbered from 1 across the files, and an
    error names the split (`owner/name:train:ROW: field: ...`)."""
    files = hub_dataset(path)
    if files and isinstance(files[0], dict):  # the datasets library's rows of a split no file names
        rows = list(enumerate(files, start=1))
    elif len(files) == 1:
        return _file_rows(files[0], required, optional)
    else:
        rows = list(enumerate((row for file in files for _, row in _file_rows(file)), start=1))
    for number, row in rows:
        check_row(row, Path(path), number, required, optional)
    return rows


def _file_rows(path: Path, required: Sequence[str] = (), optional: Sequence[str] = ()) -> Rows:
    if not is_table(path):
        return read_jsonl_lines(path, required, optional)
    rows = list(enumerate(_table(path).to_pylist(), start=1))
    for number, row in rows:
        check_row(row, path, number, required, optional)
    if not rows:
        raise DataFileError(f"{path}: empty table (no rows)")
    return rows


def _pyarrow(path: Path):
    try:
        import pyarrow
    except ImportError:
        raise DataFileError(
            f"{path}: reading Parquet files and datasets folders needs pyarrow: pip install 'bpo[data]'"
        ) from None
    return pyarrow


def _table(path: Path):
    pa = _pyarrow(path)
    if path.is_dir():
        return _dataset_folder(path, pa)
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(f"{path}: not a readable Parquet file ({str(err)[:120]})") from None


def _dataset_folder(path: Path, pa):
    """The Arrow files a `save_to_disk` folder's state.json lists, read as one table."""
    if (path / "dataset_dict.json").is_file():
        splits = _json(path / "dataset_dict.json").get("splits", [])
        raise DataFileError(
            f"{path}: a DatasetDict with splits {', '.join(map(str, splits)) or 'none'}; give one split's folder, "
            f"e.g. {path / (splits[0] if splits else 'train')}"
        )
    state = _json(path / "state.json")
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) for f in files
    ):
        raise DataFileError(
            f'{path / "state.json"}: _data_files: expected a list of {{"filename": ...}} (written by datasets\' '
            "save_to_disk)"
        )
    tables = []
    for entry in files:
        arrow = path / entry["filename"]
        try:
            with pa.memory_map(str(arrow)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        except FileNotFoundError:
            raise DataFileError(f"{path / 'state.json'}: lists {entry['filename']}, which is missing") from None
        except (pa.ArrowException, OSError) as err:
            raise DataFileError(f"{arrow}: not a readable Arrow file ({str(err)[:120]})") from None
    if not tables:
        raise DataFileError(f"{path}: empty dataset (state.json lists no data files)")
    try:
        return pa.concat_tables(tables)
    except pa.ArrowException as err:
        raise DataFileError(f"{path}: its Arrow files do not share one schema ({str(err)[:120]})") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(read_text(path, "JSON file"))
    except ValueError as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(f"{path}: broken JSON ({err})") from None
