"""The `bpo` command line: one plain function per sub-command.

    bpo train [CONFIG.yaml] [key=value ...]   run the online loop; writes a run folder
    bpo eval RUN_DIR                          re-evaluate a finished run's adapters
    bpo demo                                  the README's first command: a small end-to-end run
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bpo.config import RunConfig
from bpo.configlib import ConfigError, describe, load_config

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def default_out(cfg: RunConfig) -> str:
    task = Path(cfg.task).stem
    return f"runs/{task}-{cfg.method}-{cfg.loss}-b{cfg.beta:g}-s{cfg.seed}"


def keys_help() -> str:
    lines = ["configuration keys (set in CONFIG.yaml or as key=value):"]
    for key, type_name, default, text in describe(RunConfig):
        lines.append(f"  {key} ({type_name}, default {default})\n      {text}")
    return "\n".join(lines)


def cmd_train(args) -> int:
    from bpo.online import TrainingDiverged, run_online
    from bpo.stop import StopRequested

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its own config.yaml; give no config or key=value")
        from bpo.rundir import RunDir

        out = args.resume
        RunDir(out).check_resumable()  # before anything is built: a wrong folder costs nothing
        cfg = load_config(RunConfig, RunDir(out).config)
    else:
        cfg = load_config(RunConfig, args.config, args.overrides)
        out = cfg.out or default_out(cfg)
    try:
        result = run_online(cfg, out, progress=not args.quiet, resume=bool(args.resume))
    except StopRequested as stop:
        print(f"bpo: {stop}", file=sys.stderr)
        return stop.exit_code
    except TrainingDiverged as err:
        print(f"bpo: error: training diverged at {err}", file=sys.stderr)
        return EXIT_DIVERGED
    print(summary(result, out))
    return 0


def summary(result: dict, out: str) -> str:
    """Win rate (ties 1/2), strict win rate (ties 0, the BPO paper's) and tie rate, after and before."""
    from bpo.report import rates_text

    text = f"win rate vs references (ties 1/2): {rates_text(result)} (n={result['n']})"
    if "before" in result:
        text += f"\ninitial policy: {rates_text(result['before'])}"
    return text + f"\nrun folder: {out}"


def load_run(run_dir: str, overrides=(), progress: bool = True):
    """A finished run's config, task and policy with its trained adapters loaded."""
    from bpo.build import build_policy, build_task
    from bpo.rundir import RunDir

    run = RunDir(run_dir)
    if not run.config.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
    if not (run.adapters / "a0").is_dir():
        raise ConfigError(f"{run_dir}: the run has no trained adapters yet (finish it with bpo train --resume {run_dir})")
    cfg = load_config(RunConfig, run.config, overrides)
    task = build_task(cfg)
    policy = build_policy(cfg, task, run.sft_base, progress)
    policy.load_members(run.adapters)
    return run, cfg, task, policy


def cmd_eval(args) -> int:
    from bpo.online import evaluate_run

    run, cfg, task, policy = load_run(args.run_dir, args.overrides, progress=not args.quiet)
    result = evaluate_run(cfg, policy, task, progress=not args.quiet)
    run.write_eval(result)
    print(summary(result, str(run.root)))
    return 0


def cmd_export(args) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose a new folder")
    run, cfg, task, policy = load_run(args.run_dir, progress=not args.quiet)
    policy.export_merged(out)
    print(f"merged model written to {out} (load with AutoModelForCausalLM.from_pretrained); adapters: {run.adapters}")
    return 0


def cmd_reproduce(args) -> int:
    """Analogues of the BPO paper's experiments (bpo.experiments.reproduce): runs, then report.md + PNGs."""
    from bpo.experiments.reproduce import full_plan, quick_plan, reproduce

    make_plan = quick_plan if args.quick else full_plan
    plan = make_plan(args.task or ["reviews"], args.seeds or (2 if args.quick else 3), args.overrides)
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

    from bpo.report import write_report

    out = load_config(RunConfig, DEMO_CONFIG, args.overrides).out or time.strftime("runs/demo-%Y%m%d-%H%M%S")
    train_args = argparse.Namespace(config=str(DEMO_CONFIG), overrides=[*args.overrides, f"out={out}"], resume=None, quiet=args.quiet)
    started = time.time()
    code = cmd_train(train_args)
    if code == 0:
        report = write_report(out, seconds=time.time() - started)
        print(report.read_text())
        print(f"report: {report} (plot: {report.with_suffix('.png')})")
    return code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bpo", description="Online preference optimisation under an annotation budget (BPO).")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="run the online loop", epilog=keys_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
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
    x = sub.add_parser("export", help="write a run's merged policy as a transformers model folder (safetensors)")
    x.add_argument("run_dir", help="a finished run folder")
    x.add_argument("out", help="a new folder for the merged model")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(fn=cmd_export)
    r = sub.add_parser("reproduce", help="the BPO paper's experiments on our tasks: runs (reused when finished), report.md and plots")
    r.add_argument("overrides", nargs="*", help="key=value settings given to every run, e.g. policy.path=/models/sft")
    r.add_argument("--quick", action="store_true", help="DPO at beta 0.1 only, F in {1, 4, T}, 2 seeds (about 10 min on 2 cores)")
    r.add_argument("--task", action="append", help="a built-in task or a task YAML file (repeat for several; default: reviews)")
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
    from bpo.build import VocabularyMismatch
    from bpo.jsonl import DataFileError
    from bpo.judges import JudgeError
    from bpo.models import ModelFolderError
    from bpo.pairs import BudgetError
    from bpo.rundir import RunDirError
    from bpo.schedule import ScheduleError

    return (ConfigError, DataFileError, ModelFolderError, RunDirError, ScheduleError, JudgeError, VocabularyMismatch, BudgetError)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    split_config_arg(args)
    try:
        return args.fn(args)
    except user_errors() as err:  # bad configs, data files, model or run folders: one clear line
        print(f"bpo: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
