"""The ensemble's cost and stability per `lora.training` (issue 12): the paper's independent members, members
on disjoint shares of each batch, and a jointly trained ensemble (the mean of the adapters).

    python benchmarks/ensemble.py speed [--sizes 2 5] [--steps 6] [--rounds 3] [--batch 10] [--threads 1]
    python benchmarks/ensemble.py stability [--seeds 0 1 2 3 4] [--steps 32] [--phases 4] [--batch 20] [--ensemble 5]

speed: train_step on the standard configuration's model (benchmarks/standard.py: Llama 4 x 256, vocabulary
4096, LoRA r 8 on the attention projections, float32, 64-token prompts and 64-token responses, DPO) on one
fixed batch of --batch pairs (10, not the standard 8, so that 1, 2 and 5 members all split it evenly), for
one adapter and for n = --sizes members under each training. Every variant is timed --rounds times,
interleaved (so a change of the machine's load hits all alike), --steps steps each after a warm-up step;
the median seconds per step and its ratio to the one-adapter step of this same run are printed, with the
share of the step spent refreshing the merged adapter.

stability: `bpo train task=reviews` (method bpo, T = --steps, F = --phases, B = --batch pairs per step, a
multiple of --ensemble) for one adapter and for n = --ensemble members under each training, over --seeds;
printed per variant, mean ± standard deviation over the seeds of: the strict win rate against the
references (sampled evaluation, 128 held-out prompts; the initial policy's too), the loss curve's step-to-step
variation (root mean
square of loss[t] - loss[t-1] over consecutive steps of one phase: a phase start resets the reference to
the policy) and the final loss (mean of the last 4 steps). F < T, because with F = T the reference of
every step is the policy itself, so one adapter's (and the joint mean's) loss is log 2 at every step. The
logged loss is the step's loss over the batch: for independent the mean over members, for disjoint each
pair under the member that trained on it, for joint the loss of the mean policy.

Run by hand (minutes), never as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TRAININGS = ("independent", "disjoint", "joint")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- speed -----------------------------------------------------------------------------------------------


def fixed_batch(tokenizer, pairs: int, prompt: int, response: int):
    import torch

    from bpo.data.records import Pair, make_batch

    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(3, len(tokenizer), (n,), generator=g).tolist()  # noqa: E731
    rows = [
        Pair(
            id=str(i),
            phase=0,
            prompt="",
            chosen="",
            rejected="",
            prompt_ids=ids(prompt),
            chosen_ids=ids(response),
            rejected_ids=ids(response),
            ref_chosen_logp=-300.0,
            ref_rejected_logp=-300.0,
        )
        for i in range(pairs)
    ]
    return make_batch(rows, tokenizer.pad_token_id)


def speed(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from standard import LORA_RANK, NEW_TOKENS, PROMPT_TOKENS, build

    from bpo.core.losses import bind_loss
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.policy import EnsemblePolicy, LoraSpec
    from bpo.training.train_step import EnsembleOptimizer, OptimSpec, train_step

    setup = build("standard", Path(args.folder))
    tokenizer = load_tokenizer(setup.policy)
    batch = fixed_batch(tokenizer, args.batch, PROMPT_TOKENS, NEW_TOKENS)
    variants = [("1 adapter", 1, "independent")] + [(f"{t} x{n}", n, t) for n in args.sizes for t in TRAININGS]
    runs = {}
    for name, n, training in variants:
        spec = LoraSpec(rank=LORA_RANK, alpha=2.0 * LORA_RANK, ensemble=n, training=training)
        policy = EnsemblePolicy(load_causal_lm(setup.policy), tokenizer, spec, seed=0)
        optim = EnsembleOptimizer(policy, OptimSpec(lr=1e-3), 10**6)
        runs[name] = (policy, optim, [])

    def one_step(policy, optim):
        train_step(policy, optim, batch, batch.stored_ref_logp, bind_loss("dpo", 0.1))

    print(f"load average before: {load_average()}", flush=True)
    for policy, optim, _ in runs.values():
        one_step(policy, optim)  # warm-up
    refresh = {}
    for r in range(args.rounds):
        for name, (policy, optim, times) in runs.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                one_step(policy, optim)
            times.append((time.perf_counter() - started) / args.steps)
            started = time.perf_counter()
            for _ in range(args.steps):
                policy.refresh_merged()
            refresh.setdefault(name, []).append((time.perf_counter() - started) / args.steps)
        print(f"round {r + 1}/{args.rounds} done, load average {load_average()}", flush=True)
    base = statistics.median(runs["1 adapter"][2])
    print(
        f"\nstandard model, {args.batch} pairs of {PROMPT_TOKENS}+{NEW_TOKENS} tokens per step, {args.threads} "
        "thread(s); "
        f"median of {args.rounds} rounds of {args.steps} steps"
    )
    print(f"{'variant':<18}{'s/step':>9}{'x 1 adapter':>13}{'per member':>12}{'refresh %':>11}")
    for name, n, _ in variants:
        t = statistics.median(runs[name][2])
        print(
            f"{name:<18}{t:>9.3f}{t / base:>13.2f}{t / base / n:>12.2f}"
            f"{100 * statistics.median(refresh[name]) / t:>11.1f}"
        )
    print(f"load average after: {load_average()}")


# ---- stability -------------------------------------------------------------------------------------------


def train_reviews(root: Path, name: str, seed: int, args, extra: list[str]) -> dict:
    from bpo.cli import main

    out = root / f"{name.replace(' ', '_')}-s{seed}"
    code = main(
        [
            "train",
            "task=reviews",
            "method=bpo",
            f"schedule.steps={args.steps}",
            f"schedule.phases={args.phases}",
            f"schedule.batch_size={args.batch}",
            f"seed={seed}",
            "eval.kl=false",
            f"out={out}",
            *extra,
            "--quiet",
        ]
    )
    assert code == 0, (name, seed)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    steps = [b["loss"] - a["loss"] for a, b in zip(rows, rows[1:]) if a["phase"] == b["phase"]]
    result = json.loads((out / "eval.json").read_text())
    return {
        "strict": result["strict_win_rate"],
        "initial": result["before"]["strict_win_rate"],
        "variation": (sum(d * d for d in steps) / len(steps)) ** 0.5,
        "final": statistics.mean(losses[-4:]),
    }


def stability(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.batch % args.ensemble:
        raise SystemExit(f"--batch {args.batch} must be a multiple of --ensemble {args.ensemble} (disjoint shares)")
    variants = [("1 adapter", ["lora.ensemble=1"])] + [
        (f"{t} x{args.ensemble}", [f"lora.ensemble={args.ensemble}", f"lora.training={t}"]) for t in TRAININGS
    ]
    print(f"load average before: {load_average()}", flush=True)
    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, extra in variants:
                t0 = time.time()
                results.setdefault(name, []).append(train_reviews(Path(tmp), name, seed, args, extra))
                r = results[name][-1]
                print(
                    f"{name} seed {seed}: strict {r['strict']:.3f}, variation {r['variation']:.4f}, final loss "
                    f"{r['final']:.4f} "
                    f"({time.time() - t0:.0f} s, load {load_average()})",
                    flush=True,
                )

    def cell(name: str, key: str, digits: int) -> str:
        values = [r[key] for r in results[name]]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

    print(
        f"\nreviews, method bpo, T = {args.steps}, F = {args.phases}, B = {args.batch}, seeds {args.seeds}; mean ± "
        "std over seeds "
        f"({time.time() - started:.0f} s, load average after {load_average()})"
    )
    print("| variant | strict win rate | loss step-to-step variation | final loss |\n| --- | --- | --- | --- |")
    for name, _ in variants:
        print(f"| {name} | {cell(name, 'strict', 3)} | {cell(name, 'variation', 4)} | {cell(name, 'final', 4)} |")
    print(f"| initial policy | {cell(variants[0][0], 'initial', 3)} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--sizes", type=int, nargs="+", default=[2, 5])
    s.add_argument("--steps", type=int, default=6)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--batch", type=int, default=10)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument(
        "--folder",
        default=str(Path(tempfile.gettempdir()) / "bpo-bench"),
        help="where the standard models are built once",
    )
    t = sub.add_parser("stability")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    t.add_argument("--steps", type=int, default=32)
    t.add_argument("--phases", type=int, default=4)
    t.add_argument("--batch", type=int, default=20)
    t.add_argument("--ensemble", type=int, default=5)
    t.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    speed(args) if args.mode == "speed" else stability(args)


if __name__ == "__main__":
    main()
