"""Loading Hugging Face models and tokenizers from local folders, safely.

Weights load from safetensors only unless pickle is explicitly allowed (then torch's weights_only
loader is used); remote code is never trusted unless asked for. Whatever transformers, safetensors or
the OS raise while a folder loads becomes a ModelFolderError naming the folder, and weights that do
not cover the model config.json describes (missing or mis-shaped tensors) are refused rather than
silently initialised at random.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bpo.common.configlib import option
from bpo.model.device import DEVICE_CHOICES, resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class PolicyConfig:
    path: str | None = option(
        None,
        may_change_on_resume=True,
        help="the initial policy: a local Hugging Face model folder or a Hub id (owner/name, @revision optional; read "
        "from the Hugging Face cache, HF_HUB_OFFLINE respected); null: the task's built-in policy",
    )
    dtype: str = option(
        "float32",
        help="weights dtype; float32 by default everywhere (on CUDA the forward passes run under bfloat16 autocast "
        "whatever this is)",
        choices=tuple(DTYPES),
    )
    allow_pickle: bool = option(
        False, may_change_on_resume=True, help="allow loading pickle (*.bin) weights, with torch's weights_only loader"
    )
    trust_remote_code: bool = option(
        False,
        may_change_on_resume=True,
        help="run the model folder's own Python code (off: only transformers' code runs)",
    )
    device: str = option(
        "auto",
        may_change_on_resume=True,
        help=f"where the run computes ({DEVICE_CHOICES}); auto: CUDA if torch sees it, else the CPU; bfloat16 "
        "autocast on CUDA",
    )
    gradient_checkpointing: bool = option(
        False,
        may_change_on_resume=True,
        help="recompute each layer's activations in the backward pass of preference training instead of keeping them: "
        "less memory, a slower step (TRL's online DPO does this by default); the results are the same",
    )

    def validate(self):
        resolve_device(self.device)  # a malformed name, or a CUDA device this machine lacks, is refused on load

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


class ModelFolderError(ValueError):
    """A model folder that cannot or must not be loaded; the message names the folder and the fix."""


def load_errors() -> tuple[type[BaseException], ...]:
    """What a from_pretrained call raises on a bad folder (caught around that call only)."""
    from safetensors import SafetensorError

    return (OSError, ValueError, RuntimeError, KeyError, ImportError, SafetensorError)


def load_failure(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "ignore_mismatched_sizes" in text:
        return "the weights' shapes do not match config.json (was vocab_size or hidden_size edited?)"
    if "trust_remote_code" in text:
        return "it needs its own Python code; set policy.trust_remote_code=true if you trust the folder"
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def quiet_transformers():
    """transformers' load report is replaced by our own one-line errors."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


@contextlib.contextmanager
def naming(setting: str | None):
    """A ModelFolderError raised inside names the setting that chose the folder (`policy.path: FOLDER: ...`),
    as every other bad value is named; None (a built-in or saved folder): as raised."""
    try:
        yield
    except ModelFolderError as err:
        if setting is None:
            raise
        raise ModelFolderError(f"{setting}: {err}") from None


def resolve_folder(path: str | Path) -> Path:
    """A model folder named by a local path or a Hub id (bpo.common.hub), as a local folder."""
    from bpo.common.hub import HubError, model_folder

    try:
        return model_folder(path)
    except HubError as err:
        raise ModelFolderError(str(err)) from None


def check_model_folder(path: str | Path, allow_pickle: bool = False) -> Path:
    folder = resolve_folder(path)
    if not folder.exists():
        raise ModelFolderError(f"{folder}: no such model folder")
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: is a file, expected a model folder (config.json, *.safetensors, tokenizer)")
    config = folder / "config.json"
    if not config.is_file():
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
    try:
        spec = json.loads(config.read_text(encoding="utf-8"))
    except OSError as err:
        raise ModelFolderError(f"{config}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ModelFolderError(f"{config}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        what = err.msg.removesuffix(" at")  # "Invalid control character at": json's message ends with "at"
        raise ModelFolderError(f"{config}:{err.lineno}: broken JSON ({what} at column {err.colno})") from None
    if not isinstance(spec, dict) or "model_type" not in spec:
        raise ModelFolderError(f"{config}: no 'model_type' key; not a transformers model config")
    return folder


def load_causal_lm(
    path: str | Path, dtype: str = "float32", allow_pickle: bool = False, trust_remote_code: bool = False
):
    from transformers import AutoModelForCausalLM

    folder = check_model_folder(path, allow_pickle)
    try:
        with quiet_transformers():
            model, info = AutoModelForCausalLM.from_pretrained(
                folder,
                dtype=DTYPES[dtype],
                use_safetensors=not allow_pickle or any(folder.glob("*.safetensors")),
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
            )
    except load_errors() as err:
        raise ModelFolderError(f"{folder}: cannot load the model: {load_failure(err)}") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelFolderError(
            f"{folder}: the weights lack {len(missing)} tensor(s) that config.json's model needs (e.g. {missing[0]}); "
            "they would start random, so the folder's weights and config.json do not belong together"
        )
    return model


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    folder = resolve_folder(path)
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except load_errors() as err:
        raise ModelFolderError(f"{folder}: cannot load the tokenizer: {load_failure(err)}") from None
    if tokenizer.pad_token_id is None:  # generation and batching need a pad id; EOS is the usual stand-in
        if tokenizer.eos_token is None:
            raise ModelFolderError(
                f"{folder}: the tokenizer has no EOS token (eos_token in tokenizer_config.json); responses need one "
                "to end"
            )
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ModelFolderError(
            f"{folder}: the tokenizer has no EOS token (eos_token in tokenizer_config.json); responses need one to end"
        )
    return tokenizer


def context_length(model) -> int | None:
    """The longest sequence (prompt + response) the model's positions allow, if its config says."""
    config = getattr(model, "config", model)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
