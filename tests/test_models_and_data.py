"""Real loading code on tiny local models: export and reload, safety refusals, preference files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tinytask import run_args, write_task

from bpo.cli import main
from bpo.data.prefdata import PreferenceRecord, read_preferences, write_preferences
from bpo.model.loading import ModelFolderError, check_model_folder, load_causal_lm
from bpo.model.policy import MERGED


def test_pickle_only_folder_is_refused_unless_allowed(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    model = load_causal_lm(tiny_model_dir)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelFolderError, match="only pickle weights"):
        check_model_folder(folder)
    assert check_model_folder(folder, allow_pickle=True) == folder
    loaded = load_causal_lm(folder, allow_pickle=True)
    ids = torch.tensor([[2, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_folder_without_weights_or_config_is_refused(tmp_path):
    with pytest.raises(ModelFolderError, match="no such model folder"):
        check_model_folder(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="holds no weights"):
        check_model_folder(tmp_path)


def test_export_loads_with_transformers_and_matches_merged_policy(tmp_path):
    from transformers import AutoModelForCausalLM

    task = write_task(tmp_path / "t").parent
    run = tmp_path / "run"
    assert main(run_args(task, run, "checkpoint.every=0")) == 0
    assert main(["export", str(run), str(tmp_path / "exported"), "--quiet"]) == 0
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "exported").eval()
    assert list((tmp_path / "exported").glob("*.safetensors"))
    # The same merged policy, rebuilt from the run's peft adapters.
    from bpo.api import open_trained as load_run

    _, _, _, policy = load_run(str(run), progress=False)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    with torch.no_grad(), policy.use(MERGED) as merged:
        assert torch.allclose(exported(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-5)
    with torch.no_grad(), policy.use(None) as base:
        assert not torch.allclose(exported(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-4)


def test_vocabulary_mismatch_of_fixed_reference_is_refused(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    task = write_task(tmp_path / "t").parent
    other = tmp_path / "other"
    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, "x": 3}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    ).save_pretrained(other)
    LlamaForCausalLM(
        LlamaConfig(vocab_size=4, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(other)
    code = main(
        run_args(
            task,
            tmp_path / "run",
            "method=online_dpo",
            "schedule.phases=null",
            "reference.kind=fixed",
            f"reference.path={other}",
        )
    )
    assert code == 2
    assert "vocabulary differs from the policy's (4 vs 64 tokens)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run folder is created


def test_preference_file_round_trip_plain_and_conversational(tmp_path):
    """A conversational file's prompt reads back as a conversation (one user turn), not as its text."""
    records = [PreferenceRecord("a", "hi", "hello there", "go away"), PreferenceRecord("b", "q?", "yes", "no")]
    write_preferences(tmp_path / "prefs-False.jsonl", records, layout="plain")
    assert read_preferences(tmp_path / "prefs-False.jsonl") == records
    write_preferences(tmp_path / "prefs-True.jsonl", records, layout="conversational")
    talks = [PreferenceRecord(r.id, [{"role": "user", "content": r.prompt}], r.chosen, r.rejected) for r in records]
    assert read_preferences(tmp_path / "prefs-True.jsonl") == talks
    row = json.loads((tmp_path / "prefs-True.jsonl").read_text().splitlines()[0])
    assert row["prompt"] == [{"role": "user", "content": "hi"}]


def test_offline_baseline_trains_from_a_preference_file(tmp_path):
    task = write_task(tmp_path / "t").parent
    prefs = tmp_path / "prefs.jsonl"
    write_preferences(
        prefs, [PreferenceRecord(f"r{i}", f"w{i % 20 + 4} w5", "w40 w41", "w10 w11 w12") for i in range(24)]
    )
    run = tmp_path / "run"
    args = run_args(task, run, "method=offline_dpo", "schedule.phases=1", f"data.pairs={prefs}")
    assert main(args) == 0
    pairs = [json.loads(line) for line in (run / "pairs" / "phase-000.jsonl").read_text().splitlines()]
    assert [p["id"] for p in pairs] == [f"r{i}" for i in range(24)]
    assert all(p["ref_chosen_logp"] is not None and p["behavior_chosen_logp"] is None for p in pairs)
