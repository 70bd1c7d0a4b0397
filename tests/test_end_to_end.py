"""End-to-end runs on the built-in `reviews` task: every method learns (its win rate against the
human references rises above the SFT policy's by more than the interval's half-width), and the run
folder matches the schedule. Ensembles of 2 adapters keep the three runs to about a minute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpo.cli import main

FAST = ["lora.ensemble=2", "eval.kl=false", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    out = {}
    for method in ("bpo", "online_dpo", "offline_dpo"):
        config = Path(__file__).parent.parent / "configs" / f"reviews-{method.replace('_', '-')}.yaml"
        out[method] = root / method
        assert main(["train", str(config), f"out={out[method]}", *FAST]) == 0
    return out


@pytest.mark.parametrize("method", ["bpo", "online_dpo", "offline_dpo"])
def test_win_rate_rises_above_sft_by_more_than_the_half_width(runs, method):
    result = json.loads((runs[method] / "eval.json").read_text())
    half_width = (result["ci_high"] - result["ci_low"]) / 2
    gain = result["win_rate"] - result["before"]["win_rate"]
    assert gain > half_width, (method, result["win_rate"], result["before"]["win_rate"], half_width)
    assert result["n"] == 128 and result["mean_score"] > result["before"]["mean_score"]


@pytest.mark.parametrize("method, phases", [("bpo", 4), ("online_dpo", 64), ("offline_dpo", 1)])
def test_run_folder_matches_the_schedule(runs, method, phases):
    """T = 64 steps of B = 16 pairs: N = 1024 pairs in F phase files of M = 1024 / F pairs, T metric lines."""
    run = runs[method]
    files = sorted((run / "pairs").glob("phase-*.jsonl"))
    assert [f.name for f in files] == [f"phase-{i:03d}.jsonl" for i in range(phases)]
    for i, f in enumerate(files):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        assert len(rows) == 1024 // phases
        assert {r["phase"] for r in rows} == {i}
        assert all(
            {"prompt", "chosen", "rejected", "chosen_score", "rejected_score", "behavior_chosen_logp"} <= r.keys()
            for r in rows
        )
        assert all(r["chosen_score"] is not None for r in rows)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(64))
    assert [m["phase"] for m in metrics] == [step // (64 // phases) for step in range(64)]  # K = T / F steps a phase
    ids = [json.loads(line)["id"] for f in files for line in f.read_text().splitlines()]
    assert len(set(ids)) == len(ids) == 1024  # N distinct pairs, each trained on once (T * B = N)
    assert {"loss", "reward_margin", "reward_accuracy", "lr"} <= metrics[0].keys()
    assert (run / "config.yaml").is_file()
    assert {"merged", "a0", "a1"} <= {p.name for p in (run / "adapters").iterdir()}
    assert (run / "adapters" / "merged" / "adapter_config.json").is_file()
    assert {"win_rate", "ci_low", "ci_high", "n", "mean_score"} <= json.loads((run / "eval.json").read_text()).keys()


def test_bpo_reference_is_the_behavior_policy(runs):
    """BPO stores the sampler's log-probs as the reference; online DPO stores the SFT policy's."""

    def first(method):
        return json.loads((runs[method] / "pairs" / "phase-001.jsonl").read_text().splitlines()[0])

    bpo, dpo = first("bpo"), first("online_dpo")
    assert bpo["ref_chosen_logp"] == bpo["behavior_chosen_logp"]
    assert dpo["ref_chosen_logp"] != dpo["behavior_chosen_logp"]


def test_eval_command_reproduces_eval_json(runs, capsys):
    """`bpo eval` writes eval.json again (the training run's is moved away first, so a command that wrote
    nothing fails), with the same content: the run trained with the same eval settings, and evaluation is
    seeded by the run seed alone."""
    run = runs["bpo"]
    trained = run / "eval.json"
    saved = trained.with_name("eval-of-training.json")
    trained.rename(saved)
    try:
        assert main(["eval", str(run), "eval.kl=false", "--quiet"]) == 0
        assert trained.is_file(), "bpo eval wrote no eval.json"
        assert json.loads(trained.read_text()) == json.loads(saved.read_text())
    finally:
        if not trained.exists():
            saved.rename(trained)  # the other tests of the module read the run's eval.json
        saved.unlink(missing_ok=True)


def test_smollm2_chatterbot_smoke(tmp_path):
    """The main job (`bpo demo`) on the real model, shrunk: load SmolLM2 (converted once from GGUF), label a
    handful of pairs with the VADER rater, one training step, evaluate on a few prompts, export."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "smol"
    args = [
        "demo",
        f"out={out}",
        "schedule.steps=1",
        "schedule.batch_size=2",
        "schedule.phases=1",
        "lora.ensemble=1",
        "sampling.max_new_tokens=8",
        "eval.prompts=2",
        "eval.kl=false",
        "annotator.kind=rule",
        "--quiet",
    ]
    assert main(args) == 0
    pairs = [json.loads(line) for line in (out / "pairs" / "phase-000.jsonl").read_text().splitlines()]
    assert len(pairs) == 2 and all(p["chosen_score"] >= p["rejected_score"] for p in pairs)
    from transformers import AutoTokenizer

    from bpo.common.cachefolder import cache_dir

    tok = AutoTokenizer.from_pretrained(cache_dir() / "smollm2-135m-instruct")
    prompt_text = tok.decode(pairs[0]["prompt_ids"])
    assert "<|im_start|>user" in prompt_text and prompt_text.rstrip().endswith("<|im_start|>assistant")
    result = json.loads((out / "eval.json").read_text())
    assert f"after (aligned policy): {result['win_rate']:.3f}" in (out / "report.md").read_text()
    assert result["n"] == 2 and all(e["response"] is not None for e in result["examples"])
    assert main(["export", str(out), str(tmp_path / "exported"), "--quiet"]) == 0
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "exported").config.model_type == "llama"


def test_report_states_the_measured_win_rates(runs):
    from bpo.run.report import write_report

    result = json.loads((runs["online_dpo"] / "eval.json").read_text())
    report = write_report(runs["online_dpo"], seconds=12.0).read_text()
    assert (
        f"after (aligned policy): {result['win_rate']:.3f} [{result['ci_low']:.3f}, {result['ci_high']:.3f}]" in report
    )
    assert f"before (initial policy): {result['before']['win_rate']:.3f}" in report
    assert "256 labelled pairs" not in report and "1024 labelled pairs" in report and "0.2 min (12 s)" in report
    assert (runs["online_dpo"] / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
