"""The public Python API: train, resume, evaluate, compare, export and reproduce, on objects or paths.

    import bpo
    run = bpo.train("configs/reviews-bpo.yaml", out="runs/x", overrides={"schedule.steps": 8})
    run.evaluation["win_rate"], run.metrics[-1]["loss"], run.policy()

The command line (bpo.cli) is a thin layer over these functions; bpo's own experiments call them too.
A run made here is a run folder like any other: `bpo eval`, `bpo compare`, `bpo export` and
`bpo train --resume` work on it.

Objects given directly (a model and tokenizer, preference data, training prompts) replace the matching
path settings. They are saved once, content-addressed, under $BPO_CACHE/inputs (bpo.loop.inputs), and the
run's config.yaml names what was saved: the run stays resumable and says what it was trained on. A
judge callable is used in this process under a name recorded in config.yaml (see bpo.judging.judges.
register_judge); a run resumed in another process needs it again (`bpo.load_run(folder).resume(judge=fn)`)
unless it is an importable module-level function, which is recorded as `module:function`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from bpo.common.configlib import ConfigError, config_from_dict, load_config, to_dict
from bpo.loop.config import RunConfig

Overrides = Mapping[str, Any] | Sequence[str]


# ---- configuration -------------------------------------------------------------------------------


def override_items(overrides: Overrides) -> list[str]:
    """`key=value` strings from a mapping {dotted key: value} (values written as JSON, which is YAML) or a
    sequence of `key=value` strings."""
    if isinstance(overrides, Mapping):
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return [str(item) for item in overrides]


def make_config(config: RunConfig | Mapping | str | Path | None = None, overrides: Overrides = ()) -> RunConfig:
    """A validated RunConfig from a RunConfig, a mapping (nested as in a YAML file, or with dotted keys as
    on the command line) or a YAML path, with overrides: the same checks and messages as `bpo train`."""
    items = override_items(overrides)
    if isinstance(config, RunConfig):
        config = to_dict(config)
    if isinstance(config, Mapping):  # nested sections, or dotted keys as on the command line
        nested = {k: v for k, v in config.items() if "." not in str(k)}
        dotted = override_items({k: v for k, v in config.items() if "." in str(k)})
        return config_from_dict(RunConfig, nested, "<config mapping>", [*dotted, *items])
    return load_config(RunConfig, config, items)


def default_out(cfg: RunConfig) -> str:
    task = Path(cfg.task).stem
    return f"runs/{task}-{cfg.method}-{cfg.loss}-b{cfg.beta:g}-s{cfg.seed}"


# ---- runs ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """A run folder: what it was configured with, how it is doing, and its trained policy."""

    folder: Path
    result: dict | None = dataclasses.field(default=None, repr=False)  # the evaluation just computed, if any

    def __post_init__(self):
        from bpo.run.rundir import RunDir

        self.folder = Path(self.folder)
        self.dir = RunDir(self.folder)

    @property
    def config(self) -> RunConfig:
        return load_config(RunConfig, self.dir.config)

    @property
    def evaluation(self) -> dict | None:
        """eval.json: the final evaluation (None until the run has finished). A run trained by several
        processes: every process holds it (only the first writes the file)."""
        if self.result is not None:
            return self.result
        return json.loads(self.dir.eval.read_text()) if self.dir.eval.is_file() else None

    @property
    def metrics(self) -> list[dict]:
        """metrics.jsonl: one row per training step (loss, reward margin and accuracy, gradient norm, ...)."""
        from bpo.common.jsonl import read_log

        return read_log(self.dir.metrics)

    def policy(self, progress: bool = False):
        """The trained policy as a plain transformers model: the base with the merged adapter folded in."""
        from bpo.model.policy import MERGED

        _, _, _, policy = open_trained(self.folder, progress=progress)
        return policy.model.merge_and_unload(adapter_names=[MERGED])

    def resume(self, *, judge: Callable | None = None, progress: bool = True) -> Run:
        """Continue a stopped or crashed run from its last complete checkpoint (a finished run: evaluated
        again). `judge`: the callable the run was started with, when it was given as an object."""
        from bpo.judging.judges import register_judge
        from bpo.run.rundir import RunDir

        run = RunDir(self.folder)
        run.check_resumable()  # before anything is built: a wrong folder costs nothing
        if judge is not None:
            register_judge(judge)
        self.result = _train(self.config, run, progress, resume=True)
        return self


def load_run(folder: str | Path) -> Run:
    """An existing run folder."""
    from bpo.run.rundir import RunDir

    if not RunDir(folder).config.is_file():
        raise ConfigError(f"{folder}: not a run folder (no config.yaml)")
    return Run(Path(folder))


def train(
    config: RunConfig | Mapping | str | Path | None = None,
    out: str | Path | None = None,
    *,
    overrides: Overrides = (),
    model=None,
    tokenizer=None,
    judge: Callable | None = None,
    pairs=None,
    prompts: Sequence[str] | None = None,
    progress: bool = True,
) -> Run:
    """Train a policy as the configuration says (BPO's Algorithm 1, or IOPO); a finished, evaluated Run.

    config: a RunConfig, a mapping or a YAML path (None: the defaults); `overrides` as `key=value` strings
    or a mapping of dotted keys. `out`: the run folder (default: config's `out`, else runs/<task>-...).
    Objects replace path settings: `model` + `tokenizer` (policy.path), `judge` (a callable
    (prompts, responses) -> scores: annotator.judge and eval.judge), `pairs` (a list of dicts with
    prompt/chosen/rejected, or a datasets.Dataset: data.pairs), `prompts` (texts: the task's training
    prompts; its held-out prompts stay). Raises bpo's errors (ConfigError, DataFileError, ...) with the
    messages of the command line; a new run that failed before it did any work leaves no folder.
    """
    cfg = _with_inputs(
        config, out, overrides, progress, model=model, tokenizer=tokenizer, judge=judge, pairs=pairs, prompts=prompts
    )
    return start_run(cfg, cfg.out or default_out(cfg), progress)


def dry_run(
    config: RunConfig | Mapping | str | Path | None = None,
    out: str | Path | None = None,
    *,
    overrides: Overrides = (),
    model=None,
    tokenizer=None,
    judge: Callable | None = None,
    pairs=None,
    prompts: Sequence[str] | None = None,
    progress: bool = True,
) -> dict:
    """What `train` with the same arguments would do and cost, without doing it (`bpo train --dry-run`):
    every check of a real run, then a short probe (bpo.loop.dryrun). Returns the plan: `counts` (T, F, K, M,
    N, B, adapters, labels, judge calls), model, device, dtype, `peak_memory_bytes`, `seconds` by part.
    No run folder is made."""
    from bpo.loop.dryrun import dry_run as plan

    cfg = _with_inputs(
        config, out, overrides, progress, model=model, tokenizer=tokenizer, judge=judge, pairs=pairs, prompts=prompts
    )
    return plan(cfg, cfg.out or default_out(cfg), progress)


def _with_inputs(config, out, overrides: Overrides, progress: bool, **objects) -> RunConfig:
    """The configuration with objects in place of their path settings (bpo.loop.inputs) and `out`."""
    from bpo.loop.inputs import given_inputs

    cfg = given_inputs(make_config(config, overrides), progress=progress, **objects)
    return dataclasses.replace(cfg, out=str(out)) if out is not None else cfg


def start_run(cfg: RunConfig, folder: str | Path, progress: bool = True) -> Run:
    """Train a new run into `folder`. On failure, a run that had not started (no pairs, no checkpoint) is
    removed, so the same call works once the input is fixed; otherwise the error carries a hint
    (`bpo_hint`) saying how to continue."""
    from bpo.run.rundir import RunDir

    return Run(Path(folder), _train(cfg, RunDir(folder), progress, resume=False))


def _train(cfg: RunConfig, run, progress: bool, resume: bool) -> dict:
    from bpo.common.stop import Interrupted
    from bpo.judging.judges import JudgeStop
    from bpo.loop.online import run_online

    made_here, existed = not resume and not run.config.exists(), run.root.exists()
    try:
        return run_online(cfg, run, progress=progress, resume=resume)
    except BaseException as err:
        interrupted = isinstance(err, (KeyboardInterrupt, Interrupted, JudgeStop))  # resumable, not the input's fault
        err.bpo_hint = after_failure(run, made_here, existed, interrupted)  # type: ignore[attr-defined]
        raise


def after_failure(run, made_here: bool, existed: bool, interrupted: bool) -> str:
    """A new run that failed before writing any pairs or checkpoint is removed; a run that failed later is
    kept, and the hint says how to continue. Only the process that created the run may remove it: a call
    refused because another process holds the folder leaves it."""
    if run.created_here and run.config.exists() and run.discard_unstarted(existed):
        return f"nothing was kept in {run.root} (the run had not started)"
    if run.config.exists() and run.has_work() and (made_here or interrupted):
        return f"the run so far is kept; continue it with: bpo train --resume {run.root}"
    return ""


def open_trained(folder: str | Path, overrides: Overrides = (), progress: bool = True):
    """A finished run's (RunDir, config, task, policy with its trained adapters loaded); `overrides` change
    settings for evaluation only."""
    from safetensors import SafetensorError

    from bpo.loop.build import build_policy, build_task
    from bpo.loop.preflight import Base, fit_task
    from bpo.model.loading import context_length
    from bpo.run.rundir import RunDir, RunDirError

    run = RunDir(folder)
    if not run.config.is_file():
        raise ConfigError(f"{folder}: not a run folder (no config.yaml)")
    cfg = load_config(RunConfig, run.config, override_items(overrides))
    if overrides:  # the user's override is named before the run's state is judged
        _refuse_training_overrides(run, cfg)
    if not (run.adapters / "a0").is_dir():
        raise ConfigError(f"{folder}: the run has no trained adapters yet (finish it with bpo train --resume {folder})")
    task = build_task(cfg, run.sft_base)
    policy = build_policy(cfg, task, run.sft_base, progress)
    task = fit_task(cfg, task, Base(run.root, policy.tokenizer, context_length(policy.model)))  # as the run saw it
    try:
        policy.load_members(run.adapters)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:  # damaged or foreign adapter files
        raise RunDirError(
            f"{run.adapters}: cannot load the trained adapters ({str(err)[:120]}); "
            f"rewrite them with bpo train --resume {folder}"
        ) from None
    return run, cfg, task, policy


def _refuse_training_overrides(run, cfg: RunConfig) -> None:
    """An override of a setting the run was trained with (lora.rank, task, beta ...) would rebuild another
    policy than the one trained; say so, naming the key, instead of failing later on the adapters' files.
    Evaluation settings (eval.*) and those a resume may change (device, dtype, batch sizes) are free."""
    from bpo.run.rundir import changed_settings

    trained = load_config(RunConfig, run.config).resume_settings()
    shown = [c for c in changed_settings(trained, cfg.resume_settings()) if not c.startswith("eval.")]
    if shown:
        raise ConfigError(
            f"{run.root}: the override changes what the run was trained with: {', '.join(shown)}; an evaluation "
            f"may change eval.* and the device, dtype and batch sizes; to train with it, start a new run"
        )


def _folder(run: Run | str | Path) -> Path:
    return run.folder if isinstance(run, Run) else Path(run)


def evaluate(run: Run | str | Path, overrides: Overrides = (), *, write: bool = True, progress: bool = True) -> dict:
    """Evaluate a finished run's policy again (eval.json unless write=False); `overrides` for evaluation
    settings, e.g. {"eval.prompts": 64, "eval.greedy": True}."""
    from bpo.evaluation import guard
    from bpo.loop.build import build_eval_judge
    from bpo.loop.online import curve_rows, evaluate_run, phase_rows

    folder, cfg, task, policy = open_trained(_folder(run), overrides, progress)
    result = evaluate_run(cfg, policy, task, build_eval_judge(cfg, task, folder.root), progress=progress)
    steps = cfg.resolved_schedule().steps
    result["guard"], new = guard.final_guard(result, curve_rows(folder), steps, cfg.guard, phase_rows(folder))
    guard.warn(new)
    if write:
        folder.write_eval(result)
    return result


def compare(
    run_a: Run | str | Path,
    run_b: Run | str | Path = "sft",
    *,
    out: str | Path | None = None,
    temperature: float = 0.8,
    tie_margin: float = 0.0,
    bad_threshold: float | None = None,
    pairs: str | Path | None = None,
    beta: float | None = None,
    prompts: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Win/tie/lose of run_a's policy against run_b's (or "sft": run_a's initial policy) under run_a's
    evaluation judge, on run_a's held-out prompts; with `pairs`, held-out reward margins and pairwise
    accuracy too. Written to OUT/compare.json (default RUN_A/compare-<RUN_B name>)."""
    from bpo.common.files import atomic_write_text
    from bpo.evaluation.compare import Contender, heldout_report
    from bpo.evaluation.compare import compare as compare_policies
    from bpo.loop.build import build_eval_judge
    from bpo.model.policy import MERGED
    from bpo.run.rundir import COMPARE_FILE

    if tie_margin < 0 or temperature <= 0:
        raise ConfigError("--tie-margin must be >= 0 and --temperature > 0")
    if out:
        _check_compare_folder(Path(out))
    a_folder, b_folder = _folder(run_a), _folder(run_b)
    run, cfg, task, policy = open_trained(a_folder, progress=progress)
    a = Contender(str(a_folder), policy, MERGED)
    if str(b_folder) == "sft" and not b_folder.is_dir():
        b = Contender("sft", policy, None)  # adapters off: the start both were trained from
    else:
        _, cfg_b, _, policy_b = open_trained(b_folder, progress=progress)
        if cfg_b.task != cfg.task:
            raise ConfigError(f"{a_folder} and {b_folder} were trained on different tasks ({cfg.task}, {cfg_b.task})")
        b = Contender(str(b_folder), policy_b, MERGED)
    folder = Path(out) if out else run.compare_folder(b_folder.name)
    folder.mkdir(parents=True, exist_ok=True)
    examples = task.eval[: prompts or cfg.eval.prompts]
    sampling = dataclasses.replace(cfg.sampling, temperature=temperature)
    judge = build_eval_judge(cfg, task, a_folder)  # an LLM endpoint's answers are kept in RUN_A
    result = compare_policies(
        a, b, examples, judge, sampling, tie_margin, bad_threshold, task.chat_template, seed, progress
    )
    if pairs:
        result["heldout"] = heldout_report(
            [a, b], str(pairs), beta or cfg.beta, task.chat_template, folder / "margins.png"
        )
    result["guard"] = {  # a side the collapse guard flagged says so here too
        str(side): json.loads((side / "eval.json").read_text()).get("guard", {}).get("flags", [])
        for side in (a_folder, b_folder)
        if (side / "eval.json").is_file()
    }
    atomic_write_text(folder / COMPARE_FILE, json.dumps(result, indent=2))  # complete or absent: a sweep reuses it
    result["written"] = str(folder / COMPARE_FILE)
    return result


def _check_compare_folder(folder: Path) -> None:
    """A comparison goes into a new or empty folder, or over an earlier comparison (its compare.json and
    margins.png); a folder holding anything else, a user's own compare.json included, is refused before any
    model is loaded, so nothing of theirs is written over."""
    from bpo.run.rundir import COMPARE_FILE

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: is a file, not a folder")
    if not folder.is_dir():
        return
    held = sorted(p.name for p in folder.iterdir())
    ours = set(held) <= {COMPARE_FILE, "margins.png"} and (
        COMPARE_FILE not in held or _is_comparison(folder / COMPARE_FILE)
    )
    if held and not ours:
        raise ConfigError(
            f"--out {folder}: not empty and not an earlier bpo compare (holds {', '.join(held[:6])}); a comparison "
            f"goes only into a new or empty folder, or over an earlier one"
        )


def _is_comparison(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"a", "b", "outcomes", "tie_margin"} <= set(data)


def export(run: Run | str | Path, out: str | Path, progress: bool = True) -> Path:
    """Write a run's merged policy as a plain transformers model folder (safetensors) with its tokenizer."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose a new folder")
    _, _, _, policy = open_trained(_folder(run), progress=progress)
    policy.export_merged(out)
    return out


def demo(overrides: Overrides = (), progress: bool = True) -> tuple[Run, Path]:
    """The README's main job: bpo/configs/demo.yaml, then report.md and report.png in the run folder."""
    from bpo.run.report import write_report

    cfg = make_config(DEMO_CONFIG, overrides)
    folder = cfg.out or time.strftime("runs/demo-%Y%m%d-%H%M%S")
    started = time.time()
    run = start_run(cfg, folder, progress)
    return run, write_report(folder, seconds=time.time() - started)


DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"
