"""bpo's sampler against transformers' `generate`, and the shared-prompt pass against the full pass (issue 12).

    python benchmarks/sampler.py [--model standard|smollm2] [--threads 2]

sampling  64 prompts x 2 responses of 64 new tokens (the standard configuration's), at 8, 32 and 64 prompts
          per call: bpo.model.sampler.generate against `model.generate` called as bpo called it before its own
          loop (do_sample, top_k 0, the raw logits kept to read the behavior log-probs); best of 3
training  one forward and backward of 8 pairs through the policy's LoRA (DPO's log-probs, summed): each
          pair's prompt run once (bpo.model.logprobs.pair_sequence_logprobs) against the full rows; median of 5
Ratios are printed per row, both timings measured in this one process. Run by hand, never as a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standard import NEW_TOKENS, PROMPT_TOKENS, build  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def transformers_generate(model, tokenizer, prompt_ids, n: int, batch_size: int) -> None:
    from bpo.data.tokens import collate

    for start in range(0, len(prompt_ids), batch_size):
        ids, attention, _ = collate(
            prompt_ids[start : start + batch_size],
            [[]] * len(prompt_ids[start : start + batch_size]),
            tokenizer.pad_token_id,
            side="left",
        )
        model.generate(
            input_ids=ids,
            attention_mask=attention,
            max_new_tokens=NEW_TOKENS,
            num_return_sequences=n,
            do_sample=True,
            top_k=0,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("standard", "smollm2"), default="standard")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "bpo-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from bpo.data.records import Pair, make_batch
    from bpo.loop.config import LoraSpec, SamplingSpec
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.logprobs import pair_sequence_logprobs
    from bpo.model.policy import MERGED, EnsemblePolicy
    from bpo.model.sampler import generate

    setup = build(args.model, Path(args.folder))
    tokenizer = load_tokenizer(setup.policy)
    policy = EnsemblePolicy(load_causal_lm(setup.policy), tokenizer, LoraSpec(ensemble=1), seed=0)
    prompt_ids = [tokenizer(p)["input_ids"][:PROMPT_TOKENS] for p in setup.prompts[:64]]
    print(f"{args.model}, {args.threads} threads: sampling 64 prompts x 2 responses of {NEW_TOKENS} tokens (best of 3)")
    with policy.use(MERGED) as model:
        for per_call in (8, 32, 64):
            spec = SamplingSpec(max_new_tokens=NEW_TOKENS, batch_size=per_call)
            theirs = best_of(lambda: transformers_generate(model, tokenizer, prompt_ids, 2, per_call))
            ours = best_of(lambda: generate(model, tokenizer, prompt_ids, 2, spec))
            print(
                f"  {per_call:>2} prompts per call: generate {theirs:.2f} s, bpo {ours:.2f} s, {theirs / ours:.2f}x",
                flush=True,
            )
    generator = torch.Generator().manual_seed(0)
    answer = lambda: torch.randint(3, len(tokenizer), (NEW_TOKENS // 2,), generator=generator).tolist()  # noqa: E731
    batch = make_batch(
        [Pair(str(i), 0, "", "", "", ids, answer(), answer()) for i, ids in enumerate(prompt_ids[:8])],
        tokenizer.pad_token_id,
    )
    model = policy.train_member(0)

    def step(share: bool) -> float:
        started = time.perf_counter()
        pair_sequence_logprobs(
            model, batch.input_ids, batch.attention_mask, batch.response_mask, share_prompt=share
        ).sum().backward()
        return time.perf_counter() - started

    step(True), step(False)  # warm-up
    shared, full = (statistics.median(step(share) for _ in range(5)) for share in (True, False))
    print(
        f"training pass, 8 pairs of {PROMPT_TOKENS} + {NEW_TOKENS // 2} tokens (median of 5): full rows {full:.3f} s, "
        f"prompt once {shared:.3f} s, {full / shared:.2f}x"
    )


if __name__ == "__main__":
    main()
