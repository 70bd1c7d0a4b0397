"""Win rate of BPO and its baselines on the built-in `reviews` task over seeds and betas.

    python benchmarks/reviews_methods.py [--seeds 0 1 2] [--betas 0.1 0.5 1.0] [--ensemble 2] [--sampled]

Runs configs/reviews-{bpo,online-dpo,offline-dpo}.yaml for every (beta, seed), prints a Markdown table
of the mean win rate against the human references across seeds with the mean of the per-run 95%
bootstrap intervals' half-widths, and the initial (SFT) policy's win rate. Run by hand (minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bpo.cli import main

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("bpo", "online_dpo", "offline_dpo")


def run(method: str, beta: float, seed: int, ensemble: int, root: Path, sampled: bool = False) -> dict:
    out = root / f"{method}-b{beta}-s{seed}"
    config = ROOT / "configs" / f"reviews-{method.replace('_', '-')}.yaml"
    code = main(
        [
            "train",
            str(config),
            f"beta={beta}",
            f"seed={seed}",
            f"lora.ensemble={ensemble}",
            "eval.kl=false",
            f"eval.greedy={str(not sampled).lower()}",
            f"out={out}",
            "--quiet",
        ]
    )
    assert code == 0, (method, beta, seed)
    return json.loads((out / "eval.json").read_text())


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    parser.add_argument("--ensemble", type=int, default=2)
    parser.add_argument(
        "--sampled", action="store_true", help="evaluate sampled responses (temperature 1) instead of greedy"
    )
    args = parser.parse_args()
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for beta in args.betas:
            cells = []
            for method in METHODS:
                results = [run(method, beta, s, args.ensemble, Path(tmp), args.sampled) for s in args.seeds]
                rates = [r["win_rate"] for r in results]
                strict = [r["strict_win_rate"] for r in results]
                half = np.mean([(r["ci_high"] - r["ci_low"]) / 2 for r in results])
                cells.append(f"{np.mean(rates):.3f} ± {half:.3f} (strict {np.mean(strict):.3f})")
                sft = np.mean([r["before"]["win_rate"] for r in results])
            rows.append(f"| {beta:g} | " + " | ".join(cells) + f" | {sft:.3f} |")
    mode = "sampled (temperature 1)" if args.sampled else "greedy"
    print(
        f"seeds {args.seeds}, ensemble {args.ensemble}, {mode} evaluation; mean win rate (ties 1/2) ± mean 95% "
        "half-width over seeds, (mean strict win rate)"
    )
    print("| beta | bpo | online_dpo | offline_dpo | SFT |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main_()
