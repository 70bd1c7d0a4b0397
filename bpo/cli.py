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

from bpo.common.configlib import ConfigError, describe, load_config, refuse_repeated_keys

if TYPE_CHECKING:
    pass

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def keys_help() -> str:
    from bpo.loop.config import RunConfig

    lines = ["configuration keys (set in CONFIG.yaml or as key=value):"]
    for key, type_name, default, text in describe(RunConfig):
        lines.append(f"  {key} ({type_name}, default {default})\n      {text}")
    return "\n".join(lines)


def cmd_train(args) -> int:
    from bpo import api

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its own config.yaml; give no config or key=value")
        if args.dry_run:
            raise ConfigError("--dry-run plans a new run; a resumed run's cost is what is left of it")
        run = api.Run(args.resume).resume(progress=not args.quiet)
    elif args.dry_run:
        from bpo.loop.dryrun import plan_text

        print(plan_text(api.dry_run(args.config, overrides=args.overrides, progress=not args.quiet)))
        return 0
    else:
        cfg = api.make_config(args.config, args.overrides)
        run = api.start_run(cfg, cfg.out or api.default_out(cfg), progress=not args.quiet)
    print(summary(run.evaluation, str(run.folder)))
    return 0


def summary(result: dict, out: str) -> str:
    """Win rate (ties 1/2), strict win rate (ties 0, the BPO paper's) and tie rate, after and before."""
    from bpo.run.report import rates_text

    text = f"win rate vs references (ties 1/2): {rates_text(result)} (n={result['n']})"
    if "before" in result:
        text += f"\ninitial policy: {rates_text(result['before'])}"
    return text + f"\nrun folder: {out}"


def cmd_eval(args) -> int:
    from bpo import api

    result = api.evaluate(args.run_dir, args.overrides, progress=not args.quiet)
    print(summary(result, str(args.run_dir)))
    return 0


def cmd_compare(args) -> int:
    """Win/tie/lose of RUN_A's policy against RUN_B's (or RUN_A's SFT start), held-out margins: compare.json."""
    from bpo import api
    from bpo.evaluation.compare import summary_text

    result = api.compare(
        args.run_a,
        args.run_b,
        out=args.out,
        temperature=args.temperature,
        tie_margin=args.tie_margin,
        bad_threshold=args.bad_threshold,
        pairs=args.pairs,
        beta=args.beta,
        prompts=args.prompts,
        seed=args.seed,
        progress=not args.quiet,
    )
    written = result.pop("written")
    print(summary_text(result) + f"\nwritten: {written}")
    return 0


def cmd_export(args) -> int:
    from bpo import api

    out = api.export(args.run_dir, args.out, progress=not args.quiet)
    print(
        f"merged model written to {out} (load with AutoModelForCausalLM.from_pretrained); adapters: "
        f"{api.load_run(args.run_dir).dir.adapters}"
    )
    return 0


def cmd_annotate(args) -> int:
    """Serve the labelling page of a run with annotator.kind=human, add a rater, or export its labels."""
    from bpo.annotate.commands import annotate

    return annotate(args.run_dir, args.port, args.host, tuple(args.allow_host or ()), args.add_rater, args.export)


def cmd_status(args) -> int:
    """Where a run stands: training steps done, phases with pairs, and (human annotation) labels and agreement."""
    import json

    from bpo.common.jsonl import read_log
    from bpo.evaluation.guard import flags_in_logs, summary_lines
    from bpo.loop.config import RunConfig
    from bpo.run.report import rates_text
    from bpo.run.rundir import RunDir

    run = RunDir(args.run_dir)
    run.check_resumable()
    cfg = load_config(RunConfig, run.config)
    schedule = cfg.resolved_schedule()
    steps = sum(1 for row in read_log(run.metrics) if "loss" in row)
    phases = run.pair_phases()
    evaluated = json.loads(run.eval.read_text()) if run.eval.exists() else None
    print(
        f"run {run.root}: method {cfg.method}, annotator {cfg.annotator.kind}; {steps} of {schedule.steps} steps "
        "trained; "
        f"labelled pairs stored for {len(phases)} of {schedule.phases} phases; "
        + (f"evaluated, win rate vs references {rates_text(evaluated)}" if evaluated else "not evaluated yet")
        + (f" (initial policy {rates_text(evaluated['before'])})" if evaluated and "before" in evaluated else "")
    )
    if evaluated and "guard" in evaluated:
        flags = evaluated["guard"]["flags"]
    else:
        flags = flags_in_logs(read_log(run.evals), read_log(run.phase_times))
    for line in summary_lines(flags):
        print(line)
    if run.labels.exists():
        from bpo.annotate.status import labels_status
        from bpo.annotate.store import LabelStore

        print(labels_status(LabelStore.open(run.root)))
    return 0


def cmd_reproduce(args) -> int:
    """Analogues of the BPO paper's experiments (bpo.experiments.reproduce): runs, then report.md + PNGs. A run
    that fails or stops ends the sweep as `bpo train` ends (main); the runs finished so far are kept."""
    from bpo.common.stop import StopRequested
    from bpo.experiments.papers import reproduce_papers

    command = "bpo reproduce " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "bpo reproduce"
    try:
        report = reproduce_papers(
            args.out,
            quick=args.quick,
            tasks=args.task,
            seeds=args.seeds,
            overrides=args.overrides,
            jobs=args.jobs,
            progress=not args.quiet,
            command=command,
            select=args.select,
            preset=args.preset,
        )
    except StopRequested as stop:  # the sweep goes on from here when run again: finished runs are reused
        stop.bpo_hint = "or run the same bpo reproduce command again: its finished runs are reused, this one resumed"
        raise
    print(f"report: {report}")
    return 0


def cmd_demo(args) -> int:
    """The README's main job: bpo/configs/demo.yaml, then report.md and report.png in the run folder."""
    from bpo import api

    run, report = api.demo(args.overrides, progress=not args.quiet)
    print(summary(run.evaluation, str(run.folder)))
    print(report.read_text())
    print(f"report: {report} (plot: {report.with_suffix('.png')})")
    return 0


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
    t = sub.add_parser(
        "train", help="run the online loop", config_keys=True, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    t.add_argument("config", nargs="?", help="a YAML config (optional: the defaults run the built-in task)")
    t.add_argument("overrides", nargs="*", help="key=value settings, e.g. method=bpo schedule.phases=4 beta=0.5")
    t.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a stopped or crashed run from its last complete checkpoint"
    )
    t.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything a run checks, probe a few sampling and training steps, print T, F, K, M, N, B, the "
        "annotations and judge calls, model, device, dtype, peak memory and a time estimate; write nothing",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("eval", help="re-evaluate a run folder's adapters (writes eval.json)")
    e.add_argument("run_dir", help="a run folder written by `bpo train`")
    e.add_argument(
        "overrides", nargs="*", help="key=value settings for evaluation, e.g. eval.prompts=64 eval.greedy=false"
    )
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(fn=cmd_eval)
    c = sub.add_parser(
        "compare",
        help="win/tie/lose of two runs' policies under the judge (IOPO's metrics): compare.json",
        description="Sample both policies' responses to RUN_A's held-out prompts at --temperature (same seed), score "
        "each with RUN_A's evaluation judge, count a win where the score difference exceeds --tie-margin; "
        "with --pairs, also each policy's reward margin and pairwise accuracy on a held-out preference file.",
    )
    c.add_argument("run_a", help="a finished run folder")
    c.add_argument("run_b", help="another finished run folder on the same task, or `sft`: RUN_A's initial policy")
    c.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature of both policies (default 0.8, the IOPO paper's)",
    )
    c.add_argument("--tie-margin", type=float, default=0.0, help="score differences up to this are ties (default 0)")
    c.add_argument(
        "--bad-threshold",
        type=float,
        help="also report the bad-case rate: prompts where both responses score below this",
    )
    c.add_argument(
        "--pairs",
        metavar="FILE",
        help="a held-out preference file (TRL layout): reward margins vs the SFT policy, pairwise accuracy, "
        "margins.png",
    )
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
    a = sub.add_parser(
        "annotate",
        help="label a run's pairs in a web page (annotator.kind=human): serve it, add a rater, export labels",
        description="Serve the labelling page of RUN_DIR's pairs awaiting labels (on 127.0.0.1 unless --host is "
        "given). "
        "Every rater needs their own secret link: add them with --add-rater NAME first.",
    )
    a.add_argument("run_dir", help="a run folder with annotator.kind=human (its labels.sqlite)")
    a.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    a.add_argument(
        "--host", help="address to listen on (default 127.0.0.1: this machine only); e.g. 0.0.0.0 to serve a network"
    )
    a.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="a further name raters reach this server by (Host header check), e.g. the machine's DNS name; repeatable",
    )
    a.add_argument("--add-rater", metavar="NAME", help="add a rater and print their secret link, then exit")
    a.add_argument(
        "--export",
        metavar="FILE",
        help="write the decided pairs as preference JSONL (prompt/chosen/rejected, TRL's layout), then exit",
    )
    a.set_defaults(fn=cmd_annotate)
    st = sub.add_parser("status", help="where a run stands: steps trained, phases, labels and raters' agreement")
    st.add_argument("run_dir", help="a run folder")
    st.set_defaults(fn=cmd_status)
    r = sub.add_parser(
        "reproduce", help="the BPO paper's experiments on our tasks: runs (reused when finished), report.md and plots"
    )
    r.add_argument("overrides", nargs="*", help="key=value settings given to every run, e.g. policy.path=/models/sft")
    r.add_argument(
        "--quick",
        action="store_true",
        help="DPO only, beta 0.5 and 0.1, F in {1, 2, T}, T = 32, 2 seeds for Table 1 and 1 for the rest (10-20 min on "
        "2 cores)",
    )
    r.add_argument(
        "--task",
        action="append",
        help="a built-in task or a task YAML file (repeat for several; default: reviews and sorting)",
    )
    r.add_argument("--seeds", type=int, help="number of seeds (default 2 with --quick, else 5)")
    r.add_argument(
        "--select",
        choices=("dev", "paper"),
        help="learning rates: dev (the default plan's) chooses each method's from a small grid on the tasks' dev "
        "prompts, by one rule for all, on a seed of its own (and the EMA reference's tau); paper (--preset paper's) "
        "trains every method at one learning rate, the configuration's optim.lr, as the papers do",
    )
    r.add_argument(
        "--preset",
        choices=("default", "paper", "iopo"),
        default="default",
        help="paper: the BPO paper's own settings where they run here (beta 0.1, 5 adapters, DPO/IPO/SLiC, T = 120 "
        "with Figure 4's F values 1, 2, 6, 15, T; Figure 6's 1-adapter arms of BPO and on-policy DPO; Figure 7's "
        "five taus; IOPO offline as in its paper); iopo: the IOPO paper's Table 1 only (IOPO offline, both readings, "
        "against offline DPO, RSO, IPO and KTO-pair on the same pairs, beta 0.1 as in its paper, with Table 1's DPO "
        "runs at that beta); default: "
        "the plan sized for 2 CPU cores",
    )
    r.add_argument("--out", default="runs/reproduce", help="folder of the runs and the report (default runs/reproduce)")
    r.add_argument("--jobs", type=int, help="runs in parallel processes (default: one per 2 cores)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(fn=cmd_reproduce)
    d = sub.add_parser("demo", help="the README's main job")
    d.add_argument("overrides", nargs="*", help="key=value settings")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(fn=cmd_demo)
    return p


SETTING = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_arguments(p: argparse.ArgumentParser, argv: list[str] | None):
    """Options and key=value settings in any order: what argparse leaves over after an option (a setting,
    `bpo train method=iopo --quiet out=DIR`, or train's config file, `bpo train beta=1 --quiet cfg.yaml`) is
    appended to the command's positionals, in order; split_config_arg then tells the file from the settings."""
    args, extra = p.parse_known_args(argv)
    positional = hasattr(args, "overrides") and (lambda a: SETTING.match(a) or hasattr(args, "config"))
    unknown = [a for a in extra if a.startswith("-") or not (positional and positional(a))]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    return args


def split_config_arg(args) -> None:
    """train's positionals as (config file, settings): the one that is not key=value is the file, wherever it
    stands (`bpo train key=value` has none); two files are refused."""
    if not hasattr(args, "config"):
        return
    given = ([args.config] if args.config else []) + list(args.overrides or [])

    # a bare word later on (`beta`) stays a setting, refused as one
    is_file = [
        not SETTING.match(a) and (i == 0 or a.endswith((".yaml", ".yml")) or Path(a).is_file())
        for i, a in enumerate(given)
    ]
    files = [a for a, f in zip(given, is_file) if f]
    if len(files) > 1:
        raise ConfigError(f"one config file at most, got {', '.join(files)}; give the rest as key=value")
    args.config = files[0] if files else None
    args.overrides = [a for a, f in zip(given, is_file) if not f]


def user_errors() -> tuple[type[Exception], ...]:
    from bpo.annotate.store import StoreError
    from bpo.common.jsonl import DataFileError
    from bpo.core.schedule import ScheduleError
    from bpo.judging.judges import JudgeError
    from bpo.judging.pairs import BudgetError
    from bpo.loop.build import VocabularyMismatch
    from bpo.model.loading import ModelFolderError
    from bpo.model.pretrained import PretrainedModelError
    from bpo.run.rundir import RunDirError

    return (
        ConfigError,
        DataFileError,
        ModelFolderError,
        RunDirError,
        ScheduleError,
        JudgeError,
        VocabularyMismatch,
        BudgetError,
        PretrainedModelError,
        StoreError,
    )


def _fail(text: str, err: BaseException, code: int) -> int:
    """One line for the error, and one more (if any) for what is left of the run and how to go on."""
    hint = getattr(err, "bpo_hint", "")
    _end_progress_bars()
    print(f"bpo: {text}" + (f"\nbpo: {hint}" if hint else ""), file=sys.stderr)
    return code


def _end_progress_bars() -> None:
    """Close the bars an error left open, so that its message starts a line of its own instead of following
    the bar's last '\r'-drawn state (tqdm is imported by then if any bar was drawn)."""
    tqdm_module = sys.modules.get("tqdm.std")
    if tqdm_module is None:
        return
    for bar in list(tqdm_module.tqdm._instances):
        bar.close()


def _quiet_libraries(args) -> None:
    """--quiet silences transformers' and the hub's progress bars too (weight loading)."""
    if getattr(args, "quiet", False):
        import os

        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Every bad input ends here with exit code 2 and one or two lines naming the file, line and field
    (or key, or folder); an interrupt with 128 + the signal; a stopped run (a signal, the collapse guard, a
    judge's timeout) with its stop's code and how to resume; divergence with 3; never with a traceback. Every
    command shares this one path (train, demo, reproduce's runs, eval, ...)."""
    from bpo.common.console import bpo_warnings
    from bpo.common.stop import Interrupted, StopRequested, interruptible

    args = parse_arguments(parser(), argv)
    _quiet_libraries(args)
    try:
        split_config_arg(args)
        refuse_repeated_keys(getattr(args, "overrides", None) or ())
        with interruptible(), bpo_warnings():
            return args.fn(args)
    except user_errors() as err:  # bad configs, data files, model or run folders: one clear line
        return _fail(f"error: {err}", err, EXIT_BAD_INPUT)
    except StopRequested as stop:  # resumable; the loop's own stops say how to resume, a judge's stop may not
        return _fail(str(stop), stop if _needs_hint(stop) else None, stop.exit_code)
    except KeyboardInterrupt as err:
        return _fail("interrupted (SIGINT)", err, 130)
    except Interrupted as err:
        return _fail(f"interrupted ({err})", err, err.exit_code)
    except OSError as err:  # the OS refused a file operation the checks could not foresee: name the file
        if err.filename is None:
            raise
        return _fail(f"error: {err.filename}: {err.strerror}", err, EXIT_BAD_INPUT)
    except _diverged() as err:  # (last: its module imports torch, which --help must not)
        return _fail(f"error: training diverged at {err}", err, EXIT_DIVERGED)


def _diverged() -> type[Exception]:
    from bpo.loop.online import TrainingDiverged

    return TrainingDiverged


def _needs_hint(stop) -> bool:
    """Whether a stop's message needs the hint on what is left of the run (bpo.api.after_failure): a stop the
    loop raised says how to resume already; a judge's stop outside it (start-up, the final evaluation) and a
    stopped sweep (bpo reproduce) do not."""
    from bpo.judging.judges import JudgeStop

    return isinstance(stop, JudgeStop) or "bpo reproduce" in getattr(stop, "bpo_hint", "")


if __name__ == "__main__":
    sys.exit(main())
