"""Loading Hugging Face models and tokenizers from local folders, safely.

Weights load from safetensors only unless pickle is explicitly allowed (then torch's weights_only
loader is used); remote code is never trusted unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bpo.configlib import option

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class PolicyConfig:
    path: str | None = option(None, help="local Hugging Face model folder of the initial policy; null: the task's built-in policy")
    dtype: str = option("float32", help="weights dtype (float32 on CPU; bfloat16 on GPU)", choices=tuple(DTYPES))
    allow_pickle: bool = option(False, help="allow loading pickle (*.bin) weights, with torch's weights_only loader")
    trust_remote_code: bool = option(False, help="run the model folder's own Python code (off: only transformers' code runs)")


class ModelFolderError(ValueError):
    """A model folder that cannot or must not be loaded; the message names the folder and the fix."""


def check_model_folder(path: str | Path, allow_pickle: bool = False) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    if not (folder / "config.json").is_file():
        raise ModelFolderError(f"{folder}: not a transformers model folder (no config.json)")
    has_safetensors = any(folder.glob("*.safetensors"))
    has_pickle = any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth"))
    if not has_safetensors and not has_pickle:
        raise ModelFolderError(f"{folder}: holds no weights (*.safetensors)")
    if not has_safetensors and not allow_pickle:
        raise ModelFolderError(
            f"{folder}: only pickle weights (*.bin/*.pt), which can run code when loaded; convert them to "
            "safetensors, or set allow_pickle=true to load them with torch's weights_only loader"
        )
    return folder


def load_causal_lm(
    path: str | Path, dtype: str = "float32", allow_pickle: bool = False, trust_remote_code: bool = False
):
    from transformers import AutoModelForCausalLM

    folder = check_model_folder(path, allow_pickle)
    return AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=DTYPES[dtype],
        use_safetensors=not allow_pickle or any(folder.glob("*.safetensors")),
        trust_remote_code=trust_remote_code,
    )


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(path), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:  # generation and batching need a pad id; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
