"""A tiny file-based task on a random tiny Llama: fast end-to-end runs for reliability tests.

The judge likes the words w40..w44 and dislikes length; it is importable as `tinytask:score` when
tests/ is on PYTHONPATH (subprocesses get it through the environment).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LIKED = {f"w{i}" for i in range(40, 45)}


def score(prompts, responses):
    return [sum(w in LIKED for w in r.split()) - 0.05 * len(r.split()) for r in responses]


def write_task(folder: Path, dev: bool = False) -> Path:
    """task.yaml + train/eval JSONL (+ a dev JSONL whose prompts are none of the others) + a tiny model
    folder; returns the task file."""
    from conftest import save_tiny_llama

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)

    def rows(n):
        return [
            {
                "prompt": " ".join(f"w{rng.randrange(4, 30)}" for _ in range(3)),
                "reference": " ".join(f"w{rng.randrange(4, 60)}" for _ in range(4)),
            }
            for _ in range(n)
        ]

    train, held_out = rows(64), rows(8)
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train) + "\n")
    (folder / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in held_out) + "\n")
    spec = "train: train.jsonl\neval: eval.jsonl\njudge: tinytask:score\n"
    if dev:
        taken = {r["prompt"] for r in train + held_out}
        dev_rows = [r for r in rows(40) if r["prompt"] not in taken][:6]
        (folder / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in dev_rows) + "\n")
        spec += "dev: dev.jsonl\n"
    (folder / "task.yaml").write_text(spec)
    save_tiny_llama(folder / "model")
    return folder / "task.yaml"


def run_args(folder: Path, out: Path, *extra: str) -> list[str]:
    """A tiny run's command line; a setting in `extra` replaces the default of the same key (bpo refuses a key
    given twice)."""
    given = {a.partition("=")[0] for a in extra}
    base = [
        f"task={folder / 'task.yaml'}",
        f"policy.path={folder / 'model'}",
        f"out={out}",
        "schedule.steps=6",
        "schedule.phases=2",
        "schedule.batch_size=4",
        "lora.ensemble=2",
        "lora.dropout=0.1",
        "sampling.max_new_tokens=8",
        "eval.prompts=4",
        "checkpoint.every=2",
    ]
    return ["train", *[a for a in base if a.partition("=")[0] not in given], *extra, "--quiet"]
