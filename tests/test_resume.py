"""Reliability: SIGKILL at several points, SIGTERM, an injected NaN; each resumed run equals the
uninterrupted one (same pairs, losses within 1e-5, same evaluation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tinytask import run_args, write_task

from bpo.cli import main

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinytask")
    write_task(folder)
    return folder


@pytest.fixture(scope="module")
def baseline(task_dir):
    out = task_dir / "baseline"
    assert main(run_args(task_dir, out)) == 0
    return out


def driven(point: str, n: int, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(HERE / "killdriver.py"), point, str(n), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_pairs(a: dict, b: dict) -> None:
    """Texts, ids, labels identical; log-probs equal within 1e-5 (the two processes may use other thread counts)."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert abs(a[key] - b[key]) <= 1e-5, (key, a[key], b[key])
        else:
            assert a[key] == b[key], key


def assert_same_run(run: Path, baseline: Path) -> None:
    for phase in (0, 1):
        name = f"pairs/phase-{phase:03d}.jsonl"
        rows = [[json.loads(line) for line in (r / name).read_text().splitlines()] for r in (run, baseline)]
        assert len(rows[0]) == len(rows[1]) == 12
        for a, b in zip(*rows):
            assert_same_pairs(a, b)
    a, b = losses(run), losses(baseline)
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-5
    assert (
        json.loads((run / "eval.json").read_text())["win_rate"]
        == json.loads((baseline / "eval.json").read_text())["win_rate"]
    )


@pytest.mark.parametrize(
    "point, n",
    [
        ("sampling", 2),  # phase 1's sampling (the 1st generate call is phase 0's)
        ("labels-stored", 1),  # right after phase 0's pairs are on disk, before any training
        ("training", 5),  # mid-phase 1, after the checkpoint at step 4
        ("checkpoint-write", 9),  # inside the second checkpoint's write: a partial folder is left
    ],
)
def test_sigkill_then_resume_equals_uninterrupted(task_dir, baseline, point, n):
    out = task_dir / f"killed-{point}"
    proc = driven(point, n, run_args(task_dir, out))
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "eval.json").exists()
    if point == "checkpoint-write":
        with pytest.warns(UserWarning, match="ignoring partial checkpoint"):
            assert main(["train", "--resume", str(out), "--quiet"]) == 0
    else:
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


# Moving references restore their snapshot from the checkpoint (sync every 3 steps: the snapshot of
# step 3 cannot be recomputed at step 4); ipo and kto_pair average log-probs per token; the ensemble
# trained on disjoint shares or jointly (lora.training) keeps one AdamW per member, restored alike.
VARIANTS = {
    "ema": ["reference.kind=ema", "reference.ema_tau=0.3"],
    "sync": ["reference.kind=sync", "reference.sync_every=3"],
    "ipo": ["loss=ipo"],
    "kto_pair": ["loss=kto_pair", "loss_reduction=mean"],
    "disjoint": ["lora.training=disjoint"],
    "joint": ["lora.training=joint", "lora.dropout=0"],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_sigkill_mid_phase_then_resume_equals_uninterrupted_for_each_variant(task_dir, variant):
    extra = VARIANTS[variant]
    uninterrupted = task_dir / f"baseline-{variant}"
    assert main(run_args(task_dir, uninterrupted, *extra)) == 0
    out = task_dir / f"killed-{variant}"
    proc = driven("training", 5, run_args(task_dir, out, *extra))  # after step 5; last checkpoint: step 4
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, uninterrupted)


def test_sigterm_checkpoints_and_says_how_to_resume(task_dir, baseline):
    out = task_dir / "terminated"
    proc = driven("sigterm", 3, run_args(task_dir, out))  # SIGTERM during step 3 (0-based step 2)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert f"resume with: bpo train --resume {out}" in proc.stderr
    assert (out / "checkpoints" / "step-000003" / "COMPLETE").exists()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


def test_nan_stops_the_run_naming_phase_and_step(task_dir):
    out = task_dir / "nan"
    # Each step evaluates the loss once per ensemble member (2): the 9th evaluation is step 4, member 0.
    proc = driven("nan", 9, run_args(task_dir, out))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "training diverged at phase 1, step 4: non-finite loss nan (ensemble member 0)" in proc.stderr
    steps = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").iterdir())
    assert steps and max(steps) <= 4  # the checkpoint at step 4 was written before step 4 ran; none after
    assert len(losses(out)) == 4


def test_output_folder_with_a_run_is_refused_before_any_model_is_loaded(task_dir, baseline, capsys, monkeypatch):
    import bpo.loop.online

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(bpo.loop.online, "load_base", refuse)
    assert main(run_args(task_dir, baseline)) == 2
    assert "already holds a run" in capsys.readouterr().err
