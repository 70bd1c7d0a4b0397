"""Running `bpo reproduce`'s plan (bpo.experiments.reproduce): the sweep of runs, then the report
(bpo.experiments.sections); `reproduce_papers` is the API's `bpo.reproduce`."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from bpo.experiments import sections
from bpo.experiments.reproduce import BUILTIN, PRESETS, Plan, full_plan, iopo_plan, paper_plan, quick_plan
from bpo.experiments.selection import Choice, choose, outcome_of
from bpo.experiments.sweep import RunSpec, default_jobs, execute


def reproduce(
    plan: Plan, out: Path, jobs: int | None = None, progress: bool = True, command: str = "bpo reproduce"
) -> Path:
    """Train (or reuse) every run, then Figure 5's runs on the gold policies, the comparisons, and the report."""

    started = time.time()
    out = Path(out).resolve()  # Figure 5's runs name their gold reference by an absolute path
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or default_jobs()
    choices: list[tuple[tuple, Choice]] = []
    for key, grid, arms in (
        ("optim.lr", plan.lr_grid, plan.lr_arms),
        ("reference.ema_tau", plan.tau_grid, plan.tau_arms),
    ):
        if grid:  # the tau arms are read after the learning rates are chosen: the EMA run takes the BPO arm's
            plan, chosen = select(plan, key, grid, arms(), out, jobs, progress)
            choices += chosen
    results = execute(plan.specs(), out / "runs", jobs, greedy=True, progress=progress)
    if "figure5" in plan.sections:
        gold = {task: sections.export_gold(plan.gold_source(task), out / "runs") for task in plan.tasks}
        trained_now = {r.spec for r in results if not r.reused}
        results = [
            replace(r, reused=r.reused and r.spec not in trained_now)
            for r in execute(plan.specs(gold), out / "runs", jobs, greedy=True, progress=progress)
        ]
    return sections.write_report(plan, results, out, started, command, choices)


def select(
    plan: Plan, key: str, grid, arms: dict[tuple, RunSpec], out: Path, jobs: int, progress: bool
) -> tuple[Plan, list[tuple[tuple, Choice]]]:
    """Train (or reuse) every arm's selection runs on the dev prompts, choose each arm's value of `key` by
    bpo.experiments.selection.RULE, and return the plan that gives every run its arm's value."""
    candidates = plan.selection_specs(key, grid, arms)
    specs = [spec for runs in candidates.values() for _, spec in runs]
    results = {r.spec: r for r in execute(specs, out / "runs", jobs, greedy=False, progress=progress)}
    chosen = []
    for arm, runs in candidates.items():
        outcomes: dict[float, list] = {}
        for value, spec in runs:
            outcomes.setdefault(value, []).append(outcome_of(results[spec].sampled))
        chosen.append((arm, choose(key, outcomes)))
    return replace(plan, chosen=plan.chosen + tuple((arm, key, c.value) for arm, c in chosen)), chosen


def reproduce_papers(
    out: str | Path = "runs/reproduce",
    *,
    quick: bool = False,
    tasks: Sequence[str] | None = None,
    seeds: int | None = None,
    overrides=(),
    jobs: int | None = None,
    progress: bool = True,
    command: str = "bpo.reproduce()",
    select: str | None = None,
    preset: str = "default",
) -> Path:
    """`bpo.reproduce`: the papers' experiments on our tasks, the plan full or --quick: runs (reused when
    finished), then report.md and the plots in `out`; the report's path. `overrides` (key=value strings or
    a mapping) go to every run; each run's settings are checked before the first one starts. `select`: "dev"
    chooses each method's learning rate on the tasks' dev prompts (bpo.experiments.selection), "paper" trains
    every method at one learning rate (the configuration's, as the papers do); default "dev", or "paper" with
    preset "paper" (the BPO paper's own settings where they run here: reproduce.paper_plan); preset "iopo": the
    IOPO paper's Table 1 only (reproduce.iopo_plan)."""
    from bpo.api import override_items
    from bpo.common.configlib import load_config
    from bpo.loop.config import RunConfig

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if preset != "default" and quick:
        raise ValueError(f"--preset {preset} and --quick are two different plans: give one")
    make_plan = {"paper": paper_plan, "iopo": iopo_plan}.get(preset, quick_plan if quick else full_plan)
    select = select or ("paper" if preset == "paper" else "dev")
    plan = make_plan(list(tasks or BUILTIN), seeds or (2 if quick else 5), override_items(overrides), select)
    for spec in plan.specs():  # every run's settings are checked before the first run starts
        load_config(RunConfig, None, list(spec.overrides))
    if plan.lr_grid:
        check_dev_splits(plan)
    return reproduce(plan, Path(out), jobs, progress=progress, command=command)


def check_dev_splits(plan: Plan) -> None:
    """--select dev needs every task's dev prompts: refuse before the first run, saying what to do."""
    from bpo.common.configlib import ConfigError, load_config
    from bpo.loop.build import build_task
    from bpo.loop.config import RunConfig

    for task in plan.tasks:
        if not build_task(load_config(RunConfig, None, [f"task={task}", *plan.overrides])).dev:
            raise ConfigError(
                f"task {task}: no dev split, and --select dev chooses learning rates on one: add 'dev: FILE' to the "
                "task file (prompts with references that are none of its train, eval or demonstration prompts), "
                "or pass --select paper (one learning rate for every method)"
            )
