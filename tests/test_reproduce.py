"""`bpo reproduce` on a tiny sweep: the report and plots are written from the runs' own numbers, and a
second call reuses the finished runs instead of training them again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tinytask import write_task

import bpo.cli
from bpo.experiments.reproduce import METHODS, Plan, reproduce


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    task = write_task(folder)
    plan = Plan(
        tasks=(str(task),), seeds=(0, 1), losses=("dpo",), betas=(0.5,), phases=(2,),
        overrides=(f"policy.path={folder / 'model'}", "schedule.steps=4", "schedule.batch_size=4",
                   "sampling.max_new_tokens=8", "eval.prompts=8"),
    )
    report = reproduce(plan, folder / "out", jobs=1, progress=False)
    return plan, folder / "out", report


def test_sweep_writes_the_report_and_plots_from_the_runs(sweep):
    plan, out, report = sweep
    runs = sorted((out / "runs" / "task").iterdir())
    assert len(runs) == 2 * (len(METHODS) + 1)  # per seed: 3 methods of Table 1 + BPO at F = 2 (Figure 4)
    text = report.read_text()
    assert "## Table 1 — task, sampled" in text and "## Table 1 — task, greedy" in text
    bpo_runs = [r for r in runs if r.name.startswith("bpo-dpo-0.5-4-4-")]
    rates = [json.loads((r / "eval.json").read_text())["strict_win_rate"] for r in bpo_runs]
    assert len(rates) == 2
    expected = f"{np.mean(rates):.3f} ± {np.std(rates, ddof=1):.3f}"
    assert expected in text  # the table shows the runs' own mean ± std over seeds
    for name in ("figure4-task-sampled.png", "figure3-sampled.png", "figure3-greedy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    greedy = json.loads((bpo_runs[0] / "eval-greedy.json").read_text())
    assert greedy["n"] == 8 and "before" in greedy


def test_second_call_reuses_finished_runs(sweep, monkeypatch):
    plan, out, _ = sweep

    def no_training(argv):
        raise AssertionError(f"a finished run was trained again: {argv}")

    monkeypatch.setattr(bpo.cli, "main", no_training)
    victim = next((out / "runs" / "task").iterdir()) / "eval-greedy.json"
    victim.unlink()  # only the missing greedy evaluation is redone
    reproduce(plan, out, jobs=1, progress=False)
    assert victim.is_file()
