"""The tiny word-level language models of the built-in fast tasks (reviews, sorting).

A task with a closed vocabulary gets a word-level fast tokenizer over it and a randomly initialised
small Llama; `sft_policy` fine-tunes that model on the task's demonstrations once and caches it
(bpo.common.cachefolder: a folder in place is always complete), named by the task and the SFT settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bpo.common.cachefolder import cached_folder
from bpo.data.task import Task

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>")


@dataclass(frozen=True)
class TinyPolicyConfig:
    hidden_size: int = 64
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 128  # prompts and responses of the tasks are ~10-20 tokens each


def build_tokenizer(vocabulary: Sequence[str]):
    """A word-level fast tokenizer over `vocabulary` that prepends <bos> when add_special_tokens=True.

    It splits text as \\w+ or [^\\w\\s]+ runs (the tasks' judges split the same way); other words are <unk>.
    """
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + tuple(vocabulary))}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = Whitespace()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    core.post_processor = TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_tiny_policy(
    out_dir: Path, vocabulary: Sequence[str], seed: int = 0, config: TinyPolicyConfig = TinyPolicyConfig()
) -> Path:
    """Save a word-level tokenizer over `vocabulary` and a randomly initialised tiny Llama (fp32) to out_dir."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(vocabulary)
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama_config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@dataclass(frozen=True)
class SFTRecipe:
    """How a task's tiny policy is fine-tuned; part of the cache folder's name."""

    steps: int
    batch_size: int
    lr: float
    policy: TinyPolicyConfig = TinyPolicyConfig()


def sft_policy(
    cache_dir: Path,
    name: str,
    settings: dict,
    vocabulary: Sequence[str],
    build_task: Callable[[], Task],
    recipe: SFTRecipe,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """The tiny policy fine-tuned on `build_task().demonstrations`, cached as
    cache_dir/<name>-sft-<digest of settings>; its folder. `settings` must name everything that changes
    the result (the task's data version, the recipe, the seed); `seed` seeds the init and the batches."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]

    def train(folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from bpo.training.sft import supervised_finetune

        build_tiny_policy(folder, vocabulary, seed=seed, config=recipe.policy)
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        task = build_task()
        supervised_finetune(
            model,
            tokenizer,
            task.demonstrations,
            steps=recipe.steps,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            seed=seed,
            chat_template=task.chat_template,
            progress=progress,
        )
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    return cached_folder(Path(cache_dir) / f"{name}-sft-{digest}", train, stamp=settings)
