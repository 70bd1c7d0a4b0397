"""The run folder: everything a run produces, written as it is produced.

    config.yaml             the resolved configuration
    sft-base/               the base after the run's SFT stage (sft.steps > 0): a transformers folder
    pairs/phase-000.jsonl   the labelled pairs of each phase (one bpo.types.Pair per line)
    phases.jsonl            per phase: pairs kept, identical pairs and ties dropped, prompts used, seconds
    metrics.jsonl           per training step: loss, reward margin, reward accuracy, learning rate, ...
    adapters/               the LoRA ensemble in peft format: merged/ and a0/ .. a{n-1}/
    checkpoints/step-NNNNNN/ adapters, optimiser, RNG and loop state (see bpo.checkpoint)
    eval.json               win rate vs the human references, 95% interval, n, mean judge score, ...
"""

from __future__ import annotations

import json
import os
import shutil
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
    checkpoints = property(lambda self: self.root / "checkpoints")
    sft_base = property(lambda self: self.root / "sft-base")

    def check_new(self) -> None:
        """Refuse at once (before any model is built) a folder that already holds a run."""
        if self.config.exists():
            raise RunDirError(f"{self.root} already holds a run; choose another out= or resume it with --resume {self.root}")

    def create(self, cfg: RunConfig) -> None:
        self.check_new()
        self.pairs_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(cfg, self.config)
        self.metrics.write_text("")
        self.phases.write_text("")

    def check_resumable(self) -> None:
        """Refuse at once (before any model is built) a folder that holds no run."""
        if not self.root.is_dir():
            raise RunDirError(f"{self.root}: no such run folder; start a run with bpo train out={self.root}")
        if not self.config.is_file():
            raise RunDirError(f"{self.root}: holds no run (no config.yaml), nothing to resume; start one with bpo train out={self.root}")

    def save_sft_base(self, model, tokenizer) -> None:
        """The fine-tuned base as a transformers folder (safetensors), renamed into place when complete."""
        tmp = self.root / ".tmp-sft-base"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(self.sft_base, ignore_errors=True)  # an incomplete copy (no config.json) from a crash
        os.replace(tmp, self.sft_base)

    def forget_after(self, step: int) -> None:
        """Drop log lines a crashed run wrote past its last checkpoint (they will be written again)."""
        _keep_rows(self.metrics, lambda row: row["step"] < step)
        _keep_rows(self.phases, lambda row: self.pairs_file(row["phase"]).exists())

    def pairs_file(self, phase: int) -> Path:
        return self.pairs_dir / f"phase-{phase:03d}.jsonl"

    def write_pairs(self, phase: int, pairs: Sequence[Pair]) -> None:
        write_jsonl(self.pairs_file(phase), (p.to_json() for p in pairs))

    def read_pairs(self, phase: int) -> list[Pair]:
        # Sampled responses may be empty (EOS first), so only the prompt is required to be non-empty.
        return [Pair.from_json(row) for row in read_jsonl(self.pairs_file(phase), required=["prompt"])]

    def append(self, path: Path, row: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def write_eval(self, result: dict) -> None:
        self.eval.write_text(json.dumps(result, indent=2))


def _keep_rows(path: Path, keep) -> None:
    if not path.exists():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    write_jsonl(path, (row for row in rows if keep(row)))
