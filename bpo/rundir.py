"""The run folder: everything a run produces, written as it is produced.

    config.yaml             the resolved configuration
    pairs/phase-000.jsonl   the labelled pairs of each phase (one bpo.types.Pair per line)
    phases.jsonl            per phase: pairs kept, identical pairs and ties dropped, prompts used, seconds
    metrics.jsonl           per training step: loss, reward margin, reward accuracy, learning rate, ...
    adapters/               the LoRA ensemble in peft format: merged/ and a0/ .. a{n-1}/
    eval.json               win rate vs the human references, 95% interval, n, mean judge score, ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from bpo.config import RunConfig
from bpo.configlib import dump_yaml
from bpo.jsonl import read_jsonl, write_jsonl
from bpo.types import Pair


class RunDirError(ValueError):
    pass


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    pairs_dir = property(lambda self: self.root / "pairs")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    phases = property(lambda self: self.root / "phases.jsonl")
    adapters = property(lambda self: self.root / "adapters")
    eval = property(lambda self: self.root / "eval.json")

    def create(self, cfg: RunConfig) -> None:
        if self.config.exists():
            raise RunDirError(f"{self.root} already holds a run; choose another out= or resume it with --resume {self.root}")
        self.pairs_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(cfg, self.config)
        self.metrics.write_text("")
        self.phases.write_text("")

    def pairs_file(self, phase: int) -> Path:
        return self.pairs_dir / f"phase-{phase:03d}.jsonl"

    def write_pairs(self, phase: int, pairs: Sequence[Pair]) -> None:
        write_jsonl(self.pairs_file(phase), (p.to_json() for p in pairs))

    def read_pairs(self, phase: int) -> list[Pair]:
        return [Pair.from_json(row) for row in read_jsonl(self.pairs_file(phase), required=["prompt", "chosen", "rejected"])]

    def append(self, path: Path, row: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def write_eval(self, result: dict) -> None:
        self.eval.write_text(json.dumps(result, indent=2))
