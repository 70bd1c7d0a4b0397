"""bpo against TRL's online DPO on the standard configuration (benchmarks/standard.py), side by side.

    pip install trl            # not a bpo dependency; TRL 1.x keeps the trainer in trl.experimental
    python benchmarks/compare_trl.py [--model standard|smollm2] [--steps 8] [--variants online_dpo bpo bpo-F2]

TRL's OnlineDPOTrainer runs on the same model, tokenizer, prompts and reward model: T = --steps steps of
8 prompts (2 responses of 64 new tokens each, labelled by the reward model), sigmoid (DPO) loss, beta 0.1,
the same LoRA (r 8 on the attention projections, through peft_config), float32 (bf16=False), on the CPU,
reference = the model with its adapter disabled (a reference forward pass per step). Each run (TRL first,
then the bpo variants of benchmarks/online.py) is a fresh child process of this one command, so peak
memory is each run's own. Printed: pairs per second of the training loop (TRL: its train() call; bpo:
the loop, without start-up and final evaluation) and peak resident memory, each as a ratio to TRL's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from online import VARIANTS, in_child, run_overrides, run_variant  # noqa: E402
from standard import NEW_TOKENS, PROMPTS_PER_STEP, build, peak_rss_mib  # noqa: E402


def run_trl(setup, steps: int, threads: int, out: str, gradient_checkpointing: bool = False) -> dict:
    """TRL's online DPO in this (child) process: pairs per second of trainer.train(), peak memory."""
    import os
    import warnings

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    try:
        from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer
    except ImportError:  # TRL 0.x kept it at the top level
        from trl import OnlineDPOConfig, OnlineDPOTrainer

    from bpo.model.policy import LoraSpec, peft_config

    tokenizer = AutoTokenizer.from_pretrained(setup.policy)
    model = AutoModelForCausalLM.from_pretrained(setup.policy, dtype=torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(setup.reward, num_labels=1, dtype=torch.float32)
    args = OnlineDPOConfig(
        output_dir=out,
        per_device_train_batch_size=PROMPTS_PER_STEP,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=1e-3,
        beta=[0.1],
        loss_type="sigmoid",
        max_new_tokens=NEW_TOKENS,
        temperature=1.0,
        bf16=False,
        fp16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
        # TRL's default is True (recompute activations in the backward pass: less memory, more time); bpo does
        # not checkpoint, so the same settings means off unless --trl-gradient-checkpointing asks for TRL's default
        gradient_checkpointing=gradient_checkpointing,
    )
    trainer = OnlineDPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": setup.prompts[: steps * PROMPTS_PER_STEP]}),
        processing_class=tokenizer,
        reward_processing_classes=tokenizer,
        peft_config=peft_config(LoraSpec(ensemble=1)),
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    pairs = steps * PROMPTS_PER_STEP
    return {
        "variant": "trl",
        "pairs": pairs,
        "loop_s": seconds,
        "pairs_per_s": pairs / seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("standard", "smollm2"), default="standard")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["online_dpo", "bpo", "bpo-F2"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "bpo-bench"))
    parser.add_argument(
        "--trl-gradient-checkpointing",
        action="store_true",
        help="run TRL with its default gradient checkpointing (less memory, slower); bpo does not checkpoint",
    )
    args = parser.parse_args()
    setup = build(args.model, Path(args.folder))
    with tempfile.TemporaryDirectory() as runs:
        results = [
            in_child(run_trl, setup, args.steps, args.threads, str(Path(runs) / "trl"), args.trl_gradient_checkpointing)
        ]
        print(f"trl: {results[0]['pairs_per_s']:.2f} pairs/s", flush=True)
        for name in args.variants:
            results.append(
                in_child(
                    run_variant, name, run_overrides(setup, args.steps, Path(runs) / name, VARIANTS[name]), args.threads
                )
            )
            print(f"{name}: {results[-1]['pairs_per_s']:.2f} pairs/s", flush=True)
    trl = results[0]
    print(
        f"\n{args.model}: T = {args.steps} steps of {PROMPTS_PER_STEP} prompts x 2 responses of {NEW_TOKENS} tokens, "
        f"{args.threads} threads"
    )
    limit = results[1]["limit_pairs_per_s"] if len(results) > 1 else None  # measured in a bpo run
    print(f"{'run':<12}{'pairs/s':>9}{'x TRL':>7}{'loop s':>8}{'RSS MiB':>9}{'x TRL':>7}{'of limit':>9}")
    for r in results:
        print(
            f"{r['variant']:<12}{r['pairs_per_s']:>9.2f}{r['pairs_per_s'] / trl['pairs_per_s']:>7.2f}"
            f"{r['loop_s']:>8.1f}"
            f"{r['peak_rss_mib']:>9.0f}{r['peak_rss_mib'] / trl['peak_rss_mib']:>7.2f}"
            f"{r['pairs_per_s'] / limit if limit else float('nan'):>9.2f}"
        )
    if limit:
        print(
            f"(the limit: {results[1]['gflop_per_pair']:.1f} GFLOP per pair at the float32 matmul rate: {limit:.1f} "
            "pairs/s; benchmarks/online.py)"
        )


if __name__ == "__main__":
    main()
