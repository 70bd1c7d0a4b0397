"""Runs labelled by people (annotator.kind=human / external): stop for labels, resume on exactly those
labels, never sample twice, resample undecided pairs, combine several raters, read other tools' exports."""

import json
import shutil
import uuid

import pytest
from humanrun import paused_run

from bpo.annotate.store import LabelConflict, LabelStore
from bpo.cli import main
from bpo.data.prefdata import read_preferences
from bpo.judging.pairs import PromptStream
from bpo.tasks.files import load_task_file

F, S = "first", "second"


@pytest.fixture(scope="module")
def paused(tmp_path_factory):
    folder = tmp_path_factory.mktemp("human")
    run, args = paused_run(folder)
    return folder, run


@pytest.fixture
def run(paused, tmp_path):
    folder, run = paused
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg = (copy / "config.yaml").read_text().replace(str(run), str(copy))
    (copy / "config.yaml").write_text(cfg)
    return copy


def label_all(store, phase, choose, rater="r1"):
    for c in store.candidates(phase):
        store.add_label(c.id, rater, choose(c), uuid.uuid4().hex)


def pairs_file(run, phase):
    return [json.loads(line) for line in (run / "pairs" / f"phase-{phase:03d}.jsonl").read_text().splitlines()]


def resume(run):
    return main(["train", "--resume", str(run), "--quiet"])


def test_a_phase_waits_for_labels_and_trains_on_exactly_them(run, capsys):
    store = LabelStore.open(run)
    stored = store.candidates(0)
    assert len(stored) == 4 and not (run / "pairs" / "phase-000.jsonl").exists()
    assert (run / "metrics.jsonl").read_text() == ""  # nothing trained before the labels
    assert resume(run) == 4  # still no labels: stops again, samples nothing new
    assert store.candidates(0) == stored
    assert "phase 0: 4 of 4 pairs await labels" in capsys.readouterr().err
    label_all(store, 0, lambda c: F if c.index % 2 else S)
    assert resume(run) == 4  # phase 0 trained, phase 1 sampled and waiting
    assert [(p["id"], p["chosen"], p["rejected"]) for p in pairs_file(run, 0)] == [
        (c.id, *((c.first.text, c.second.text) if c.index % 2 else (c.second.text, c.first.text))) for c in stored
    ]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1]
    assert len(store.candidates(1)) == 4
    with pytest.raises(LabelConflict):  # phase 0 was trained on: its labels are final
        store.add_label(stored[0].id, "r2", F, "late")
    label_all(store, 1, lambda c: F)
    assert resume(run) == 0
    assert len(pairs_file(run, 1)) == 4 and (run / "eval.json").exists()


def test_undecided_pairs_are_replaced_by_the_phases_next_prompts(paused, run):
    """annotator.ties=resample: a tie and a "both bad" leave 2 of 4 pairs decided, so the phase samples 2
    more pairs from the prompts after its first 4 (the same prompt stream an automatic annotator uses)."""
    store = LabelStore.open(run)
    first_round = store.candidates(0)
    label_all(store, 0, lambda c: {0: "tie", 1: "both_bad"}.get(c.index, F))
    assert resume(run) == 4
    stored = store.candidates(0)
    assert stored[:4] == first_round and len(stored) == 6 and {c.round for c in stored[4:]} == {1}
    task = load_task_file(paused[0] / "task" / "task.yaml")
    assert [c.prompt for c in stored] == PromptStream(task.train, 0, 0).take(6)  # seed 0, phase 0's window
    for c in stored[4:]:
        store.add_label(c.id, "r1", S, uuid.uuid4().hex)
    assert resume(run) == 4
    assert [p["id"] for p in pairs_file(run, 0)] == ["p000-00002", "p000-00003", "p000-00004", "p000-00005"]
    phases = [json.loads(line) for line in (run / "phases.jsonl").read_text().splitlines()]
    assert (phases[0]["prompts"], phases[0]["ties"]) == (6, 2)


def test_two_raters_combine_by_majority_and_their_agreement_is_reported(tmp_path, capsys):
    """overlap=2, ties=coin: pairs 0, 1 agreed (first, second), pair 2 split (first vs second), pair 3 both tie.
    Kappa: a = F S F T, b = F S S T: p_o = 3/4; marginals a F 2/4 S 1/4 T 1/4, b F 1/4 S 2/4 T 1/4,
    p_e = (2 + 2 + 1) / 16 = 5/16; kappa = (12/16 - 5/16) / (11/16) = 7/11 = 0.636."""
    run, _ = paused_run(tmp_path, "annotator.overlap=2", "annotator.ties=coin", "schedule.phases=1", "schedule.steps=2")
    store = LabelStore.open(run)
    stored = store.candidates(0)
    a, b = [F, S, F, "tie"], [F, S, S, "tie"]
    for c, x, y in zip(stored, a, b):
        store.add_label(c.id, "ann", x, uuid.uuid4().hex)
        assert store.incomplete(0) != []  # overlap 2: one label is not enough
        store.add_label(c.id, "bob", y, uuid.uuid4().hex)
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Cohen's kappa = 0.636 over 4 pairs" in out and "2 decided, undecided: split 1, tie 1" in out
    assert main(["annotate", str(run), "--export", str(tmp_path / "prefs.jsonl")]) == 0
    exported = read_preferences(tmp_path / "prefs.jsonl")  # TRL's layout; the split and the tie have no winner
    assert [(r.id, r.chosen, r.rejected) for r in exported] == [
        (stored[0].id, stored[0].first.text, stored[0].second.text),
        (stored[1].id, stored[1].second.text, stored[1].first.text),
    ]
    assert main(["annotate", str(run)]) == 2  # no rater was added: no server without credentials
    assert "no raters yet; add one with bpo annotate" in capsys.readouterr().err
    assert resume(run) == 0
    trained = pairs_file(run, 0)
    assert [(p["chosen"], p["rejected"]) for p in trained[:2]] == [
        (stored[0].first.text, stored[0].second.text),
        (stored[1].second.text, stored[1].first.text),
    ]
    for p, c in zip(trained[2:], stored[2:]):  # coin: each undecided pair once, in some order
        assert {p["chosen"], p["rejected"]} == {c.first.text, c.second.text}


def test_external_round_trip(tmp_path, capsys):
    """Export for Argilla / Label Studio, labels written back as each tool exports them, import, resume."""
    from tinytask import run_args, write_task

    bpo = main

    task = write_task(tmp_path / "task").parent
    run = tmp_path / "run"
    assert (
        bpo(
            run_args(
                task, run, "annotator.kind=external", "schedule.steps=2", "schedule.phases=1", "schedule.batch_size=2"
            )
        )
        == 4
    )
    assert "external/phase-000-*.jsonl into Argilla or Label Studio" in capsys.readouterr().err
    rows = [json.loads(line) for line in (run / "external" / "phase-000-round-0.jsonl").read_text().splitlines()]
    assert json.loads((run / "external" / "phase-000-round-0.json").read_text()) == rows
    assert len(rows) == 4 and set(rows[0]) == {"pair_id", "prompt", "response_a", "response_b"}
    assert '<Choices name="preference"' in (run / "external" / "label-studio.xml").read_text()
    labels = run / "external" / "labels"
    ids = [r["pair_id"] for r in rows]

    # Label Studio JSON export (a list, pretty-printed) for pairs 0 and 1; an unlabelled task is skipped
    ls = [
        {
            "id": 1,
            "data": rows[0],
            "annotations": [
                {
                    "completed_by": 7,
                    "result": [
                        {"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": ["A"]}}
                    ],
                }
            ],
        },
        {
            "id": 2,
            "data": rows[1],
            "annotations": [{"completed_by": 7, "result": [{"from_name": "preference", "value": {"choices": ["B"]}}]}],
        },
        {"id": 3, "data": rows[2], "annotations": []},
    ]
    (labels / "project-1.json").write_text(json.dumps(ls, indent=2))
    # Argilla records (one per line) for pair 2, the flat layout for pair 3
    (labels / "argilla.jsonl").write_text(
        json.dumps({"fields": rows[2], "responses": {"preference": [{"value": "B", "user_id": "u1"}]}}) + "\n"
    )
    (labels / "flat.jsonl").write_text(json.dumps({"pair_id": ids[3], "preference": "A", "annotator": "zoe"}) + "\n")
    assert bpo(["train", "--resume", str(run), "--quiet"]) == 0
    trained = pairs_file(run, 0)
    expect = [
        (rows[0]["response_a"], rows[0]["response_b"]),
        (rows[1]["response_b"], rows[1]["response_a"]),
        (rows[2]["response_b"], rows[2]["response_a"]),
        (rows[3]["response_a"], rows[3]["response_b"]),
    ]
    assert [(p["chosen"], p["rejected"]) for p in trained] == expect
    assert {r.rater for r in LabelStore.open(run).labels()} == {"labelstudio:7", "argilla:u1", "external:zoe"}


@pytest.mark.parametrize(
    "row, message",
    [
        ({"pair_id": "p000-09999", "preference": "A"}, "bad.jsonl:2: pair_id: 'p000-09999' is not a pair of this run"),
        (
            {"pair_id": "p000-00000", "preference": "maybe"},
            "bad.jsonl:2: preference: 'maybe' is not one of A, B, tie, both_bad",
        ),
        ({"preference": "A"}, "bad.jsonl:2: pair_id: missing"),
    ],
)
def test_external_labels_for_unknown_pairs_or_values_are_refused(tmp_path, capsys, row, message):
    from tinytask import run_args, write_task

    task = write_task(tmp_path / "task").parent
    run = tmp_path / "run"
    assert (
        main(
            run_args(
                task, run, "annotator.kind=external", "schedule.steps=2", "schedule.phases=1", "schedule.batch_size=2"
            )
        )
        == 4
    )
    capsys.readouterr()
    good = {"pair_id": "p000-00001", "preference": "B"}
    (run / "external" / "labels" / "bad.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert LabelStore.open(run).labels() == []  # all or nothing: the good line was not stored either


def test_a_waiting_run_continues_once_labelled_and_a_signal_stops_the_wait(tmp_path):
    """annotator.wait=true: the run polls the store instead of exiting; labels given meanwhile let it train
    on; SIGINT while it waits ends it with 130, the labels so far kept."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from humanrun import TESTS
    from tinytask import run_args, write_task

    task = write_task(tmp_path / "task").parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}

    def start(run, *extra):
        args = run_args(
            task,
            run,
            "annotator.kind=human",
            "annotator.wait=true",
            "schedule.steps=2",
            "schedule.batch_size=2",
            *extra,
        )
        return subprocess.Popen([sys.executable, "-m", "bpo.cli", *args], env=env, stderr=subprocess.PIPE, text=True)

    def stored(run, n):
        deadline = time.time() + 120
        while time.time() < deadline:
            if (run / "labels.sqlite").exists() and len(LabelStore.open(run).candidates(0)) == n:
                return LabelStore.open(run)
            time.sleep(0.5)
        raise AssertionError("the run never stored its pairs")

    done = tmp_path / "done"
    proc = start(done, "schedule.phases=1")
    label_all(stored(done, 4), 0, lambda c: F)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "waiting for the labels" in err and len(pairs_file(done, 0)) == 4

    stopped = tmp_path / "stopped"
    proc = start(stopped, "schedule.phases=1")
    store = stored(stopped, 4)
    store.add_label(store.candidates(0)[0].id, "r1", F, "kept")
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "stopped while waiting for labels" in err and "Traceback" not in err
    assert [r.pair_id for r in store.labels(0)] == [store.candidates(0)[0].id]
