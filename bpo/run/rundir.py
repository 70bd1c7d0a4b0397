"""The run folder: everything a run produces, written as it is produced.

config.yaml             the resolved configuration
settings.json           the settings a resume must not change (the configuration's `resume_settings()`) and their hash
sft-base/               the base after the run's SFT stage (sft.steps > 0): a transformers folder
pairs/phase-000.jsonl   the labelled pairs of each phase (one bpo.data.records.Pair per line)
phases.jsonl            per phase: pairs kept, identical pairs and ties dropped, prompts used, seconds
metrics.jsonl           per training step: loss, reward margin, reward accuracy, learning rate, seconds, ...
evals.jsonl             per evaluation: the step, win rates, KL estimate (bpo.run.runlog: stream `evals`)
tensorboard/            event files of the same records, with log.to=[jsonl, tensorboard]
adapters/               the LoRA ensemble in peft format: merged/ and a0/ .. a{n-1}/
checkpoints/step-NNNNNN/ adapters, optimiser, RNG and loop state (see bpo.run.checkpoint)
eval.json               win rate vs the human references, 95% interval, n, mean judge score, ...
labels.sqlite           annotator.kind=human/external: pairs awaiting labels, raters, labels (bpo.annotate.store)
external/               annotator.kind=external: files for Argilla / Label Studio, their exports in labels/
llm-judge.jsonl         annotator.kind=llm: every request to the endpoint and its answer (bpo.judging.llm)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

from bpo.annotate.external import EXTERNAL_FOLDER
from bpo.annotate.store import STORE_NAME
from bpo.common.configlib import config_from_dict, dump_yaml
from bpo.common.files import TMP_PREFIX, atomic_folder, atomic_write_text
from bpo.common.jsonl import (
    DataFileError,
    dumps,
    read_jsonl,
    read_log,
    read_text,
    write_jsonl,
)
from bpo.data.records import Pair
from bpo.judging.llm import STORE_NAME as LLM_STORE_NAME
from bpo.run.checkpoint import SETTINGS_FILE, Checkpoint, save_checkpoint
from bpo.run.runlog import RunLog

COMPARE_FILE = "compare.json"  # `bpo compare`'s result, in its --out folder (default RUN_A/compare-RUN_B)


class RunDirError(ValueError):
    pass


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def without_newer_defaults(now: dict[str, Any], recorded: dict[str, Any], config_class: type) -> dict[str, Any]:
    """`now` less the settings a run's record lacks that hold their defaults: a run started by an older bpo
    has no record of a setting added since, and a new setting's default keeps the old behaviour (e.g.
    lora.training=independent), so such a run stays resumable; a non-default value is still compared."""
    if not recorded:
        return now
    defaults = default_settings(config_class)
    return {k: v for k, v in now.items() if k in recorded or k not in defaults or v != defaults[k]}


def default_settings(config_class: type) -> dict[str, Any]:
    """The resume settings of the configuration class's defaults."""
    return config_from_dict(config_class, {}).resume_settings()


def changed_settings(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'key (old -> new)' for every setting that differs."""
    return [
        f"{k} ({recorded.get(k)!r} -> {now.get(k)!r})"
        for k in sorted(set(recorded) | set(now))
        if recorded.get(k) != now.get(k)
    ]


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    settings = property(lambda self: self.root / SETTINGS_FILE)
    pairs_dir = property(lambda self: self.root / "pairs")
    metrics = property(lambda self: self.log_file("metrics"))
    phases = property(lambda self: self.log_file("phases"))
    evals = property(lambda self: self.log_file("evals"))
    phase_times = property(lambda self: self.log_file("phase_times"))
    tensorboard = property(lambda self: self.root / "tensorboard")
    adapters = property(lambda self: self.root / "adapters")
    eval = property(lambda self: self.root / "eval.json")
    eval_greedy = property(
        lambda self: self.root / "eval-greedy.json"
    )  # a sweep's greedy evaluation (bpo.experiments.sweep)
    checkpoints = property(lambda self: self.root / "checkpoints")
    sft_base = property(lambda self: self.root / "sft-base")
    labels = property(lambda self: self.root / STORE_NAME)  # annotator.kind=human/external (bpo.annotate.store)
    external = property(lambda self: self.root / EXTERNAL_FOLDER)  # annotator.kind=external (bpo.annotate.external)
    llm_judge = property(lambda self: self.root / LLM_STORE_NAME)  # annotator.kind=llm's answers (bpo.judging.llm)
    report = property(lambda self: self.root / "report.md")  # bpo.run.report
    report_plot = property(lambda self: self.root / "report.png")
    CREATED = (
        "config.yaml",
        SETTINGS_FILE,
        "metrics.jsonl",
        "phases.jsonl",
        "pairs",
        "sft-base",
        TMP_PREFIX + "sft-base",
        "checkpoints",
        "evals.jsonl",
        "phase_times.jsonl",
        "tensorboard",
        ".lock",
    )
    _lock = None  # the open RUN/.lock while this process trains the run
    created_here = False  # this process wrote the run's config.yaml (create): only then may it unmake the run

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def log_file(self, stream: str) -> Path:
        """Where the run log's stream `stream` (bpo.run.runlog: metrics, phases, evals, phase_times) is appended."""
        return self.root / f"{stream}.jsonl"

    def lock(self) -> None:
        """Hold RUN/.lock (flock) until unlock() or the end of the process: a second `bpo train` or
        `--resume` of the same folder is refused instead of writing the same files at the same time. The
        system drops the lock when the process ends, crashed or killed, so it is never left stale."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        handle = open(self.root / ".lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (
                errno.EWOULDBLOCK,
                errno.EAGAIN,
                errno.EACCES,
            ):  # a file system without locks (some NFS, FUSE)
                handle.close()
                warnings.warn(
                    f"{self.root}: cannot lock the run folder ({err.strerror}); make sure no other bpo process trains "
                    "it"
                )
                return
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise RunDirError(
                f"{self.root}: in use by another bpo process{f' (pid {holder})' if holder else ''}; "
                f"wait for it to end (or stop it), then resume with bpo train --resume {self.root}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def check_new(self, first: bool = True) -> None:
        """Refuse at once (before any model is built) a folder that already holds a run, a folder that holds
        anything else (the user's own files are never written over), a file where the folder should be, or a
        place where no folder can be made. `first=False`: the check after create() made pairs/ and .lock."""
        if self.root.exists() and not self.root.is_dir():
            raise RunDirError(f"out={self.root}: is a file, not a folder; choose a folder for the run")
        if self.config.exists() and (self.settings.exists() or not first):
            raise RunDirError(
                f"{self.root} already holds a run; choose another out= or resume it with --resume {self.root}"
            )
        if first and self.root.is_dir():
            names = sorted(p.name for p in self.root.iterdir())
            if names:  # the user's own files: a new run never writes over them
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                raise RunDirError(
                    f"out={self.root}: not empty and not a bpo run (holds {shown}); a new run goes only into a "
                    "new or empty folder: choose another out="
                )
        existing = self.root
        while not existing.exists():  # the nearest existing ancestor must be a writable folder
            existing = existing.parent
        if not existing.is_dir():
            raise RunDirError(f"out={self.root}: {existing} is a file, so the run folder cannot be made there")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirError(f"out={self.root}: cannot write in {existing} (permission denied)")

    def create(self, cfg) -> None:
        self.check_new()
        self.pairs_dir.mkdir(parents=True, exist_ok=True)
        self.lock()
        self.check_new(first=False)  # another process may have created the run between the first check and the lock
        self.created_here = True
        dump_yaml(cfg, self.config)
        settings = cfg.resume_settings()
        self.settings.write_text(dumps({"hash": settings_hash(settings), "settings": settings}, indent=1) + "\n")
        self.metrics.write_text("")
        self.phases.write_text("")

    def has_work(self) -> bool:
        """Whether the folder holds anything a rerun would lose: labelled pairs or a checkpoint."""
        return (
            any(self.pairs_dir.glob("phase-*.jsonl"))
            or (self.checkpoints.is_dir() and any(self.checkpoints.iterdir()))
            or self.labels.exists()  # pairs sampled for raters (bpo.annotate)
            or self.llm_judge.exists()  # an LLM endpoint's answers, paid for
        )

    def discard_unstarted(self, existed: bool) -> bool:
        """After a new run failed before any pairs or checkpoint were written, remove what it made (the
        whole folder if it did not exist before), so the same command works once the input is fixed."""
        if not self.root.is_dir() or self.has_work():
            return False
        if not existed:
            shutil.rmtree(self.root, ignore_errors=True)
            return True
        for name in self.CREATED:
            path = self.root / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return True

    def check_resumable(self) -> None:
        """Refuse at once (before any model is built) a folder that holds no run."""
        if not self.root.is_dir():
            what = "is a file, not a run folder" if self.root.exists() else "no such run folder"
            raise RunDirError(f"{self.root}: {what}; start a run with bpo train out={self.root}")
        if not self.config.is_file():
            raise RunDirError(
                f"{self.root}: holds no run (no config.yaml), nothing to resume; start one with bpo train "
                f"out={self.root}"
            )
        if not self.settings.is_file() and not self.has_work():
            raise RunDirError(
                f"{self.root}: not a bpo run (a config.yaml but no {SETTINGS_FILE}, pairs or checkpoints), nothing "
                f"to resume; start a run in a new or empty folder"
            )

    def check_settings(self, cfg, recorded: dict[str, Any] | None) -> None:
        """Refuse a resume whose config.yaml was edited in a setting that shapes pairs, adapters or
        optimiser (compared with settings.json and with the latest checkpoint's record, `recorded`)."""
        now = cfg.resume_settings()
        for source, saved in ((self.settings, self._recorded_settings()), ("the latest checkpoint", recorded)):
            comparable = without_newer_defaults(now, saved.get("settings", {}), type(cfg)) if saved else now
            if saved is None or saved.get("hash") == settings_hash(comparable):
                continue
            changed = changed_settings(saved.get("settings", {}), comparable)
            raise RunDirError(
                f"{self.config}: edited since the run started ({source} records other values) in settings a resume "
                f"cannot change: {', '.join(changed) or 'unknown keys'}; restore them, or start a new run"
            )

    def _recorded_settings(self) -> dict | None:
        if not self.settings.exists():
            return None  # a run folder written before settings were recorded
        try:
            saved = json.loads(read_text(self.settings, "settings file"))
        except (ValueError, DataFileError) as err:
            raise RunDirError(
                f"{self.settings}: unreadable ({err}); it records the settings this run started with"
            ) from None
        return saved if isinstance(saved, dict) else None

    def save_sft_base(self, model, tokenizer) -> None:
        """The fine-tuned base as a transformers folder (safetensors), renamed into place when complete
        (built in .tmp-sft-base; it replaces an incomplete copy, without config.json, left by a crash)."""
        with atomic_folder(self.sft_base) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)

    def forget_after(self, step: int) -> None:
        """Drop log lines a crashed run wrote past its last checkpoint (they will be written again), and
        a line cut short by a kill (with a warning)."""
        for stepped in (self.metrics, self.evals, self.phase_times):  # rows logged at a number of steps done
            _keep_rows(stepped, lambda row: isinstance(row.get("step"), int) and row["step"] < step)
        _keep_rows(
            self.phases, lambda row: isinstance(row.get("phase"), int) and self.pairs_file(row["phase"]).exists()
        )

    def pairs_file(self, phase: int) -> Path:
        return self.pairs_dir / f"phase-{phase:03d}.jsonl"

    def pair_phases(self) -> list[int]:
        """The phases whose pairs file is written, in order."""
        return sorted(int(p.stem.split("-")[1]) for p in self.pairs_dir.glob("phase-*.jsonl"))

    def compare_folder(self, other: str) -> Path:
        """Where `bpo compare` of this run against `other` (a run folder's name) writes COMPARE_FILE by default."""
        return self.root / f"compare-{other}"

    def write_pairs(self, phase: int, pairs: Sequence[Pair]) -> None:
        write_jsonl(self.pairs_file(phase), (p.to_json() for p in pairs))

    def read_pairs(self, phase: int) -> list[Pair]:
        # Sampled responses may be empty (EOS first), so only the prompt is required to be non-empty.
        path = self.pairs_file(phase)
        rows = read_jsonl(path, required=["prompt"])
        try:
            return [Pair.from_json(row) for row in rows]
        except TypeError as err:
            raise RunDirError(f"{path}: not a pairs file of this version of bpo ({err})") from None

    def open_log(self, cfg, start: int = 0):
        """The run's RunLog (bpo.run.runlog) with the sinks `cfg` (a LogConfig) names, continuing after `start`
        steps."""
        return RunLog.open(cfg, self, start)

    def save_checkpoint(self, state: Checkpoint) -> Path:
        return save_checkpoint(self.checkpoints, state)

    def save_adapters(self, policy) -> None:
        """A policy's merged adapter and members, in peft format under adapters/
        (bpo.model.policy.EnsemblePolicy.save)."""
        policy.save(self.adapters)

    def write_eval(self, result: dict) -> None:
        """Strict JSON: a number that is not finite (an interval of no values) is written as null. Atomic and
        durable (bpo.common.files): a sweep takes a run whose eval.json exists for finished."""
        atomic_write_text(self.eval, dumps(result, indent=2), fsync=True)


class FollowerRunDir(RunDir):
    """The run folder as the processes after rank 0 of a multi-process run see it (bpo.model.distributed): they
    read what rank 0 wrote (pairs and checkpoints, on resume) and write nothing; rank 0 checks and writes."""

    def check_new(self) -> None:
        pass  # rank 0 checks; it may have created the folder already

    def create(self, cfg) -> None:
        pass

    def lock(self) -> None:
        pass  # rank 0 holds the run's lock

    def save_sft_base(self, model, tokenizer) -> None:
        pass

    def forget_after(self, step: int) -> None:
        pass

    def write_pairs(self, phase: int, pairs: Sequence[Pair]) -> None:
        pass

    def write_eval(self, result: dict) -> None:
        pass

    def open_log(self, cfg, start: int = 0):
        return RunLog([])

    def save_checkpoint(self, state: Checkpoint) -> None:
        pass

    def save_adapters(self, policy) -> None:
        pass


def _keep_rows(path: Path, keep) -> None:
    if not path.exists():
        return
    write_jsonl(path, (row for row in read_log(path) if keep(row)))
