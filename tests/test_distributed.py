"""Data-parallel training over 2 CPU processes (gloo, launched by torchrun): the same adapters on both
ranks, and the same losses and adapters as one process on the whole batch (bpo.model.distributed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_steps import PAIRS, run_steps
from safetensors.torch import load_file

from bpo.model.distributed import SINGLE, Ranks

HERE = Path(__file__).parent


def test_shares_split_a_phase_and_a_batch():
    """7 pairs over 3 processes: 3, 2, 2 starting at 0, 3, 5; a batch of 6: rows 0-1, 2-3, 4-5."""
    ranks = [Ranks(r, 3) for r in range(3)]
    assert [r.count(7) for r in ranks] == [3, 2, 2]
    assert [r.offset(7) for r in ranks] == [0, 3, 5]
    assert [r.share(list(range(6))) for r in ranks] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        ranks[0].share(list(range(7)))
    assert SINGLE.share([1, 2, 3]) == [1, 2, 3] and SINGLE.count(5) == 5 and SINGLE.offset(5) == 0
    assert SINGLE.mean([1.5, 2.0]) == [1.5, 2.0] and SINGLE.gather([4]) == [4] and SINGLE.broadcast(7) == 7


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["schedule.batch_size=5"], "schedule.batch_size=5 does not split evenly over 2 processes"),
        (
            ["schedule.batch_size=4", "lora.ensemble=4", "lora.training=disjoint"],
            "each process's 2 pairs per step must split evenly over lora.ensemble=4 members; make schedule.batch_size "
            "a multiple of 8",
        ),
    ],
)
def test_batches_that_do_not_split_over_the_processes_are_refused(overrides, message):
    """Over 2 processes: B = 5 has no equal shares; B = 4 with 4 disjoint members passes the one-process
    check (4 = 4 x 1) but gives each process 2 pairs for 4 members. Both refused by the check open_session
    runs before any model is loaded; B = 8 with 4 disjoint members passes (2 x 4 x 1)."""
    from bpo.common.configlib import ConfigError, load_config
    from bpo.loop.config import RunConfig
    from bpo.loop.online import check_batch_shares

    two = Ranks(0, 2)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_batch_shares(load_config(RunConfig, None, ["schedule.steps=4", *overrides]), two)
    check_batch_shares(
        load_config(
            RunConfig, None, ["schedule.steps=4", "schedule.batch_size=8", "lora.ensemble=4", "lora.training=disjoint"]
        ),
        two,
    )


@pytest.mark.parametrize("training", ["independent", "disjoint", "joint"])
def test_two_processes_train_as_one_on_the_whole_batch(tiny_model_dir, tmp_path, training):
    """Each rank trains on 4 of the 8 pairs; gradients averaged, the mean of the two shares' mean losses is
    the batch's mean loss, so rank 0 == rank 1 exactly and both equal one process (float rounding apart).
    For every lora.training: disjoint's strided shares (member i: pairs i, i + 2, ...) are the same pairs
    whether the batch is on one process or split over two."""
    steps = 3
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "ddp_steps.py"),
        str(tiny_model_dir),
        str(tmp_path),
        str(steps),
        training,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(str(tmp_path / f"members-{r}.safetensors")) for r in range(2)]
    logs = [json.loads((tmp_path / f"losses-{r}.json").read_text()) for r in range(2)]
    assert [log["world"] for log in logs] == [2, 2]
    assert ranks[0].keys() == ranks[1].keys() and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert logs[0]["losses"] == logs[1]["losses"]

    losses, members = run_steps(tiny_model_dir, steps, training=training)  # one process, all 8 pairs
    assert PAIRS == 8 and losses[0] == pytest.approx(logs[0]["losses"][0], abs=1e-6)  # the same start: the same loss
    assert logs[0]["losses"] == pytest.approx(losses, abs=1e-5)
    one = {f"{i}|{k}": v for i, m in enumerate(members) for k, v in m.items()}
    assert all(torch.allclose(one[k], ranks[0][k], atol=1e-5) for k in one)
    assert any(not torch.equal(one[k], torch.zeros_like(one[k])) for k in one if k.endswith(".B"))  # they did move


def test_two_process_run_writes_the_folder_one_process_writes(tmp_path_factory):
    """`bpo train` under torchrun (2 processes, gloo): the run folder holds the same files as one process's,
    each phase's M = 12 pairs numbered once (6 sampled by each rank), one metrics line per step."""
    from tinytask import run_args, write_task

    folder = tmp_path_factory.mktemp("tinytask")
    write_task(folder)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bpo.cli"]
    for name, prefix in (("two", launch), ("one", [sys.executable, "-m", "bpo.cli"])):
        done = subprocess.run(
            prefix + run_args(folder, folder / name), env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    files = {
        name: sorted(str(p.relative_to(folder / name)) for p in (folder / name).rglob("*")) for name in ("one", "two")
    }
    assert files["two"] == files["one"]
    for phase in (0, 1):
        rows = [
            json.loads(line)
            for line in (folder / "two" / "pairs" / f"phase-{phase:03d}.jsonl").read_text().splitlines()
        ]
        assert [r["id"] for r in rows] == [f"p{phase:03d}-{i:05d}" for i in range(12)]
    steps = [json.loads(line)["step"] for line in (folder / "two" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(6))
