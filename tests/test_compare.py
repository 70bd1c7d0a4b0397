"""The comparison metrics (bpo.evaluation.compare) on hand-made inputs, and `bpo compare` end to end on the tiny
task."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.evaluation.compare import (
    bad_case_rate,
    head_to_head,
    margin_histogram,
    pairwise_accuracy,
    reward_margins,
    win_tie_lose,
)

# ---- metrics ---------------------------------------------------------------------------------------

A = [3.0, 1.0, 2.0, 2.25, 0.0]
B = [1.0, 3.0, 2.0, 2.0, 0.5]  # differences a - b: 2, -2, 0, 0.25, -0.5


def test_head_to_head_with_and_without_a_tie_margin():
    """margin 0: 2 win, -2 lose, 0 tie, 0.25 win, -0.5 lose -> [1, -1, 0, 1, -1];
    margin 0.25: 0.25 is not > 0.25 -> tie; margin 0.5: -0.5 is a tie too -> [1, -1, 0, 0, 0]."""
    assert head_to_head(A, B).tolist() == [1, -1, 0, 1, -1]
    assert head_to_head(A, B, tie_margin=0.25).tolist() == [1, -1, 0, 0, -1]
    assert head_to_head(A, B, tie_margin=0.5).tolist() == [1, -1, 0, 0, 0]
    assert head_to_head(B, A).tolist() == [-1, 1, 0, -1, 1]  # swapping the policies swaps win and lose


def test_win_tie_lose_rates():
    """margin 0.25: 1 win, 2 ties, 2 losses of 5 -> 0.2 / 0.4 / 0.4; they sum to 1. All wins: intervals (1, 1)."""
    r = win_tie_lose(A, B, tie_margin=0.25)
    assert (r.win, r.tie, r.lose, r.n) == (pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.4), 5)
    assert r.win + r.tie + r.lose == pytest.approx(1.0)
    assert r.win_ci[0] <= r.win <= r.win_ci[1] and r.lose_ci[0] <= r.lose <= r.lose_ci[1]
    sure = win_tie_lose([2.0, 3.0], [1.0, 1.0])
    assert (sure.win, sure.win_ci, sure.lose_ci) == (1.0, (1.0, 1.0), (0.0, 0.0))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="3 scores for one policy but 2"):
        head_to_head([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="tie_margin must be >= 0"):
        head_to_head([1], [1], tie_margin=-0.1)
    with pytest.raises(ValueError, match="no scores"):
        win_tie_lose([], [])


def test_bad_case_rate():
    """threshold 0.3, both strictly below: (0.1, 0.2) yes; (0.5, -0.3) no; (-1, -2) yes; (2, -1) no;
    (0.3, 0.3) no (not below) -> 2 of 5 = 0.4."""
    assert bad_case_rate([0.1, 0.5, -1, 2, 0.3], [0.2, -0.3, -2, -1, 0.3], threshold=0.3) == pytest.approx(0.4)


def test_reward_margins_and_pairwise_accuracy():
    """beta (log pi/ref (y_w)) - beta (log pi/ref (y_l)):
    pi_w -1, pi_l -3, ref -2, -2, beta 0.5: 0.5 * 1 - 0.5 * (-1) = 1.0;
    pi_w -5, pi_l -1, ref_w -4, ref_l -2: 0.5 * (-1) - 0.5 * 1 = -1.0;
    policy = reference: 0. Accuracy counts positive margins only: 1 of 3."""
    m = reward_margins([-1.0, -5.0, -3.0], [-3.0, -1.0, -4.0], [-2.0, -4.0, -3.0], [-2.0, -2.0, -4.0], beta=0.5)
    assert m.tolist() == pytest.approx([1.0, -1.0, 0.0])
    assert pairwise_accuracy(m) == pytest.approx(1 / 3)
    assert reward_margins([-1.0], [-3.0], [-2.0], [-2.0], beta=0.1).tolist() == pytest.approx([0.2])


def test_margin_histogram_writes_a_png(tmp_path):
    path = margin_histogram({"iopo": np.array([0.5, 1.0, -0.2]), "dpo": np.array([0.1, -0.4, 0.0])}, tmp_path / "m.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- bpo compare, end to end ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare-tinytask")
    write_task(folder)
    run = folder / "iopo"
    assert (
        main(
            run_args(folder, run, "method=iopo", "iopo.rounds=2", "iopo.protagonist_steps=2", "iopo.adversary_steps=1")
        )
        == 0
    )
    held_out = folder / "held-out.jsonl"
    held_out.write_text(
        "".join(
            json.dumps({"prompt": f"w{5 + i} w6", "chosen": "w40 w41", "rejected": f"w{20 + i} w21 w22"}) + "\n"
            for i in range(6)
        )
    )
    return run, held_out


def test_compare_against_the_sft_start(tiny_run, capsys):
    """RUN vs sft: rates sum to 1 over the 4 eval prompts; the SFT side's held-out margins are 0 (pi = pi_ref),
    so its accuracy is 0; the histogram and compare.json are written."""
    run, held_out = tiny_run
    out = run.parent / "vs-sft"
    assert (
        main(
            ["compare", str(run), "sft", "--pairs", str(held_out), "--bad-threshold", "0", "--out", str(out), "--quiet"]
        )
        == 0
    )
    result = json.loads((out / "compare.json").read_text())
    assert result["n"] == 4 and result["win"] + result["tie"] + result["lose"] == pytest.approx(1.0)
    assert (result["temperature"], result["tie_margin"]) == (0.8, 0.0)
    assert 0.0 <= result["bad_case_rate"] <= 1.0
    held = result["heldout"]
    assert held["pairs"] == 6 and held["policies"]["sft"] == {"mean_margin": 0.0, "accuracy": 0.0, "margins": [0.0] * 6}
    assert 0.0 <= held["policies"][str(run)]["accuracy"] <= 1.0
    assert (out / "margins.png").read_bytes()[:4] == b"\x89PNG"
    assert "win" in capsys.readouterr().out


def test_a_run_against_itself_ties_everywhere(tiny_run):
    """The same policy sampled with the same seed gives the same responses: every prompt a tie."""
    run, _ = tiny_run
    out = run.parent / "vs-itself"
    assert main(["compare", str(run), str(run), "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert (result["win"], result["tie"], result["lose"]) == (0.0, 1.0, 0.0)
    assert result["outcomes"] == [0] * result["n"]  # per prompt, for paired statistics (bpo reproduce)
    assert all(e["a"] == e["b"] for e in result["examples"])


def test_bad_compare_arguments_exit_2(tiny_run, capsys):
    run, _ = tiny_run
    assert main(["compare", str(run), "sft", "--tie-margin", "-1", "--quiet"]) == 2
    assert "--tie-margin must be >= 0" in capsys.readouterr().err
    assert main(["compare", str(run.parent / "nothing-here"), "sft", "--quiet"]) == 2


def test_compare_never_writes_over_a_users_folder(tiny_run, capsys):
    """Before: `--out DIR` holding the user's own compare.json replaced it, exit 0. Now refused before any
    model is loaded, the file byte-identical; an earlier comparison's folder is still written over."""
    run, _ = tiny_run
    mine = run.parent / "mine"
    mine.mkdir()
    (mine / "compare.json").write_text('{"my": "notes"}\n')
    assert main(["compare", str(run), "sft", "--out", str(mine), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--out {mine}: not empty and not an earlier bpo compare (holds compare.json)" in err
    assert (mine / "compare.json").read_text() == '{"my": "notes"}\n'
    again = run.parent / "again"
    assert main(["compare", str(run), "sft", "--out", str(again), "--quiet"]) == 0
    assert main(["compare", str(run), "sft", "--out", str(again), "--quiet"]) == 0  # over its own earlier result
