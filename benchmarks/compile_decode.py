"""Compiled decoding (issue 23's first lever): bpo's sampler with the model's forward under torch.compile
against the same sampler eager, in one process.

    python benchmarks/compile_decode.py [--threads 2] [--mode default|reduce-overhead|max-autotune-no-cudagraphs]

The standard policy (benchmarks/standard.py) with one LoRA (r 8, attention projections), 16 prompts x 2
responses of 64 new tokens per call (bpo.model.sampler.generate). Printed: the best of 3 eager calls, the
first compiled call (compilation included; inductor caches its artefacts on disk, so a second process
pays less: run the command twice to see both), the best of 3 compiled calls, and their ratio. Run by hand.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from standard import build  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", default="default", help="torch.compile's mode")
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "bpo-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bpo.model.sampler import SamplingSpec, generate

    setup = build("standard", Path(args.folder))
    tokenizer = AutoTokenizer.from_pretrained(setup.policy)
    model = AutoModelForCausalLM.from_pretrained(setup.policy).eval()
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    model = get_peft_model(model, lora)
    prompts = [tokenizer(p)["input_ids"] for p in setup.prompts[:16]]
    spec = SamplingSpec(max_new_tokens=64, temperature=1.0, batch_size=16)

    def call() -> float:
        torch.manual_seed(0)
        started = time.perf_counter()
        generate(model, tokenizer, prompts, 2, spec)
        return time.perf_counter() - started

    eager = min(call() for _ in range(3))
    print(f"eager: {eager:.2f} s per call", flush=True)
    model.forward = torch.compile(model.forward, dynamic=True, mode=None if args.mode == "default" else args.mode)
    print(f"first compiled call (compilation included): {call():.1f} s", flush=True)
    compiled = min(call() for _ in range(3))
    print(f"compiled: {compiled:.2f} s per call; speed-up {eager / compiled:.2f}x")


if __name__ == "__main__":
    main()
