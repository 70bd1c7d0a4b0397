"""Everything a run logs goes through one RunLog, which hands each record to every sink.

    log.write("metrics", {"step": 3, "phase": 0, "loss": 0.61, ...}, step=3)

A record is a stream name, a row (a JSON object) and the training step it belongs to. The streams a
run writes: `metrics` (one row per training step), `phases` (one per annotation phase, at its first
step), `phase_times` (one per phase, at its end: its time split into sampling, annotation and training)
and `evals` (one per evaluation, at the number of steps done). A record added later reaches
every sink without touching them.

Sinks (`log.to`):
    jsonl        the run's record, always on (resume, `bpo eval`, reports and sweeps read it):
                 stream S is appended to S.jsonl in the run folder, one row per line
    tensorboard  event files in RUN/tensorboard/: every finite number of a row becomes the scalar
                 S/KEY at `step` (nested objects give S/KEY/SUBKEY; an IOPO row's player goes into
                 the tag, S/PLAYER/KEY, so the two players draw two curves)

A resumed run forgets what it logged past its checkpoint: the JSONL rows are dropped when the session
opens (bpo.run.rundir `forget_after`), and TensorBoard hides everything from the resumed step on (a purge
marker), so each step is shown once, with the values of the run that went on.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from bpo.common.configlib import option

SINKS = ("jsonl", "tensorboard")
INDEX_KEYS = ("step", "phase", "round")  # where a row sits, not a quantity to plot
LABEL_KEYS = ("player",)  # text that names whose quantities a row holds (IOPO's mu / nu)


@dataclass(frozen=True)
class LogConfig:
    to: tuple[Literal["jsonl", "tensorboard"], ...] = option(
        ("jsonl",),
        help="where the run's metrics go: jsonl (the run's record, always on) and tensorboard (event files in "
        "RUN/tensorboard/; needs the tensorboard package: pip install 'bpo[tensorboard]')",
    )

    def validate(self):
        if "jsonl" not in self.to:
            raise ValueError(
                "to must include jsonl, the run's record (resume, bpo eval and reports read it), e.g. [jsonl, "
                "tensorboard]"
            )
        if "tensorboard" in self.to and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "tensorboard needs the tensorboard package, which is not installed: pip install 'bpo[tensorboard]'"
            )


class Sink(Protocol):
    def write(self, stream: str, row: dict, step: int) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Stream S -> S.jsonl in the run folder (`run.log_file(S)`), one row per line, each line one write
    (bpo.common.jsonl)."""

    def __init__(self, run):
        self.run = run  # a bpo.run.rundir.RunDir

    def write(self, stream: str, row: dict, step: int) -> None:
        from bpo.common.jsonl import append_jsonl

        append_jsonl(self.run.log_file(stream), row)

    def close(self) -> None:
        pass


def scalars(row: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a row by tag: {"loss": 0.6, "eval": {"kl": 0.1}} -> {"loss": 0.6, "eval/kl": 0.1}.
    Index keys, text, booleans, lists and missing or non-finite numbers are left out."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key in INDEX_KEYS or key in LABEL_KEYS:
            continue
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def phase_time(phase: int, phase_rows: list[dict], metric_rows: list[dict]) -> dict:
    """A phase's wall time split into sampling and annotation (its phases.jsonl row), collection (that row's
    whole time: sampling, annotation, a fixed reference's scoring, writing the pairs; for human raters only
    this one counts) and training (the sum of its steps' `seconds` in metrics.jsonl, which holds the steps
    of every session of a resumed run)."""
    collected = next((r for r in phase_rows if r.get("phase") == phase), {})
    training = sum(r.get("seconds", 0.0) for r in metric_rows if r.get("phase") == phase)
    return {
        "phase": phase,
        "sampling_seconds": collected.get("sampling_seconds", 0.0),
        "annotation_seconds": collected.get("annotation_seconds", 0.0),
        "collection_seconds": collected.get("seconds", 0.0),
        "training_seconds": round(training, 3),
    }


class TensorBoardSink:
    """Event files readable by TensorBoard (`tensorboard --logdir RUN/tensorboard`)."""

    def __init__(self, folder: Path, resumed_at: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides what an earlier process logged from this step on (it is logged again);
        # 0 too: a run killed before its first checkpoint resumes from step 0 and logs every step again
        self.writer = SummaryWriter(str(folder), purge_step=resumed_at)

    def write(self, stream: str, row: dict, step: int) -> None:
        prefix = "/".join([stream] + [str(row[k]) for k in LABEL_KEYS if k in row])
        for tag, value in scalars(row).items():
            self.writer.add_scalar(f"{prefix}/{tag}", value, step)
        # On disk now: a killed run resumes after its checkpoint and does not log earlier steps again.
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class RunLog:
    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    @classmethod
    def open(cls, cfg: LogConfig, run, start: int = 0) -> "RunLog":
        """The sinks `cfg.to` names for the run folder `run` (a bpo.run.rundir.RunDir), continuing after
        `start` completed steps."""
        sinks: list[Sink] = [JsonlSink(run)]
        if "tensorboard" in cfg.to:
            sinks.append(TensorBoardSink(run.tensorboard, start))
        return cls(sinks)

    @property
    def records(self) -> bool:
        """Whether anything is recorded (a process after rank 0 of a multi-process run records nothing)."""
        return bool(self.sinks)

    def write(self, stream: str, row: dict, step: int) -> None:
        for sink in self.sinks:
            sink.write(stream, row, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
