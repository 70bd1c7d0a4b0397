"""Shared fixtures: tiny models built locally from a config (no hub), saved and loaded back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

WORDS = ["<pad>", "<unk>", "<bos>", "<eos>"] + [f"w{i}" for i in range(60)]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def save_tiny_llama(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=2 * hidden,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def make_policy(
    folder: Path, ensemble: int = 3, rank: int = 4, merge: str = "exact", perturb: float = 0.2, seed: int = 0
):
    """An EnsemblePolicy on the tiny model whose members are perturbed away from zero (so they differ)."""
    from bpo.loop.config import LoraSpec
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.policy import EnsemblePolicy

    policy = EnsemblePolicy(
        load_causal_lm(folder),
        load_tokenizer(folder),
        LoraSpec(rank=rank, alpha=2.0 * rank, ensemble=ensemble, merge=merge),
        seed=seed,
    )
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for i in range(ensemble):
            for p in policy.member_parameters(i):
                p.add_(perturb * torch.randn(p.shape, generator=g))
    policy.refresh_merged()
    return policy
