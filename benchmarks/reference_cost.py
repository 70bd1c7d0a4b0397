"""Cost of a training step with the reference stored as data (BPO's behavior log-probs, recorded by
the sampler) against one that runs a reference forward pass per batch (a moving `sync` reference).

    python benchmarks/reference_cost.py [--model smollm2|reviews] [--steps 5] [--batch 8]

Both variants train the same ensemble on the same batch; the printed ratio is the per-step time of
the forward-pass variant over the stored variant, measured in the same run. Run by hand.
"""

from __future__ import annotations

import argparse
import time

import torch

from bpo.core.losses import bind_loss
from bpo.data.records import Pair, make_batch
from bpo.loop.build import cache_dir
from bpo.loop.config import LoraSpec, OptimSpec
from bpo.model.loading import load_causal_lm, load_tokenizer
from bpo.model.policy import EnsemblePolicy
from bpo.training.reference import SyncReference
from bpo.training.train_step import EnsembleOptimizer, train_step


def folder(name: str):
    if name == "smollm2":
        from bpo.model.pretrained import smollm2_folder

        return smollm2_folder(cache_dir(), progress=False)
    from bpo.tasks.reviews import sft_policy

    return sft_policy(cache_dir(), progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("smollm2", "reviews"), default="reviews")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    path = folder(args.model)
    policy = EnsemblePolicy(load_causal_lm(path), load_tokenizer(path), LoraSpec(ensemble=2))
    vocab = len(policy.tokenizer)
    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(10, vocab - 1, (n,), generator=g).tolist()  # noqa: E731
    pairs = [
        Pair(
            id=str(i),
            phase=0,
            prompt="",
            chosen="",
            rejected="",
            prompt_ids=ids(48),
            chosen_ids=ids(32),
            rejected_ids=ids(32),
            ref_chosen_logp=-50.0,
            ref_rejected_logp=-50.0,
        )
        for i in range(args.batch)
    ]
    batch = make_batch(pairs, policy.tokenizer.pad_token_id)
    optim = EnsembleOptimizer(policy, OptimSpec(), 1000)
    sync = SyncReference(every=10**9)
    sync.on_phase_start(policy, 0)
    loss = bind_loss("dpo", 0.1)
    timings = {}
    for name, reference in (
        ("stored", lambda: batch.stored_ref_logp),
        ("forward", lambda: sync.batch_logprobs(policy, batch)),
    ):
        train_step(policy, optim, batch, reference(), loss)  # warm-up
        started = time.perf_counter()
        for _ in range(args.steps):
            train_step(policy, optim, batch, reference(), loss)
        timings[name] = (time.perf_counter() - started) / args.steps
    print(f"{args.model}, {args.batch} pairs of 48+32 tokens, ensemble of 2, {torch.get_num_threads()} threads")
    print(f"stored reference (BPO behavior log-probs): {timings['stored']:.3f} s/step")
    print(f"reference forward pass per batch:          {timings['forward']:.3f} s/step")
    print(f"ratio forward / stored: {timings['forward'] / timings['stored']:.2f}")


if __name__ == "__main__":
    main()
