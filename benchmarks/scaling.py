"""The cost curve (issue 23): pairs per second and peak memory as the work grows, one factor at a time.

    python benchmarks/scaling.py [--out docs/scaling] [--factors prompts length width adapters processes]

Every point is one `bpo train` run of the standard configuration (benchmarks/standard.py: method bpo,
F = 2, B = 8, 64-token prompts, 64 new tokens, 1 adapter, width 256, 1 process of 2 threads) with one
factor changed:

    prompts     prompts per phase M = 8, 32, 128, 256 (T = M / 4 steps: N = 2 M pairs in 2 phases)
    length      new tokens per response 32, 64, 128, 256 (on a copy of the model with a 512-token context)
    width       the policy's width 256, 512, 1024 (4 layers, heads of 64, MLP 4 x width; random weights)
    adapters    LoRA adapters 1, 2, 3, 5 (lora.ensemble; lora.training=independent: every member trains on
                every batch, n passes per step; sampling uses their merge)
    processes   1 process of 2 threads, 2 processes of 1 thread (torchrun, gloo): the same 2 cores

pairs/s is N over the run's own loop time from phase_times.jsonl (each phase's collection: sampling,
annotation, writing; and its training steps), so start-up and the final evaluation are left out. Peak
RSS is the largest process's, over the whole run (its final evaluation included). Each run is its own
process, measured through a wrapper process so that one run's peak does not carry into the next.

Printed and written to OUT: a table per factor (README.md) and a PNG per factor. The `s/pair x` column is
the cost per pair relative to the factor's first point, beside the work per pair relative to it (`work x`,
counted as below), so growth worse than the work shows as the gap between them. For adapters the work is
what K independent members predict from the first point: (its sampling + K x its training) / (both).
`--from-json OUT/scaling.json` rewrites the report and plots from a measured run. Run by hand (about 15
minutes on 2 cores), never as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from online import run_overrides  # noqa: E402
from standard import HEADS, MLP, NEW_TOKENS, PROMPT_TOKENS, WIDTH, build, matmul_flops  # noqa: E402

BASE = ["method=bpo", "schedule.phases=2", "eval.prompts=16"]


@dataclass(frozen=True)
class Point:
    factor: str
    value: int
    overrides: tuple[str, ...]
    steps: int = 8
    processes: int = 1
    work: float = 1.0  # the work per pair, relative to the factor's first point


def _policy_variant(setup, folder: Path, width: int = WIDTH, context: int | None = None) -> Path:
    """The standard policy folder with another width (random weights, seed 0) or a longer context (the same
    weights: Llama's rotary positions have no table to grow), built once."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    target = folder / f"policy-w{width}-c{context or 'std'}"
    if (target / "config.json").is_file():
        return target
    if width == WIDTH:
        shutil.copytree(setup.policy, target)
    else:
        config = AutoConfig.from_pretrained(setup.policy)
        config.hidden_size, config.intermediate_size = width, MLP * width // WIDTH
        config.num_attention_heads = config.num_key_value_heads = HEADS * width // WIDTH  # heads of 64
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(target)
        AutoTokenizer.from_pretrained(setup.policy).save_pretrained(target)
    if context:
        config = json.loads((target / "config.json").read_text())
        config["max_position_embeddings"] = context
        (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


def points(setup, folder: Path, factors: list[str]) -> list[Point]:
    """Every run of the factors asked for. Work per pair, counted as the matmul work of sampling two
    responses and one training pass over them: proportional to the response length (prompt + 2 L tokens,
    attention's quadratic term aside) and to width^2 (every projection is width x width or width x 4 width)."""
    out = []
    if "prompts" in factors:
        for m in (8, 32, 128, 256):
            out.append(Point("prompts", m, (f"sampling.batch_size={m}",), steps=m // 4))
    if "length" in factors:
        long = _policy_variant(setup, folder, context=512)
        for length in (32, 64, 128, 256):
            work = (PROMPT_TOKENS + 2 * length) / (PROMPT_TOKENS + 2 * 32)
            out.append(Point("length", length, (f"policy.path={long}", f"sampling.max_new_tokens={length}"), work=work))
    if "width" in factors:
        for width in (256, 512, 1024):
            path = _policy_variant(setup, folder, width=width)
            out.append(Point("width", width, (f"policy.path={path}",), work=(width / 256) ** 2))
    if "adapters" in factors:
        for k in (1, 2, 3, 5):
            out.append(Point("adapters", k, (f"lora.ensemble={k}",)))
    if "processes" in factors:
        for p in (1, 2):
            out.append(Point("processes", p, (), steps=16, processes=p))
    return out


def command(point: Point, setup, out: Path) -> tuple[list[str], dict]:
    settings: dict[str, str] = {}  # a later setting of a key replaces an earlier one (bpo refuses a key twice)
    for item in run_overrides(setup, point.steps, out, [*BASE, *point.overrides]):
        settings[item.partition("=")[0]] = item
    args = [*settings.values(), "--quiet"]
    threads = 2 // point.processes
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if point.processes == 1:
        return [sys.executable, "-m", "bpo.cli", "train", *args], env
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={point.processes}"]
    return [*launcher, "-m", "bpo.cli", "train", *args], env


def measured(argv: list[str], env: dict) -> float:
    """Run argv in a wrapper process; the peak RSS (MiB) of the largest process under it."""
    probe = (
        "import resource, subprocess, sys, json; code = subprocess.call(json.loads(sys.argv[1])); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(argv)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... exited {done.returncode}:\n{done.stderr[-3000:]}")
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def run_point(point: Point, setup, root: Path) -> dict:
    out = root / f"{point.factor}-{point.value}"
    shutil.rmtree(out, ignore_errors=True)
    argv, env = command(point, setup, out)
    peak = measured(argv, env)
    rows = [json.loads(line) for line in (out / "phase_times.jsonl").read_text().splitlines()]
    loop = sum(r["collection_seconds"] + r["training_seconds"] for r in rows)
    pairs = sum(1 for phase in (out / "pairs").glob("phase-*.jsonl") for _ in phase.open())
    return {
        "factor": point.factor,
        "value": point.value,
        "pairs": pairs,
        "loop_s": round(loop, 2),
        "pairs_per_s": pairs / loop,
        "sampling_s": round(sum(r["sampling_seconds"] for r in rows), 2),
        "training_s": round(sum(r["training_seconds"] for r in rows), 2),
        "peak_rss_mib": round(peak),
        "work": point.work,
    }


def table(rows: list[dict]) -> str:
    first = rows[0]["pairs_per_s"]
    lines = [
        "| value | pairs | pairs/s | s/pair x | work x | sampling s | training s | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['value']} | {r['pairs']} | {r['pairs_per_s']:.2f} | {first / r['pairs_per_s']:.2f} | "
            f"{r['work']:.2f} | {r['sampling_s']:.1f} | {r['training_s']:.1f} | {r['peak_rss_mib']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factor = rows[0]["factor"]
    values = [r["value"] for r in rows]
    first = rows[0]["pairs_per_s"]
    fig, (cost, memory) = plt.subplots(1, 2, figsize=(9, 3.4))
    cost.plot(values, [first / r["pairs_per_s"] for r in rows], "o-", label="measured s/pair")
    cost.plot(values, [r["work"] for r in rows], "k--", label="work per pair")
    cost.set(xlabel=factor, ylabel="cost per pair (x first point)", title=f"{factor}: cost per pair")
    cost.legend()
    memory.plot(values, [r["peak_rss_mib"] for r in rows], "o-", color="tab:orange")
    memory.set(xlabel=factor, ylabel="peak RSS (MiB)", title=f"{factor}: peak memory")
    for ax in (cost, memory):
        if factor in ("prompts", "length", "width"):
            ax.set_xscale("log", base=2)
        ax.set_xticks(values, [str(v) for v in values])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/scaling", help="where README.md and the PNGs go")
    parser.add_argument(
        "--factors", nargs="+", default=["prompts", "length", "width", "adapters", "processes"], help="which curves"
    )
    parser.add_argument(
        "--folder", default=str(Path(tempfile.gettempdir()) / "bpo-bench"), help="where the models are built once"
    )
    parser.add_argument("--from-json", type=Path, help="rewrite the report from this scaling.json (no runs)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results, (matmul_before, matmul_after) = saved["results"], saved["matmul_flops_per_s"]
    else:
        results, matmul_before, matmul_after = measure(args)
    if "adapters" in results:
        first = results["adapters"][0]
        for r in results["adapters"]:
            r["work"] = (first["sampling_s"] + r["value"] * first["training_s"]) / (
                first["sampling_s"] + first["training_s"]
            )
    write_report(out, results, matmul_before, matmul_after)


def measure(args) -> tuple[dict[str, list[dict]], float, float]:
    setup = build("standard", Path(args.folder))
    results: dict[str, list[dict]] = {}
    matmul_before = matmul_flops()
    with tempfile.TemporaryDirectory() as runs:
        for point in points(setup, Path(args.folder), args.factors):
            row = run_point(point, setup, Path(runs))
            results.setdefault(point.factor, []).append(row)
            said = f"{row['pairs_per_s']:.2f} pairs/s, {row['peak_rss_mib']} MiB"
            print(f"{point.factor}={point.value}: {said}", flush=True)
    return results, matmul_before, matmul_flops()


def write_report(out: Path, results: dict[str, list[dict]], matmul_before: float, matmul_after: float) -> None:
    text = [
        "# The cost curve",
        "",
        "Written by `python benchmarks/scaling.py --out docs/scaling` (see its docstring for the setting). "
        f"float32 matmul in the measuring process: {matmul_before / 1e9:.0f} GFLOP/s before the runs, "
        f"{matmul_after / 1e9:.0f} after; {os.cpu_count()} CPUs. Standard configuration: bpo, F = 2, B = 8, "
        f"{PROMPT_TOKENS}-token prompts, {NEW_TOKENS} new tokens, 1 adapter, width {WIDTH}, 1 process of 2 threads.",
    ]
    for factor, rows in results.items():
        plot(rows, out / f"{factor}.png")
        text += ["", f"## {factor}", "", table(rows), "", f"![{factor}]({factor}.png)"]
    (out / "README.md").write_text("\n".join(text) + "\n")
    saved = {"results": results, "matmul_flops_per_s": [matmul_before, matmul_after]}
    (out / "scaling.json").write_text(json.dumps(saved, indent=2) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
