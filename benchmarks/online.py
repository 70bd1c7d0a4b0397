"""Throughput of whole online runs on the standard configuration (benchmarks/standard.py, issue 12).

    python benchmarks/online.py [--model standard|smollm2] [--steps 8] [--variants bpo bpo-F2 ...] [--threads 2]

For each variant, one `bpo train` run (bpo.loop.online.run_online, in process) of T = --steps steps of 8 pairs,
timed section by section: sampling (the behavior policy's two responses per prompt), annotation (the
reward-model judge), reference scoring (stored or per-batch reference log-probs), training (the optimiser
steps), evaluation (the final one: trained and initial policy on the held-out prompts), and the rest
(model loading and checks before the loop, writing pairs and checkpoints). Printed per variant:

    pairs/s     N / the loop's time (sampling + annotation + reference + training + writing; no start-up,
                no final evaluation: what a trainer's train() call covers)
    peak RSS    the child process's peak resident memory up to the end of the training loop, as TRL's
                train() (each variant runs in its own process, in turn; with the final evaluation:
                peak_rss_with_eval_mib)
    train FLOP/s  FLOPs of one training step (torch's FlopCounterMode, forward and backward as run) / the
                run's mean step time, as a fraction of a float32 matmul's FLOP/s measured in the same process

Ratios are to the first variant, measured in this one command. Run by hand (minutes), never as a test.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from standard import NEW_TOKENS, PROMPT_TOKENS, PROMPTS_PER_STEP, build, matmul_flops, peak_rss_mib  # noqa: E402

VARIANTS = {
    "online_dpo": ["method=online_dpo"],  # F = T; the SFT reference scored once per phase
    "bpo": ["method=bpo"],  # F = T; the behavior log-probs come from sampling (no reference pass)
    "bpo-F2": ["method=bpo", "schedule.phases=2"],  # two phases: each samples half of the N pairs at once
    "bpo-F2-x5": ["method=bpo", "schedule.phases=2", "lora.ensemble=5"],  # the paper's ensemble of 5
    "bpo-no-phase-kl": ["method=bpo", "guard.phase_kl_pairs=0"],  # F = T without the guard's phase-end KL pass
    "bpo-gc": [
        "method=bpo",
        "policy.gradient_checkpointing=true",
    ],  # F = T, activations recomputed in the backward pass
}
SECTIONS = ("setup", "sampling", "annotation", "reference", "training", "evaluation")


def run_overrides(setup, steps: int, out: Path, extra: list[str]) -> list[str]:
    """The standard settings as `bpo train` overrides (`extra` last, so a variant can change them)."""
    return [
        f"task={setup.task}",
        f"policy.path={setup.policy}",
        "policy.device=cpu",
        "loss=dpo",
        "beta=0.1",
        "seed=0",
        f"schedule.steps={steps}",
        f"schedule.batch_size={PROMPTS_PER_STEP}",
        f"sampling.max_new_tokens={NEW_TOKENS}",
        "sampling.temperature=1.0",
        f"sampling.batch_size={steps * PROMPTS_PER_STEP}",  # a phase's prompts in one call
        "lora.rank=8",
        "lora.alpha=16",
        "lora.ensemble=1",
        "annotator.kind=reward_model",
        f"annotator.judge={setup.reward}",
        "eval.prompts=32",
        "optim.lr=1e-3",
        f"out={out}",
        *extra,
    ]


class Timers:
    """Seconds per section; a section entered again inside itself (a subclass calling its base) counts once."""

    def __init__(self):
        self.seconds, self.depth = defaultdict(float), defaultdict(int)

    def wrap(self, section: str, fn):
        def timed(*args, **kwargs):
            self.depth[section] += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth[section] -= 1
                if not self.depth[section]:
                    self.seconds[section] += time.perf_counter() - started

        return timed


def instrument(timers: Timers, last_step: dict) -> None:
    """Time the loop's pieces where bpo.loop.online and bpo.judging.pairs call them (the library itself is
    unchanged)."""
    import bpo.judging.pairs
    import bpo.loop.online
    import bpo.training.reference

    bpo.judging.pairs.generate = timers.wrap("sampling", bpo.judging.pairs.generate)
    build_judges = bpo.loop.online.build_judges

    def timed_judges(*args, **kwargs):
        annotator, eval_judge = build_judges(*args, **kwargs)
        annotator.label = timers.wrap("annotation", annotator.label)
        return annotator, eval_judge

    bpo.loop.online.build_judges = timed_judges
    for cls in vars(bpo.training.reference).values():
        if isinstance(cls, type) and issubclass(cls, bpo.training.reference.ReferenceStrategy):
            for name in ("label_pairs", "batch_logprobs"):
                if name in vars(cls):
                    setattr(cls, name, timers.wrap("reference", vars(cls)[name]))
    train_step = bpo.loop.online.train_step

    def remembered(*args, **kwargs):
        last_step.update(args=args, kwargs=kwargs)
        return train_step(*args, **kwargs)

    bpo.loop.online.train_step = timers.wrap("training", remembered)
    bpo.loop.online.open_session = timers.wrap("setup", bpo.loop.online.open_session)
    evaluate_run = timers.wrap("evaluation", bpo.loop.online.evaluate_run)

    def evaluate_after_noting_the_loop_s_peak(*args, **kwargs):
        last_step["loop_peak_rss_mib"] = peak_rss_mib()  # set-up and training loop: what TRL's train() covers
        return evaluate_run(*args, **kwargs)

    bpo.loop.online.evaluate_run = evaluate_after_noting_the_loop_s_peak


def step_flops(last_step: dict) -> int:
    """FLOPs of one more training step on the run's last batch, as torch counts them (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    import bpo.training.train_step

    with FlopCounterMode(display=False) as counter:
        bpo.training.train_step.train_step(*last_step["args"], **last_step["kwargs"])
    return counter.get_total_flops()


def sampling_flops_per_pair(model, prompt_tokens: int, new_tokens: int) -> float:
    """The matmul FLOPs of sampling one pair: 2 x (the weights every token passes: all but the input
    embedding) per token, over the prompt once and the two responses' new tokens (the prompt's cache is
    shared by both; attention's own products are left out, a few percent here)."""
    embedding = model.get_input_embeddings().weight.numel()
    weights = sum(p.numel() for p in model.parameters()) - embedding
    if model.config.tie_word_embeddings:
        weights += embedding  # the vocabulary head is the embedding again
    return 2.0 * weights * (prompt_tokens + 2 * new_tokens)


def run_variant(name: str, overrides: list[str], threads: int) -> dict:
    """One run in this (child) process: timings, pairs, peak memory, FLOP/s."""
    import torch

    torch.set_num_threads(threads)
    from bpo.common.configlib import load_config
    from bpo.loop.config import RunConfig
    from bpo.loop.online import run_online

    timers, last_step = Timers(), {}
    instrument(timers, last_step)
    cfg = load_config(RunConfig, overrides=overrides)
    started = time.perf_counter()
    run_online(cfg, cfg.out, progress=False)
    total = time.perf_counter() - started
    schedule = cfg.resolved_schedule()
    loop_peak = last_step["loop_peak_rss_mib"]
    flops = step_flops(last_step)
    matmul = max(
        matmul_flops(), matmul_flops()
    )  # the machine's best of two measurements, after the run (not in its peak)
    loop = total - timers.seconds["setup"] - timers.seconds["evaluation"]
    step_seconds = timers.seconds["training"] / schedule.steps
    # The machine's limit: a pair's sampling and training FLOPs at the float32 matmul rate (annotation and
    # any reference pass are extra work, so every tool's pairs/s stays below it).
    model = last_step["args"][0].model
    pair_flops = sampling_flops_per_pair(model, PROMPT_TOKENS, NEW_TOKENS) + flops / schedule.batch_size
    return {
        "variant": name,
        "pairs": schedule.pairs,
        "steps": schedule.steps,
        "phases": schedule.phases,
        "ensemble": cfg.lora.ensemble,
        "total_s": total,
        "loop_s": loop,
        "pairs_per_s": schedule.pairs / loop,
        **{f"{k}_s": timers.seconds[k] for k in SECTIONS},
        "other_s": loop - sum(timers.seconds[k] for k in SECTIONS[1:5]),
        "peak_rss_mib": loop_peak,
        "peak_rss_with_eval_mib": peak_rss_mib(),
        "step_flops": flops,
        "train_flops_per_s": flops / step_seconds,
        "matmul_flops_per_s": matmul,
        "train_fraction_of_matmul": flops / step_seconds / matmul,
        "gflop_per_pair": pair_flops / 1e9,
        "limit_pairs_per_s": matmul / pair_flops,
        "fraction_of_limit": schedule.pairs / loop / (matmul / pair_flops),
    }


def in_child(fn, *args):
    """fn(*args) in a fresh process (spawned: nothing shared, its own peak memory)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def print_table(results: list[dict]) -> None:
    base = results[0]["pairs_per_s"]
    print(
        f"{'variant':<13}{'pairs/s':>9}{'ratio':>7}{'loop s':>8}{'sample':>8}{'annot':>7}{'ref':>6}"
        f"{'train':>7}{'other':>7}"
        f"{'eval':>7}{'setup':>7}{'RSS MiB':>9}{'train GF/s':>11}{'of mm':>7}{'of limit':>9}"
    )
    for r in results:
        print(
            f"{r['variant']:<13}{r['pairs_per_s']:>9.2f}{r['pairs_per_s'] / base:>7.2f}{r['loop_s']:>8.1f}"
            f"{r['sampling_s']:>8.1f}"
            f"{r['annotation_s']:>7.1f}{r['reference_s']:>6.1f}{r['training_s']:>7.1f}{r['other_s']:>7.1f}"
            f"{r['evaluation_s']:>7.1f}"
            f"{r['setup_s']:>7.1f}{r['peak_rss_mib']:>9.0f}{r['train_flops_per_s'] / 1e9:>11.1f}"
            f"{r['train_fraction_of_matmul']:>7.2f}{r['fraction_of_limit']:>9.2f}"
        )
    r = results[0]
    print(
        f"(the limit: {r['gflop_per_pair']:.1f} GFLOP per pair, sampling and training, at the matmul rate: "
        f"{r['limit_pairs_per_s']:.1f} pairs/s)"
    )
    print(
        f"(float32 matmul, best per process: {min(r['matmul_flops_per_s'] for r in results) / 1e9:.1f} to "
        f"{max(r['matmul_flops_per_s'] for r in results) / 1e9:.1f} GFLOP/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("standard", "smollm2"), default="standard")
    parser.add_argument("--steps", type=int, default=8, help="T: training steps of 8 pairs (N = 8 T)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--folder", default=str(Path(tempfile.gettempdir()) / "bpo-bench"), help="where the models are built once"
    )
    args = parser.parse_args()
    setup = build(args.model, Path(args.folder))
    results = []
    with tempfile.TemporaryDirectory() as runs:
        for name in args.variants:
            overrides = run_overrides(setup, args.steps, Path(runs) / name, VARIANTS[name])
            results.append(in_child(run_variant, name, overrides, args.threads))
            print(f"{name}: {results[-1]['pairs_per_s']:.2f} pairs/s", flush=True)
    print(
        f"\n{args.model}: T = {args.steps} steps of {PROMPTS_PER_STEP} pairs, {NEW_TOKENS} new tokens, {args.threads} "
        "threads"
    )
    print_table(results)


if __name__ == "__main__":
    main()
