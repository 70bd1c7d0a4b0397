"""What a run folder holds and how later commands use it: the SFT'd base is kept, `--resume` of a
folder without a run is refused before anything is built, and BPO's stored reference log-probs are
those of the policy as it was when the pair's phase started."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tinytask import run_args, write_task

import bpo.loop.build
import bpo.loop.online
import bpo.training.sft
from bpo.cli import main
from bpo.run.checkpoint import load_latest


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinytask")
    write_task(folder)
    return folder


def forbid(monkeypatch, owner, name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} must not run here")

    monkeypatch.setattr(owner, name, refuse)


# ------------------------------------------------------------------------------------- --resume


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_resume_of_a_folder_without_a_run_is_refused_before_anything_is_built(tmp_path, monkeypatch, capsys, make):
    """Before the fix, `--resume` built the task and the policy (training the built-in SFT policy)
    with default settings, then refused. Now nothing is built and the folder is named."""
    forbid(monkeypatch, bpo.loop.online, "build_task")
    forbid(monkeypatch, bpo.loop.online, "load_base")
    folder = tmp_path / "not-a-run"
    if make == "empty":
        folder.mkdir()
    elif make == "file":
        folder.mkdir()
        (folder / "notes.txt").write_text("hello")
    assert main(["train", "--resume", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and ("holds no run" in err or "no such run folder" in err)
    assert folder.exists() == (make != "missing")  # nothing created


# ------------------------------------------------------------------------------------- SFT base


@pytest.fixture(scope="module")
def sft_run(task_dir):
    out = task_dir / "with-sft"
    assert main(run_args(task_dir, out, "sft.steps=3", "sft.lr=0.01", "sft.batch_size=8")) == 0
    return out


def test_sft_stage_result_is_saved_in_the_run_folder(sft_run, task_dir):
    """The saved base differs from the initial model (SFT trained every weight) and is safetensors."""
    base = sft_run / "sft-base"
    assert (base / "config.json").is_file() and (base / "model.safetensors").is_file()
    tuned = load_file(str(base / "model.safetensors"))
    initial = load_file(str(task_dir / "model" / "model.safetensors"))
    key = "model.embed_tokens.weight"
    assert (tuned[key] - initial[key]).abs().max() > 1e-4


def test_eval_export_and_resume_use_the_saved_base_without_redoing_sft(sft_run, tmp_path, monkeypatch):
    """With SFT made impossible, eval reproduces eval.json exactly (same base + adapters), export
    writes the saved base's non-LoRA weights, and resuming the finished run works."""
    forbid(monkeypatch, bpo.training.sft, "supervised_finetune")
    before = json.loads((sft_run / "eval.json").read_text())
    assert main(["eval", str(sft_run), "--quiet"]) == 0
    after = json.loads((sft_run / "eval.json").read_text())
    assert after["examples"] == before["examples"] and after["win_rate"] == before["win_rate"]

    assert main(["export", str(sft_run), str(tmp_path / "exported"), "--quiet"]) == 0
    exported = load_file(str(tmp_path / "exported" / "model.safetensors"))
    tuned = load_file(str(sft_run / "sft-base" / "model.safetensors"))
    key = "model.embed_tokens.weight"  # not adapted by LoRA: exactly the SFT'd base's
    assert torch.equal(exported[key], tuned[key])

    assert main(["train", "--resume", str(sft_run), "--quiet"]) == 0


# ----------------------------------------------------------------- BPO's reference = pi_beta


def teacher_forced_logp(model, prompt_ids: list[int], response_ids: list[int]) -> float:
    """sum_t log p(y_t | x, y_<t), one unpadded sequence, straight from the logits."""
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(prompt_ids)
    return float(sum(logp[start + t - 1, tok] for t, tok in enumerate(response_ids)))


def test_bpo_reference_logprobs_are_the_policy_at_the_start_of_the_pairs_phase(task_dir, tmp_path):
    """Phase 1 starts after step 3: its pairs' stored reference log-probs must equal a teacher-forced
    pass of the merged policy restored from the step-3 checkpoint, and differ from the SFT policy's
    and from the final policy's (so the test can tell the three apart)."""
    from bpo.common.configlib import load_config
    from bpo.loop.config import RunConfig
    from bpo.model.policy import MERGED

    out = tmp_path / "bpo"
    assert main(run_args(task_dir, out, "checkpoint.every=0", "optim.lr=0.01")) == 0
    cfg = load_config(RunConfig, out / "config.yaml")
    policy = bpo.loop.build.build_policy(cfg, bpo.loop.build.build_task(cfg), progress=False)
    checkpoints = sorted((out / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["step-000003", "step-000006"]
    (out / "checkpoints" / "step-000006" / "COMPLETE").unlink()  # make step 3 the latest complete one
    with pytest.warns(UserWarning, match="partial checkpoint"):
        policy.load_member_states(load_latest(out / "checkpoints").members)
    pairs = [json.loads(line) for line in (out / "pairs" / "phase-001.jsonl").read_text().splitlines()]
    final = bpo.loop.build.build_policy(cfg, bpo.loop.build.build_task(cfg), progress=False)
    final.load_members(out / "adapters")
    gaps_sft, gaps_final = [], []
    for pair in pairs[:6]:
        for side in ("chosen", "rejected"):
            with policy.use(MERGED) as model:
                at_phase_start = teacher_forced_logp(model, pair["prompt_ids"], pair[f"{side}_ids"])
            with policy.use(None) as model:
                sft = teacher_forced_logp(model, pair["prompt_ids"], pair[f"{side}_ids"])
            with final.use(MERGED) as model:
                now = teacher_forced_logp(model, pair["prompt_ids"], pair[f"{side}_ids"])
            assert abs(pair[f"ref_{side}_logp"] - at_phase_start) < 1e-4
            gaps_sft.append(abs(at_phase_start - sft))
            gaps_final.append(abs(at_phase_start - now))
    assert max(gaps_sft) > 1e-2 and max(gaps_final) > 1e-2
