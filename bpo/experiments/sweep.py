"""Running many `bpo train` runs: one folder per run, finished runs reused, unfinished ones resumed.

A run is named by its settings (the overrides it is trained with), so changing a setting makes a new
folder instead of silently reusing a run trained otherwise. Each finished run is evaluated twice:
`eval.json` with sampled responses (the default) and `eval-greedy.json` with greedy ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from bpo.common.jsonl import read_log
from bpo.run.rundir import RunDir


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep: what it is (labels for the report) and how it is trained."""

    labels: tuple[
        tuple[str, object], ...
    ]  # e.g. (("task", "reviews"), ("method", "bpo"), ("seed", 0), ("variant", ""))
    overrides: tuple[str, ...]  # key=value settings given to `bpo train`

    @property
    def label(self) -> dict:
        return dict(self.labels)

    def folder(self, root: Path) -> Path:
        digest = hashlib.sha256("\n".join(self.overrides).encode()).hexdigest()[:8]
        readable = "-".join(
            re.sub(r"[^\w.]+", "_", str(v)).strip("_") for k, v in self.labels if k != "task" and v != ""
        )
        return Path(root) / Path(str(self.label.get("task", "task"))).stem / f"{readable}-{digest}"


@dataclass
class RunResult:
    spec: RunSpec
    folder: Path
    sampled: dict  # eval.json
    greedy: dict | None = None  # eval-greedy.json
    metrics: list[dict] = field(default_factory=list)  # metrics.jsonl: one row per training step
    evals: list[dict] = field(
        default_factory=list
    )  # evals.jsonl: evaluations during training (eval.every), then the final one
    reused: bool = False  # finished before this call (trained by an earlier one)


def is_finished(folder: Path, greedy: bool) -> bool:
    run = RunDir(folder)
    return run.eval.is_file() and (not greedy or run.eval_greedy.is_file())


def run_one(spec: RunSpec, root: Path, greedy: bool, threads: int | None = None) -> Path:
    """Train (or resume, or reuse) one run and evaluate it greedily too; returns its folder."""
    import torch

    from bpo import api
    from bpo.common.files import atomic_write_text

    if threads:
        torch.set_num_threads(threads)
    folder = spec.folder(root)
    run = RunDir(folder)
    if not run.eval.is_file():
        if run.config.is_file():
            api.Run(folder).resume(progress=False)
        else:
            api.start_run(api.make_config(None, [*spec.overrides, f"out={folder}"]), folder, progress=False)
    if greedy and not run.eval_greedy.is_file():
        result = api.evaluate(
            folder, ["eval.greedy=true", "eval.kl=false", "eval.before=true"], write=False, progress=False
        )
        atomic_write_text(run.eval_greedy, json.dumps(result, indent=2))  # complete or absent, never half-written
    return folder


def _worker(payload: tuple[RunSpec, Path, bool, int]) -> str:
    from bpo.common.console import bpo_warnings

    spec, root, greedy, threads = payload
    with bpo_warnings():  # a spawned process: the CLI's formatting is not inherited
        return str(run_one(spec, root, greedy, threads))


def execute(
    specs: Sequence[RunSpec], root: Path, jobs: int = 1, greedy: bool = True, progress: bool = True
) -> list[RunResult]:
    """Run every spec not finished yet (in `jobs` processes), then read every run's results."""
    root = Path(root)
    unique = list(dict.fromkeys(specs))  # a run that belongs to two tables is trained once
    todo = [s for s in unique if not is_finished(s.folder(root), greedy)]
    bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc="runs", disable=not progress)
    if jobs <= 1:
        for spec in todo:
            run_one(spec, root, greedy)
            bar.update()
    else:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for _ in pool.imap_unordered(_worker, [(s, root, greedy, threads) for s in todo]):
                bar.update()
    bar.close()
    return [replace(read_result(spec, root), reused=spec not in todo) for spec in unique]


def read_result(spec: RunSpec, root: Path) -> RunResult:
    folder = spec.folder(root)
    run = RunDir(folder)
    logs = [read_log(path) for path in (run.metrics, run.evals)]  # lines split on "\n" only; a cut line dropped
    return RunResult(
        spec,
        folder,
        json.loads(run.eval.read_text()),
        json.loads(run.eval_greedy.read_text()) if run.eval_greedy.is_file() else None,
        *logs,
    )


def default_jobs() -> int:
    """Parallel runs: tiny models do not use more than ~2 threads well, so one run per 2 cores."""
    return max(1, (os.cpu_count() or 1) // 2)
