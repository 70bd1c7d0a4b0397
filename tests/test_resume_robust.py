"""Resume defects, each reproduced and fixed, on one offline run whose preference file holds U+2028,
U+2029, U+0085 and escaped NULs in its strings (some raw in the file, some escaped).

One uninterrupted run is the baseline; one run is SIGKILLed after its 5th training step (last
checkpoint: step 4). Each test copies the killed run, damages it as a crash or a user would, resumes,
and compares with the baseline: same pairs, losses within 1e-5, same evaluation.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from test_resume import assert_same_pairs, driven
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.common.jsonl import split_lines

ODD = [
    "\u2028",
    "\u2029",
    "\u0085",
    "\x00",
    "\x0c",
    "\x1e",
]  # line/paragraph separators, NEL, NUL, form feed, record sep


def odd_rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        c = ODD[i % len(ODD)]
        rows.append(
            {
                "id": i if i % 2 else f"r{i}",
                "prompt": f"w{i % 20 + 4}{c}w5 w6",
                "chosen": f"w40 w41{c}w42",
                "rejected": f"w10{c} w11 w12 w13",
            }
        )
    return rows


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oddtask")
    write_task(folder)
    # Half the rows with the odd characters raw (JSON allows U+2028, NEL... unescaped), half escaped.
    text = "".join(json.dumps(row, ensure_ascii=bool(i % 2)) + "\n" for i, row in enumerate(odd_rows()))
    (folder / "prefs.jsonl").write_text(text, encoding="utf-8")
    assert len(text.splitlines()) > 24  # what the old reader did: a valid file split into more lines than rows
    return folder


def offline_args(task_dir, out, *extra):
    return run_args(
        task_dir, out, "method=offline_dpo", "schedule.phases=1", f"data.pairs={task_dir / 'prefs.jsonl'}", *extra
    )


@pytest.fixture(scope="module")
def baseline(task_dir):
    out = task_dir / "baseline"
    assert main(offline_args(task_dir, out)) == 0
    return out


@pytest.fixture(scope="module")
def killed(task_dir):
    out = task_dir / "killed"
    proc = driven("training", 5, offline_args(task_dir, out))  # after step 5; checkpoints at steps 2 and 4
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "eval.json").exists()
    return out


def copy_of(killed, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(killed, out)
    return out


def rows(path):
    return [json.loads(line) for line in split_lines(path.read_text(encoding="utf-8"))]


def assert_same_run(run, baseline):
    a, b = rows(run / "pairs" / "phase-000.jsonl"), rows(baseline / "pairs" / "phase-000.jsonl")
    assert len(a) == len(b) == 24
    for x, y in zip(a, b):
        assert_same_pairs(x, y)
    la, lb = [r["loss"] for r in rows(run / "metrics.jsonl")], [r["loss"] for r in rows(baseline / "metrics.jsonl")]
    assert [r["step"] for r in rows(run / "metrics.jsonl")] == list(range(6))
    assert max(abs(x - y) for x, y in zip(la, lb)) <= 1e-5
    assert (
        json.loads((run / "eval.json").read_text())["win_rate"]
        == json.loads((baseline / "eval.json").read_text())["win_rate"]
    )


def test_split_lines_splits_on_newline_only():
    text = "a\u2028b\r\nc\u0085d\x0ce\nf"
    assert split_lines(text) == ["a\u2028b", "c\u0085d\x0ce", "f"]
    assert split_lines("x\n") == ["x"] and split_lines("") == []


def test_odd_characters_survive_into_the_pairs_file(baseline):
    """The pairs file keeps the characters (raw: the file is readable text) and reads back row for row."""
    stored = rows(baseline / "pairs" / "phase-000.jsonl")
    assert [p["prompt"] for p in stored] == [r["prompt"] for r in odd_rows()]
    assert [p["id"] for p in stored] == [str(r["id"]) for r in odd_rows()]
    assert "\u2028" in (baseline / "pairs" / "phase-000.jsonl").read_text(encoding="utf-8")


def test_killed_run_with_odd_characters_resumes_equal_to_uninterrupted(killed, baseline, tmp_path):
    """Before the fix the resume died on the pairs file (read back with str.splitlines)."""
    out = copy_of(killed, tmp_path)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


@pytest.mark.parametrize("log", ["metrics.jsonl", "phases.jsonl"])
def test_partial_last_log_line_is_dropped_with_a_warning(killed, baseline, tmp_path, log):
    """A kill during an append leaves half a line; before the fix the resume raised JSONDecodeError."""
    out = copy_of(killed, tmp_path)
    with open(out / log, "a", encoding="utf-8") as f:
        f.write('{"step": 5, "phase": 0, "loss": 0.69')
    with pytest.warns(UserWarning, match=rf"{log}:\d+: dropping a line cut short"):
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)
    assert len(rows(out / "phases.jsonl")) == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "state"])
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(killed, baseline, tmp_path, damage):
    """Before the fix a damaged step-000004 (complete marker, bad files) made the run unresumable."""
    out = copy_of(killed, tmp_path)
    latest = out / "checkpoints" / "step-000004"
    assert (out / "checkpoints" / "step-000002" / "COMPLETE").exists() and (latest / "COMPLETE").exists()
    members = latest / "members.safetensors"
    if damage == "truncate":
        members.write_bytes(members.read_bytes()[:100])
    elif damage == "flip":  # same size, one byte changed in the tensor data: only the hash can tell
        data = bytearray(members.read_bytes())
        data[-3] ^= 0xFF
        members.write_bytes(bytes(data))
    elif damage == "delete":
        members.unlink()
    else:
        (latest / "state.json").write_text("{not json")
    with pytest.warns(UserWarning, match=r"step-000004 is corrupt .*falling back to step-000002"):
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


def test_every_checkpoint_corrupt_restarts_from_step_0_on_the_stored_pairs(killed, baseline, tmp_path):
    out = copy_of(killed, tmp_path)
    for folder in (out / "checkpoints").iterdir():
        (folder / "rng.safetensors").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="falling back to step 0"):
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


@pytest.mark.parametrize(
    "edit, named",
    [
        ({"beta": 0.3}, "beta (0.5 -> 0.3)"),
        ({"lora": {"rank": 4}}, "lora.rank (8 -> 4)"),
        ({"loss": "ipo"}, "loss ('dpo' -> 'ipo')"),
        ({"schedule": {"steps": 12, "pairs": None, "batch_size": 2}}, "schedule.batch_size (4 -> 2)"),
    ],
)
def test_resume_after_editing_a_fixed_setting_is_refused_naming_it(killed, tmp_path, capsys, edit, named):
    out = copy_of(killed, tmp_path)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml: edited since the run started" in err and named in err, err
    assert "Traceback" not in err


def test_resume_after_editing_evaluation_settings_is_allowed(killed, baseline, tmp_path):
    """eval, checkpoint, out and policy.path may change (a moved model folder keeps the run resumable)."""
    out = copy_of(killed, tmp_path)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["checkpoint"]["every"] = 3
    cfg["out"] = "elsewhere"
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


def test_checkpoints_record_the_settings_hash(killed):
    state = json.loads((killed / "checkpoints" / "step-000004" / "state.json").read_text())
    recorded = json.loads((killed / "settings.json").read_text())
    assert state["settings"]["hash"] == recorded["hash"] and recorded["settings"]["beta"] == 0.5
    marker = json.loads((killed / "checkpoints" / "step-000004" / "COMPLETE").read_text())
    assert set(marker["sha256"]) >= {"members.safetensors", "optimizer.safetensors", "state.json", "rng.safetensors"}


def test_signal_during_final_evaluation_exits_with_a_message_then_resumes(killed, baseline, tmp_path):
    out = copy_of(killed, tmp_path)
    proc = driven("eval-sigterm", 1, ["train", "--resume", str(out), "--quiet"])
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "bpo: interrupted (SIGTERM)" in proc.stderr and f"continue it with: bpo train --resume {out}" in proc.stderr
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


@pytest.mark.parametrize("point, code, name", [("startup-sigint", 130, "SIGINT"), ("startup-sigterm", 143, "SIGTERM")])
def test_signal_during_start_up_exits_with_a_message_and_leaves_no_folder(task_dir, tmp_path, point, code, name):
    out = tmp_path / "run"
    proc = driven(point, 1, offline_args(task_dir, out))
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and f"bpo: interrupted ({name})" in proc.stderr
    assert not out.exists()


def test_eval_json_is_strict_json(baseline):
    json.loads((baseline / "eval.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in eval.json"))


def test_eval_of_a_run_with_damaged_adapters_names_them_and_how_to_rewrite(baseline, tmp_path, capsys):
    out = copy_of(baseline, tmp_path)
    weights = out / "adapters" / "a0" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    assert main(["eval", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'adapters'}: cannot load the trained adapters" in err and f"bpo train --resume {out}" in err
    assert "Traceback" not in err
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # rewrites the adapters (training was done)
    assert main(["eval", str(out), "--quiet"]) == 0


def test_a_run_in_use_by_another_process_is_refused_then_resumes_once_it_ends(killed, baseline, tmp_path, capsys):
    """While another process holds the run folder's lock (as a `bpo train` does while it trains), a second
    `--resume` is refused with exit 2, names the holder's pid and changes nothing. Once the holder is killed
    (SIGKILL: the system drops its lock, nothing stale is left), the resume works and equals the
    uninterrupted run."""
    import subprocess
    import sys

    out = copy_of(killed, tmp_path)
    hold = (
        "import sys, time\nfrom bpo.run.rundir import RunDir\nrun = RunDir(sys.argv[1])\nrun.lock()\n"
        "print('locked', flush=True)\ntime.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
        assert main(["train", "--resume", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"{out}: in use by another bpo process (pid {holder.pid})" in err and "Traceback" not in err
        assert {
            p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"
        } == snapshot
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


def as_recorded_by_an_older_bpo(run, key: str) -> None:
    """Rewrite a run's settings record (settings.json and every checkpoint's state.json, with its SHA-256 in
    the COMPLETE marker) and config.yaml as a bpo without the setting `key` (e.g. lora.training) wrote them."""
    import hashlib

    from bpo.run.rundir import settings_hash

    def drop(record):
        settings = {k: v for k, v in record["settings"].items() if k != key}
        return {"hash": settings_hash(settings), "settings": settings}

    recorded = json.loads((run / "settings.json").read_text())
    (run / "settings.json").write_text(json.dumps(drop(recorded)))
    for folder in (run / "checkpoints").iterdir():
        state = json.loads((folder / "state.json").read_text())
        state["settings"] = drop(state["settings"])
        (folder / "state.json").write_text(json.dumps(state))
        marker = json.loads((folder / "COMPLETE").read_text())
        marker["sha256"]["state.json"] = hashlib.sha256((folder / "state.json").read_bytes()).hexdigest()
        (folder / "COMPLETE").write_text(json.dumps(marker))
    section, name = key.split(".")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    del cfg[section][name]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_a_run_started_before_a_setting_existed_resumes_with_its_default_and_not_with_another_value(
    killed, baseline, tmp_path, capsys
):
    """A run recorded without lora.training (added later, default independent: the behaviour it had) resumes
    and equals the uninterrupted run; asking it to resume with lora.training=joint is refused, naming it."""
    out = copy_of(killed, tmp_path)
    as_recorded_by_an_older_bpo(out, "lora.training")
    assert "training" not in yaml.safe_load((out / "config.yaml").read_text())["lora"]
    written = (out / "config.yaml").read_text()
    cfg = yaml.safe_load(written)
    cfg["lora"].update(training="joint", dropout=0.0)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    assert "lora.training (None -> 'joint')" in capsys.readouterr().err
    (out / "config.yaml").write_text(written)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, baseline)


def test_a_new_run_that_loses_the_race_for_its_folder_leaves_the_winner_s_run(task_dir, tmp_path, monkeypatch, capsys):
    """Two `bpo train out=X` started together both find no run in X. While the second loads its model, the
    first creates the run and holds it, still sampling (no pairs, no checkpoint yet). The second is then
    refused when it creates the run, and its clean-up must not remove the first one's folder: only the
    process that created a run may unmake it."""
    import subprocess
    import sys

    import bpo.loop.online

    out = tmp_path / "run"
    args = offline_args(task_dir, out)[1:-1]  # the key=value settings of `bpo train`
    create = (
        "import sys, time\nfrom bpo.loop.config import RunConfig\nfrom bpo.common.configlib import load_config\nfrom "
        "bpo.run.rundir import RunDir\n"
        "run = RunDir(sys.argv[1])\nrun.create(load_config(RunConfig, None, sys.argv[2:]))\nprint('created', "
        "flush=True)\ntime.sleep(600)"
    )
    first, real_load = [], bpo.loop.online.load_base

    def first_one_creates_meanwhile(*a, **k):
        first.append(
            subprocess.Popen([sys.executable, "-c", create, str(out), *args], stdout=subprocess.PIPE, text=True)
        )
        assert first[0].stdout.readline().strip() == "created"
        return real_load(*a, **k)

    monkeypatch.setattr(bpo.loop.online, "load_base", first_one_creates_meanwhile)
    try:
        assert main(offline_args(task_dir, out)) == 2
        assert f"{out} already holds a run" in capsys.readouterr().err
        assert (out / "config.yaml").is_file() and (out / "settings.json").is_file() and (out / "pairs").is_dir()
    finally:
        for process in first:
            process.kill()
            process.wait()
