"""The `bpo` command line: one plain function per sub-command.

    bpo train [CONFIG.yaml] [key=value ...]   run the online loop; writes a run folder
    bpo eval RUN_DIR                          re-evaluate a finished run's adapters
    bpo compare RUN_A RUN_B                   win/tie/lose of two runs' policies (RUN_B may be `sft`)
    bpo annotate RUN_DIR                      the labelling page of a run with human raters (bpo.annotate)
    bpo status RUN_DIR                        steps done, labels per phase, raters' agreement
    bpo demo                                  the README's first command: a small end-to-end run
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bpo.common.configlib import ConfigError, describe, load_config

if TYPE_CHECKING:
    from bpo.loop.config import RunConfig

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def default_out(cfg: RunConfig) -> str:
    task = Path(cfg.task).stem
    return f"runs/{task}-{cfg.method}-{cfg.loss}-b{cfg.beta:g}-s{cfg.seed}"


def keys_help() -> str:
    from bpo.loop.config import RunConfig

    lines = ["configuration keys (set in CONFIG.yaml or as key=value):"]
    for key, type_name, default, text in describe(RunConfig):
        lines.append(f"  {key} ({type_name}, default {default})\n      {text}")
    return "\n".join(lines)


def cmd_train(args) -> int:
    from bpo.loop.config import RunConfig
    from bpo.loop.online import TrainingDiverged, run_online
    from bpo.run.rundir import RunDir
    from bpo.common.stop import Interrupted, StopRequested

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its own config.yaml; give no config or key=value")
        out = args.resume
        RunDir(out).check_resumable()  # before anything is built: a wrong folder costs nothing
        cfg = load_config(RunConfig, RunDir(out).config)
    else:
        cfg = load_config(RunConfig, args.config, args.overrides)
        out = cfg.out or default_out(cfg)
    run = RunDir(out)
    made_here = not args.resume and not run.config.exists()  # a new run: a failure's hint says how to continue it
    existed = run.root.exists()
    try:
        result = run_online(cfg, run, progress=not args.quiet, resume=bool(args.resume))
    except StopRequested as stop:
        print(f"bpo: {stop}", file=sys.stderr)
        return stop.exit_code
    except TrainingDiverged as err:
        print(f"bpo: error: training diverged at {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except BaseException as err:  # main() prints it, then this: what is left of the run, how to go on
        interrupted = isinstance(err, (KeyboardInterrupt, Interrupted))
        err.bpo_hint = after_failure(run, made_here, existed, interrupted)  # type: ignore[attr-defined]
        raise
    print(summary(result, out))
    return 0


def after_failure(run, made_here: bool, existed: bool, interrupted: bool) -> str:
    """A new run that failed before writing any pairs or checkpoint is removed (the same command works
    once the input is fixed); a run that failed later is kept, and the hint says how to continue. (An
    error of a --resume leaves the folder as it was; its message is the hint.) Only the process that
    created the run may remove it: a command refused because another one holds the folder leaves it."""
    if run.created_here and run.config.exists() and run.discard_unstarted(existed):
        return f"nothing was kept in {run.root} (the run had not started)"
    if run.config.exists() and run.has_work() and (made_here or interrupted):
        return f"the run so far is kept; continue it with: bpo train --resume {run.root}"
    return ""


def summary(result: dict, out: str) -> str:
    """Win rate (ties 1/2), strict win rate (ties 0, the BPO paper's) and tie rate, after and before."""
    from bpo.run.report import rates_text

    text = f"win rate vs references (ties 1/2): {rates_text(result)} (n={result['n']})"
    if "before" in result:
        text += f"\ninitial policy: {rates_text(result['before'])}"
    return text + f"\nrun folder: {out}"


def load_run(run_dir: str, overrides=(), progress: bool = True):
    """A finished run's config, task and policy with its trained adapters loaded."""
    from bpo.loop.build import build_policy, build_task
    from bpo.loop.config import RunConfig
    from bpo.run.rundir import RunDir

    run = RunDir(run_dir)
    if not run.config.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
    if not (run.adapters / "a0").is_dir():
        raise ConfigError(f"{run_dir}: the run has no trained adapters yet (finish it with bpo train --resume {run_dir})")
    cfg = load_config(RunConfig, run.config, overrides)
    task = build_task(cfg, run.sft_base)
    policy = build_policy(cfg, task, run.sft_base, progress)
    from safetensors import SafetensorError

    from bpo.model.loading import context_length
    from bpo.loop.preflight import Base, fit_task
    from bpo.run.rundir import RunDirError

    task = fit_task(cfg, task, Base(run.root, policy.tokenizer, context_length(policy.model)))  # as the run saw it

    try:
        policy.load_members(run.adapters)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:  # damaged or foreign adapter files
        raise RunDirError(f"{run.adapters}: cannot load the trained adapters ({str(err)[:120]}); rewrite them with bpo train --resume {run_dir}") from None
    return run, cfg, task, policy


def cmd_eval(args) -> int:
    from bpo.loop.online import evaluate_run

    run, cfg, task, policy = load_run(args.run_dir, args.overrides, progress=not args.quiet)
    result = evaluate_run(cfg, policy, task, progress=not args.quiet)
    run.write_eval(result)
    print(summary(result, str(run.root)))
    return 0


def cmd_compare(args) -> int:
    """Win/tie/lose of RUN_A's policy against RUN_B's (or RUN_A's SFT start), held-out margins: compare.json."""
    import json
    import os
    from dataclasses import replace

    from bpo.evaluation.compare import Contender, compare, heldout_report, summary_text
    from bpo.judging.judges import load_judge
    from bpo.model.policy import MERGED

    if args.tie_margin < 0 or args.temperature <= 0:
        raise ConfigError("--tie-margin must be >= 0 and --temperature > 0")
    progress = not args.quiet
    run, cfg, task, policy = load_run(args.run_a, progress=progress)
    a = Contender(args.run_a, policy, MERGED)
    if args.run_b == "sft" and not Path("sft").is_dir():
        b = Contender("sft", policy, None)  # adapters off: the start both were trained from
    else:
        _, cfg_b, _, policy_b = load_run(args.run_b, progress=progress)
        if cfg_b.task != cfg.task:
            raise ConfigError(f"{args.run_a} and {args.run_b} were trained on different tasks ({cfg.task}, {cfg_b.task})")
        b = Contender(args.run_b, policy_b, MERGED)
    out = Path(args.out) if args.out else run.root / f"compare-{Path(args.run_b).name}"
    out.mkdir(parents=True, exist_ok=True)
    examples = task.eval[: args.prompts or cfg.eval.prompts]
    sampling = replace(cfg.sampling, temperature=args.temperature)
    judge = load_judge(cfg.eval.judge, task.judge, cfg.policy.torch_device())
    result = compare(a, b, examples, judge, sampling, args.tie_margin, args.bad_threshold, task.chat_template, args.seed, progress)
    if args.pairs:
        result["heldout"] = heldout_report([a, b], args.pairs, args.beta or cfg.beta, task.chat_template, out / "margins.png")
    tmp = out / "compare.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out / "compare.json")  # complete or absent: `bpo reproduce` reuses a finished comparison
    print(summary_text(result) + f"\nwritten: {out / 'compare.json'}")
    return 0


def cmd_export(args) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose a new folder")
    run, cfg, task, policy = load_run(args.run_dir, progress=not args.quiet)
    policy.export_merged(out)
    print(f"merged model written to {out} (load with AutoModelForCausalLM.from_pretrained); adapters: {run.adapters}")
    return 0


def cmd_annotate(args) -> int:
    """Serve the labelling page of a run with annotator.kind=human, add a rater, or export its labels."""
    from bpo.annotate.commands import annotate

    return annotate(args.run_dir, args.port, args.host, tuple(args.allow_host or ()), args.add_rater, args.export)


def cmd_status(args) -> int:
    """Where a run stands: training steps done, phases with pairs, and (human annotation) labels and agreement."""
    from bpo.loop.config import RunConfig
    from bpo.common.jsonl import read_log
    from bpo.run.rundir import RunDir

    run = RunDir(args.run_dir)
    run.check_resumable()
    cfg = load_config(RunConfig, run.config)
    schedule = cfg.resolved_schedule()
    steps = sum(1 for row in read_log(run.metrics) if "loss" in row)
    phases = sorted(int(p.stem.split("-")[1]) for p in run.pairs_dir.glob("phase-*.jsonl"))
    print(f"run {run.root}: method {cfg.method}, annotator {cfg.annotator.kind}; {steps} of {schedule.steps} steps trained; "
          f"labelled pairs stored for {len(phases)} of {schedule.phases} phases; " + ("evaluated" if run.eval.exists() else "not evaluated yet"))
    if (run.root / "labels.sqlite").exists():
        from bpo.annotate.status import labels_status
        from bpo.annotate.store import LabelStore

        print(labels_status(LabelStore.open(run.root)))
    return 0


def cmd_reproduce(args) -> int:
    """Analogues of the BPO paper's experiments (bpo.experiments.reproduce): runs, then report.md + PNGs."""
    from bpo.loop.config import RunConfig
    from bpo.experiments.reproduce import BUILTIN, full_plan, quick_plan, reproduce

    make_plan = quick_plan if args.quick else full_plan
    plan = make_plan(args.task or list(BUILTIN), args.seeds or (2 if args.quick else 3), args.overrides)
    for spec in plan.specs():  # every run's settings are checked before the first run starts
        load_config(RunConfig, None, list(spec.overrides))
    command = "bpo reproduce " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "bpo reproduce"
    report = reproduce(plan, Path(args.out), args.jobs, progress=not args.quiet, command=command)
    print(f"report: {report}")
    return 0


DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def cmd_demo(args) -> int:
    """The README's main job: bpo/configs/demo.yaml, then report.md and report.png in the run folder."""
    import time

    from bpo.loop.config import RunConfig
    from bpo.run.report import write_report

    out = load_config(RunConfig, DEMO_CONFIG, args.overrides).out or time.strftime("runs/demo-%Y%m%d-%H%M%S")
    train_args = argparse.Namespace(config=str(DEMO_CONFIG), overrides=[*args.overrides, f"out={out}"], resume=None, quiet=args.quiet)
    started = time.time()
    code = cmd_train(train_args)
    if code == 0:
        report = write_report(out, seconds=time.time() - started)
        print(report.read_text())
        print(f"report: {report} (plot: {report.with_suffix('.png')})")
    return code


class Parser(argparse.ArgumentParser):
    """argparse's parser; with config_keys, its help ends with every configuration key (`bpo train --help`),
    listed only when the help is shown: building the list imports every config section, and torch."""

    def __init__(self, *args, config_keys: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_keys = config_keys

    def format_help(self) -> str:
        return super().format_help() + (f"\n{keys_help()}\n" if self.config_keys else "")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="bpo", description="Online preference optimisation under an annotation budget (BPO).")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="run the online loop", config_keys=True, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", nargs="?", help="a YAML config (optional: the defaults run the built-in task)")
    t.add_argument("overrides", nargs="*", help="key=value settings, e.g. method=bpo schedule.phases=4 beta=0.5")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or crashed run from its last complete checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("eval", help="re-evaluate a run folder's adapters (writes eval.json)")
    e.add_argument("run_dir", help="a run folder written by `bpo train`")
    e.add_argument("overrides", nargs="*", help="key=value settings for evaluation, e.g. eval.prompts=64 eval.greedy=false")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(fn=cmd_eval)
    c = sub.add_parser("compare", help="win/tie/lose of two runs' policies under the judge (IOPO's metrics): compare.json",
                       description="Sample both policies' responses to RUN_A's held-out prompts at --temperature (same seed), score "
                       "each with RUN_A's evaluation judge, count a win where the score difference exceeds --tie-margin; "
                       "with --pairs, also each policy's reward margin and pairwise accuracy on a held-out preference file.")
    c.add_argument("run_a", help="a finished run folder")
    c.add_argument("run_b", help="another finished run folder on the same task, or `sft`: RUN_A's initial policy")
    c.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of both policies (default 0.8, the IOPO paper's)")
    c.add_argument("--tie-margin", type=float, default=0.0, help="score differences up to this are ties (default 0)")
    c.add_argument("--bad-threshold", type=float, help="also report the bad-case rate: prompts where both responses score below this")
    c.add_argument("--pairs", metavar="FILE", help="a held-out preference file (TRL layout): reward margins vs the SFT policy, pairwise accuracy, margins.png")
    c.add_argument("--beta", type=float, help="beta of the reward margins (default: RUN_A's beta)")
    c.add_argument("--prompts", type=int, help="held-out prompts to compare on (default: RUN_A's eval.prompts)")
    c.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    c.add_argument("--out", help="folder for compare.json and margins.png (default: RUN_A/compare-<RUN_B name>)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(fn=cmd_compare)
    x = sub.add_parser("export", help="write a run's merged policy as a transformers model folder (safetensors)")
    x.add_argument("run_dir", help="a finished run folder")
    x.add_argument("out", help="a new folder for the merged model")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(fn=cmd_export)
    a = sub.add_parser("annotate", help="label a run's pairs in a web page (annotator.kind=human): serve it, add a rater, export labels",
                       description="Serve the labelling page of RUN_DIR's pairs awaiting labels (on 127.0.0.1 unless --host is given). "
                       "Every rater needs their own secret link: add them with --add-rater NAME first.")
    a.add_argument("run_dir", help="a run folder with annotator.kind=human (its labels.sqlite)")
    a.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    a.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only); e.g. 0.0.0.0 to serve a network")
    a.add_argument("--allow-host", action="append", metavar="NAME", help="a further name raters reach this server by (Host header check), e.g. the machine's DNS name; repeatable")
    a.add_argument("--add-rater", metavar="NAME", help="add a rater and print their secret link, then exit")
    a.add_argument("--export", metavar="FILE", help="write the decided pairs as preference JSONL (prompt/chosen/rejected, TRL's layout), then exit")
    a.set_defaults(fn=cmd_annotate)
    st = sub.add_parser("status", help="where a run stands: steps trained, phases, labels and raters' agreement")
    st.add_argument("run_dir", help="a run folder")
    st.set_defaults(fn=cmd_status)
    r = sub.add_parser("reproduce", help="the BPO paper's experiments on our tasks: runs (reused when finished), report.md and plots")
    r.add_argument("overrides", nargs="*", help="key=value settings given to every run, e.g. policy.path=/models/sft")
    r.add_argument("--quick", action="store_true", help="DPO only, beta 0.5 and 0.1, F in {1, 2, T}, T = 32, 2 seeds for Table 1 and 1 for the rest (5-10 min on 2 cores)")
    r.add_argument("--task", action="append", help="a built-in task or a task YAML file (repeat for several; default: reviews and sorting)")
    r.add_argument("--seeds", type=int, help="number of seeds (default 2 with --quick, else 3)")
    r.add_argument("--out", default="runs/reproduce", help="folder of the runs and the report (default runs/reproduce)")
    r.add_argument("--jobs", type=int, help="runs in parallel processes (default: one per 2 cores)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(fn=cmd_reproduce)
    d = sub.add_parser("demo", help="the README's main job")
    d.add_argument("overrides", nargs="*", help="key=value settings")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(fn=cmd_demo)
    return p


def split_config_arg(args) -> None:
    """`bpo train key=value` (no config file): the first positional is an override, not a file."""
    if getattr(args, "config", None) and re.match(r"^[A-Za-z_][\w.]*=", args.config):
        args.overrides = [args.config] + args.overrides
        args.config = None


def user_errors() -> tuple[type[Exception], ...]:
    from bpo.loop.build import VocabularyMismatch
    from bpo.common.jsonl import DataFileError
    from bpo.judging.judges import JudgeError
    from bpo.model.loading import ModelFolderError
    from bpo.judging.pairs import BudgetError
    from bpo.annotate.store import StoreError
    from bpo.model.pretrained import PretrainedModelError
    from bpo.run.rundir import RunDirError
    from bpo.core.schedule import ScheduleError

    return (ConfigError, DataFileError, ModelFolderError, RunDirError, ScheduleError, JudgeError, VocabularyMismatch,
            BudgetError, PretrainedModelError, StoreError)


def _fail(text: str, err: BaseException, code: int) -> int:
    """One line for the error, and one more (if any) for what is left of the run and how to go on."""
    hint = getattr(err, "bpo_hint", "")
    print(f"bpo: {text}" + (f"\nbpo: {hint}" if hint else ""), file=sys.stderr)
    return code


def _quiet_libraries(args) -> None:
    """--quiet silences transformers' and the hub's progress bars too (weight loading)."""
    if getattr(args, "quiet", False):
        import os

        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Every bad input ends here with exit code 2 and one or two lines naming the file, line and field
    (or key, or folder); an interrupt with 128 + the signal; never with a traceback."""
    from bpo.common.stop import Interrupted, interruptible

    args = parser().parse_args(argv)
    split_config_arg(args)
    _quiet_libraries(args)
    try:
        with interruptible():
            return args.fn(args)
    except user_errors() as err:  # bad configs, data files, model or run folders: one clear line
        return _fail(f"error: {err}", err, EXIT_BAD_INPUT)
    except KeyboardInterrupt as err:
        return _fail("interrupted (SIGINT)", err, 130)
    except Interrupted as err:
        return _fail(f"interrupted ({err})", err, err.exit_code)
    except OSError as err:  # the OS refused a file operation the checks could not foresee: name the file
        if err.filename is None:
            raise
        return _fail(f"error: {err.filename}: {err.strerror}", err, EXIT_BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
