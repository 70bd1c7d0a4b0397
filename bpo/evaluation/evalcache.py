"""The initial policy's evaluation responses, generated once and reused.

Every run of a sweep (and every `bpo demo`) starts from the same SFT policy and answers the same held-out
prompts with the same seed, so the initial ("before") policy's responses are the same each time: they
are cached in $BPO_CACHE/initial-responses/KEY.json. Only the responses are cached; the judge scores
them again on every use, so a changed judge never reuses stale scores.

KEY hashes everything the responses depend on: the base model's weights (hashed in memory, LoRA factors
left out, so an SFT stage or another model folder gives another key), its config,
the tokenizer, the prompts' token ids, the sampling settings, the seed, the device type and dtype, and
the versions of torch and transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import torch

from bpo.common.files import atomic_write_text

# Bump when what the cached responses depend on changes in a way the key does not see.
# 2: bpo's own decoding loop (bpo.model.sampler) replaced transformers' generate (other draws for the same seed).
FORMAT = 2


def base_weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's weights by name, LoRA factors (the trained adapters) left out."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_digest(model: torch.nn.Module, tokenizer) -> str:
    """SHA-256 of what shapes the answers besides the weights: the model's config (rotary settings, norms:
    values no state_dict holds) and the tokenizer that decodes them (vocabulary, end and padding tokens).
    The generation config is left out: bpo's sampler never applies it (bpo.model.sampler)."""
    config = getattr(model, "config", None)
    parts = [
        config.to_json_string() if config is not None else "",
        json.dumps(sorted(tokenizer.get_vocab().items())),
        str(tokenizer.eos_token_id),
        str(tokenizer.pad_token_id),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def responses_key(
    weights: str, prompt_ids: Sequence[Sequence[int]], spec, seed: int, device: str, model: str = ""
) -> str:
    import transformers

    parts = {
        "format": FORMAT,
        "weights": weights,
        "model": model,
        "prompts": [list(p) for p in prompt_ids],
        "sampling": asdict(spec),
        "seed": seed,
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def cached_responses(folder: Path | None, key: str, generate: Callable[[], list[str]]) -> list[str]:
    """The responses stored under `key` in `folder`, else `generate()`'s, stored there (atomically) for next
    time. folder None: no cache, always generate."""
    if folder is None:
        return generate()
    path = Path(folder) / f"{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())["responses"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is generated again and replaced
    responses = generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # complete or absent; a temporary file of this process's own: parallel sweep processes may write the same entry
        atomic_write_text(
            path, json.dumps({"responses": responses}), tmp=path.with_name(f"{path.name}.{os.getpid()}.tmp")
        )
    except OSError as err:  # a read-only or full cache must not cost the run its evaluation
        warnings.warn(
            f"cannot store the initial policy's answers in {folder} ({err.strerror or err}); they will be generated "
            "again next time"
        )
    return responses
