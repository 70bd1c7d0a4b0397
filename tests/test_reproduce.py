"""`bpo reproduce` on a tiny sweep: the report and plots are written from the runs' own numbers, and a
second call reuses the finished runs and comparisons instead of computing them again.

The plan: the tiny file task (tests/tinytask.py), T = 4 steps of 2 pairs, DPO at beta 0.5, Table 1 on
seeds 0 and 1, everything else (Table 2, Figure 5's gold reference, Figures 6-7, IOPO with rounds of
1 + 1 steps) on seed 0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tinytask import write_task

from bpo.common.configlib import load_config
from bpo.common.jsonl import read_log
from bpo.experiments.papers import reproduce
from bpo.experiments.reproduce import ADAPTER_VARIANTS, GOLD, IOPO_BASELINES, METHODS, Plan
from bpo.loop.config import RunConfig


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    task = write_task(folder)
    plan = Plan(
        tasks=(str(task),),
        seeds=(0, 1),
        losses=("dpo",),
        betas=(0.5,),
        phases=(2,),
        extra_seeds=(0,),
        iopo_round=(2, 1),  # N_iter = T / N_mu = 2: iterative DPO has F = 2, not Table 1's F = T
        central=((6, 2.0),),
        overrides=(
            f"policy.path={folder / 'model'}",
            "schedule.steps=4",
            "schedule.batch_size=2",
            "sampling.max_new_tokens=6",
            "eval.prompts=6",
            "eval.every_prompts=3",
            "lora.rank=4",
        ),
    )
    report = reproduce(plan, folder / "out", jobs=1, progress=False)
    return plan, folder / "out", report


def runs_of(out):
    return sorted((out / "runs" / "task").iterdir())


def test_table1_and_figures_from_the_runs(sweep):
    plan, out, report = sweep
    # per seed: Table 1's 3 methods + BPO at F = 2 (Figure 4); seed 0 also: 3 adapter variants, the gold-reference
    # run, 2 IOPO readings in each of 2 scenarios and the baselines that are not Table 1 runs (3 offline losses,
    # iterative DPO); per seed also the central-claim cell's BPO and on-policy DPO (T = 6, beta 2)
    expected = 2 * (len(METHODS) + 1 + 2) + len(ADAPTER_VARIANTS) + 1 + 2 * 2 + (len(IOPO_BASELINES) - 1)
    assert len(runs_of(out)) == expected
    text = report.read_text()
    assert "### Table 1 — task, sampled" in text and "### Table 1 — task, greedy" in text
    bpo_runs = [r for r in runs_of(out) if r.name.startswith("bpo-dpo-0.5-4-4-") and "adapter" not in r.name]
    rates = [json.loads((r / "eval.json").read_text())["strict_win_rate"] for r in bpo_runs]
    assert len(rates) == 2
    # the runs' own mean ± population std (ddof = 0, the papers' form) over seeds
    assert f"{np.mean(rates):.3f} ± {np.std(rates, ddof=0):.3f}" in text
    assert "Headline comparison, offline DPO → BPO (F = 2)" in text
    assert "TL;DR 72.0% (± 2.4) → 80.2% (± 2.3)" in text  # the paper's section 5.2 numbers beside ours
    for name in (
        "figure4-task-sampled.png",
        "figure3-sampled.png",
        "figure3-greedy.png",
        "table2-task.png",
        "figure5-task-sampled.png",
        "curves-methods-task.png",
        "figure6-7-task.png",
        "iopo-h2h-task.png",
        "iopo-margins-task.png",
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    greedy = json.loads((bpo_runs[0] / "eval-greedy.json").read_text())
    assert greedy["n"] == 6 and "before" in greedy


def test_every_run_has_learning_curves(sweep):
    """T = 4, eval.every = max(1, T // 8) = 1: an evaluation on 3 prompts after each of the 4 steps (6 steps for
    the central-claim runs, T = 6, and for IOPO: 2 rounds of 2 + 1)."""
    _, out, _ = sweep
    for run in runs_of(out):
        rows = [r for r in read_log(run / "evals.jsonl") if "phase" in r]
        steps = 6 if "horizon" in run.name or run.name.startswith("iopo-") else 4
        assert [r["step"] for r in rows] == list(range(1, steps + 1)) and {r["n"] for r in rows} == {3}, run.name


def test_table2_reads_the_comparisons(sweep):
    """Table 2 with one seed: BPO's win rate against offline DPO is that comparison's own."""
    _, out, report = sweep
    [folder] = [
        f
        for f in (out / "compare").iterdir()
        if f.name.startswith("bpo-dpo-0.5-4-4-0-") and "--vs--offline_dpo-" in f.name
    ]
    result = json.loads((folder / "compare.json").read_text())
    assert result["win"] + result["tie"] + result["lose"] == pytest.approx(1.0) and len(result["outcomes"]) == 6
    row = next(line for line in report.read_text().splitlines() if line.startswith("| BPO vs offline DPO"))
    assert row.split(" | ")[1].startswith(f"{result['win']:.3f} [")


def test_gold_reference_is_the_exported_bpo_policy(sweep):
    _, out, report = sweep
    [gold_run] = [r for r in runs_of(out) if r.name.startswith(f"online_dpo-dpo-0.5-4-4-0-{GOLD.replace(' ', '_')}-")]
    cfg = load_config(RunConfig, gold_run / "config.yaml")
    [gold] = (out / "gold").iterdir()
    assert (cfg.reference.kind, cfg.reference.path) == ("fixed", str(gold))
    assert gold.name.startswith("task-bpo-dpo-0.5-4-4-0-") and (gold / "config.json").is_file()
    assert "on-policy DPO, gold reference" in report.read_text()


def test_iopo_section_lists_every_baseline(sweep):
    _, out, report = sweep
    text = report.read_text()
    for player in ("IOPO (symmetric)", "IOPO (reversed)", "IOPO offline (symmetric)", "IOPO offline (reversed)"):
        for baseline in [b[0] for b in IOPO_BASELINES] + ["SFT"]:
            assert f"| {player} vs **{baseline}** |" in text
    iopo = [load_config(RunConfig, r / "config.yaml") for r in runs_of(out) if r.name.startswith("iopo-")]
    assert len(iopo) == 4 and {cfg.iopo.rounds for cfg in iopo} == {2}
    # shared pairs: 2 rounds of 2 + 1 steps (T = 6), N = 2 * 2 * B = 8 pairs, the baselines' T * B = 4 * 2
    assert {(cfg.iopo.pairs, cfg.resolved_schedule().steps, cfg.resolved_schedule().pairs) for cfg in iopo} == {
        ("shared", 6, 8)
    }
    assert sorted(cfg.resolved_schedule().phases for cfg in iopo) == [1, 1, 2, 2]  # offline: one phase


def test_offline_iopo_trains_on_the_offline_baselines_pairs(sweep):
    """IOPO offline (the IOPO paper's Table 1 scenario) samples its one phase from the SFT policy with the run's
    seed, as offline DPO does: the two runs' pairs files hold the same pairs in the same order (texts and
    labels), and the report says it checked."""
    _, out, report = sweep
    [offline_iopo] = [r for r in runs_of(out) if r.name.startswith("iopo-") and "IOPO_offline_symmetric" in r.name]
    [dpo] = [r for r in runs_of(out) if r.name.startswith("offline_dpo-dpo-0.5-4-1-0-")]

    def pairs(run):
        return [(r["prompt"], r["chosen"], r["rejected"]) for r in read_log(run / "pairs" / "phase-000.jsonl")]

    assert pairs(offline_iopo) == pairs(dpo) and len(pairs(dpo)) == 4 * 2
    assert "its pairs file equals offline DPO's (same seed) in 2 of 2 runs" in report.read_text()


def test_papers_numbers_and_generated_verdicts(sweep):
    """Each table carries the papers' numbers (BPO Table 1's DPO row, Table 2, IOPO Tables 1-2) and the summary
    holds one generated verdict per claim and scope, the same as summary.json's, each computed by the rule from
    the intervals it prints."""
    from bpo.experiments.verdicts import verdict

    _, out, report = sweep
    text = report.read_text()
    assert "| dpo | 72.0 ± 2.4 / 82.2 ± 4.4 / 77.5 ± 0.9 / 77.2 ± 2.6 |" in text  # BPO paper, Table 1
    assert "75.9 ± 1.5 / 78.0 ± 1.7 / 99.3 ± 0.5" in text  # BPO paper, Table 2, vs offline DPO
    assert "| distilabel-capybara-dpo | DPO | 12 / 78 / 10 | 50 / 8 / 42 |" in text  # IOPO paper, Table 1
    assert "**DPO** has the highest margin reward (23.75" in text  # IOPO paper, Table 2 (issue 20, item 4)
    assert "| model | Gemma-2b, an ensemble of 5 LoRA weights |" in text
    summary = json.loads((out / "summary.json").read_text())
    claims = {v["claim"] for v in summary["verdicts"]}
    assert {"table1", "figure4", "table2", "figure5", "figure6", "figure7", "iopo", "iopo_online", "central"} <= claims
    # IOPO offline is judged against the offline baselines (the paper's Table 1), online against iterative DPO
    scopes = {v["claim"]: v for v in summary["verdicts"] if v["claim"].startswith("iopo")}
    assert scopes["iopo"]["scope"] == "task (offline)" and scopes["iopo_online"]["scope"] == "task (online)"
    assert [c["label"] for c in scopes["iopo_online"]["comparisons"]] == [
        "IOPO (symmetric) vs iterative DPO: win − lose",
        "IOPO (reversed) vs iterative DPO: win − lose",
    ]
    assert len(scopes["iopo"]["comparisons"]) == 2 * 4  # two readings x DPO, RSO, IPO, KTO-pair
    assert "| B | 16 (TL;DR), 64 (Helpfulness), 16 (Harmlessness) | 32 | 2 |" in text  # the resolved B
    central = [v for v in summary["verdicts"] if v["claim"] == "central"][0]
    assert [c["label"] for c in central["comparisons"]] == [
        "T=4 β=0.5 BPO − on-policy DPO",  # Table 1's cell
        "T=6 β=2 BPO − on-policy DPO",
    ]
    for v in summary["verdicts"]:
        intervals = [(c["value"], c["low"], c["high"]) for c in v["comparisons"]]
        assert v["verdict"] == verdict(intervals)
        assert f"- **{v['verdict']}** ({v['scope']}): “{v['quote']}”" in text


def test_second_call_reuses_finished_runs(sweep, monkeypatch):
    plan, out, _ = sweep

    def no_training(*args, **kwargs):
        raise AssertionError(f"a finished run or comparison was computed again: {args}")

    for name in ("start_run", "compare", "export"):
        monkeypatch.setattr(f"bpo.api.{name}", no_training)
    monkeypatch.setattr("bpo.api.Run.resume", no_training)
    victim = runs_of(out)[0] / "eval-greedy.json"
    victim.unlink()  # only the missing greedy evaluation is redone (bpo.api.evaluate, not patched)
    report = reproduce(plan, out, jobs=1, progress=False)
    assert victim.is_file()
    n = len(runs_of(out))
    assert (
        f"{n} runs, {n - 1} of them finished by an earlier call" in report.read_text()
    )  # the one without its greedy eval was not


def test_ordering_sentence_describes_without_a_verdict():
    """The aggregate's IQM (value, low, high) described: the order by value, and whether BPO's low end is above
    both baselines' high ends; it never says reproduced or holds (the paired verdicts do that)."""
    from bpo.experiments.sections import ordering_sentence

    def agg(bpo, online, offline):
        return {"bpo": {"iqm": bpo}, "online_dpo": {"iqm": online}, "offline_dpo": {"iqm": offline}}

    above = ordering_sentence(agg((0.4, 0.35, 0.45), (0.3, 0.25, 0.34), (0.2, 0.1, 0.3)), "m")
    assert "IQM order BPO (F = T, behavior ref) > on-policy DPO (F = T, SFT ref) > offline DPO (F = 1)" in above
    assert "lies above both baselines' intervals" in above
    # BPO's low end (0.33) inside on-policy DPO's interval (up to 0.34): not separated, whatever the points say
    inside = ordering_sentence(agg((0.4, 0.33, 0.45), (0.3, 0.25, 0.34), (0.2, 0.1, 0.3)), "m")
    assert "overlaps a baseline's interval" in inside
    assert not any(word in text for text in (above, inside) for word in ("reproduced", "holds", "**"))


def test_learning_rates_chosen_on_dev_prompts(tmp_path):
    """--select dev on the tiny task with a dev file: every arm's selection runs (2 learning rates x 1 selection
    seed) are evaluated on the dev prompts only, never on a reported seed; each arm's choice is the rule's on the
    selection runs' own dev scores; every reported run of the arm trains at the chosen learning rate; the
    report prints the grid, the scores and the choices."""
    from bpo.experiments.papers import reproduce
    from bpo.experiments.selection import choose, outcome_of
    from bpo.tasks.files import load_task_file

    task = write_task(tmp_path, dev=True)
    dev_prompts = {e.prompt for e in load_task_file(task).dev}
    plan = Plan(
        tasks=(str(task),),
        seeds=(0,),
        losses=("dpo",),
        betas=(0.5,),
        phases=(),
        sections=("table1",),
        lr_grid=(1e-3, 1e-2),
        select_seeds=(7,),
        overrides=(
            f"policy.path={tmp_path / 'model'}",
            "schedule.steps=2",
            "schedule.batch_size=2",
            "sampling.max_new_tokens=4",
            "eval.prompts=4",
            "eval.every_prompts=2",
            "lora.rank=2",
            "lora.ensemble=1",
        ),
    )
    report = reproduce(plan, tmp_path / "out", jobs=1, progress=False).read_text()
    runs = [r for r in (tmp_path / "out" / "runs" / "task").iterdir()]
    selection = [r for r in runs if "select" in r.name]
    assert len(selection) == len(METHODS) * 2
    for run in selection:
        cfg = load_config(RunConfig, run / "config.yaml")
        assert cfg.seed == 7 and cfg.eval.split == "dev"
        assert {e["prompt"] for e in json.loads((run / "eval.json").read_text())["examples"]} <= dev_prompts
    for method in METHODS:
        mine = [r for r in selection if r.name.startswith(f"{method}-")]
        outcomes = {
            load_config(RunConfig, r / "config.yaml").optim.lr: [outcome_of(json.loads((r / "eval.json").read_text()))]
            for r in mine
        }
        chosen = choose("optim.lr", outcomes).value
        [final] = [r for r in runs if r.name.startswith(f"{method}-") and "select" not in r.name]
        cfg = load_config(RunConfig, final / "config.yaml")
        assert cfg.optim.lr == chosen and cfg.seed == 0 and cfg.eval.split == "heldout"
        assert f"| **{chosen:g}** |" in report
    assert "## Settings chosen on the dev prompts" in report and "seeds [7]" in report


def test_paper_preset_plans_the_papers_settings():
    """--preset paper on reviews: every run at β = 0.1 and one learning rate (no selection runs); Table 1's runs
    with 5 adapters over DPO, IPO and SLiC; BPO (DPO) at F = 1, 2, 6, 15 and T = 120 (Figure 4's TL;DR F values);
    one-adapter BPO and on-policy DPO (Figure 6); an EMA reference at each of Figure 7's five taus; IOPO with one
    annotation phase (offline, as in its paper)."""
    from bpo.experiments.reproduce import PAPER_TAUS, paper_plan

    plan = paper_plan(["reviews"], 1, [])
    assert not plan.lr_grid and not plan.tau_grid and plan.iopo_kinds == ("offline",)
    configs = [(spec.label, load_config(RunConfig, None, list(spec.overrides))) for spec in plan.specs()]
    assert {cfg.beta for _, cfg in configs} == {0.1}
    assert len({cfg.optim.lr for _, cfg in configs}) == 1
    table1 = [(label, cfg) for label, cfg in configs if label["variant"] == "" and label["method"] in METHODS]
    assert {cfg.lora.ensemble for _, cfg in table1} == {5}
    assert {label["loss"] for label, _ in table1} == {"dpo", "ipo", "slic", "kto_pair"}  # KTO-pair: IOPO's baseline
    bpo_fs = {cfg.resolved_schedule().phases for label, cfg in table1 if label["method"] == "bpo"}
    assert bpo_fs == {1, 2, 6, 15, 120} and {cfg.resolved_schedule().steps for _, cfg in table1} == {120}
    variants = {label["variant"]: (label["method"], cfg) for label, cfg in configs if label["variant"]}
    assert variants["1 adapter"][0] == "bpo" and variants["1 adapter"][1].lora.ensemble == 1
    assert variants["on-policy DPO, 1 adapter"][0] == "online_dpo"
    taus = sorted(cfg.reference.ema_tau for name, (_, cfg) in variants.items() if name.startswith("EMA"))
    assert taus == sorted(PAPER_TAUS)
    iopo = [cfg for label, cfg in configs if label["method"] == "iopo"]
    assert len(iopo) == 2 and {cfg.resolved_schedule().phases for cfg in iopo} == {1}
    # each player over the baselines' pairs: 10 rounds of 12 + 4, the protagonist's 120 steps on N = 120 * B
    assert {(cfg.resolved_schedule().steps, cfg.resolved_schedule().pairs) for cfg in iopo} == {
        (160, table1[0][1].resolved_schedule().pairs)
    }


def test_select_dev_needs_a_dev_split(tmp_path, monkeypatch):
    """A task file without 'dev:' under --select dev is refused before any run, with what to do; with --select
    paper it is accepted (nothing is trained here: the plan is only checked, the run itself is stubbed)."""
    from bpo.common.configlib import ConfigError
    from bpo.experiments import papers

    task = write_task(tmp_path)
    with pytest.raises(ConfigError, match=r"no dev split.*add 'dev: FILE'.*--select paper"):
        papers.reproduce_papers(tmp_path / "out", quick=True, tasks=[str(task)], progress=False)
    assert not (tmp_path / "out").exists()
    seen = []
    monkeypatch.setattr(papers, "reproduce", lambda plan, out, *a, **k: seen.append(plan) or out)
    papers.reproduce_papers(tmp_path / "out", quick=True, tasks=[str(task)], progress=False, select="paper")
    assert seen and not seen[0].lr_grid


def test_claims_say_where_each_comparison_stands_and_carry_notes():
    """Three comparisons: +0.1 [0.02, 0.2] holds (above zero), -0.1 [-0.2, -0.03] fails (below zero), 0.05
    [-0.01, 0.1] unresolved; the verdict is 'not reproduced' (one fails), and the summary line names where the
    claim holds and where not, with the note (e.g. the guard's flags) beside its comparison. When every
    comparison stands alike, the verdict says it and no sentence is added."""
    from bpo.experiments.verdicts import Claims, standing

    claims = Claims()
    claims.add("central", "t", "T=1 A", (0.1, 0.02, 0.2), "flagged by the collapse guard: BPO 2 of 5 runs (KL 12.7)")
    claims.add("central", "t", "T=2 B", (-0.1, -0.2, -0.03))
    claims.add("central", "t", "T=3 C", (0.05, -0.01, 0.1))
    claims.add("table1", "t", "d", (0.1, 0.02, 0.2))
    table1, central = claims.lines()  # in the order of papers_numbers.CLAIMS
    assert central.startswith("- **not reproduced** (t)")
    assert (
        "T=1 A +0.100 [+0.020, +0.200] (flagged by the collapse guard: BPO 2 of 5 runs (KL 12.7)); T=2 B -0.100"
        in central
    )
    assert central.endswith("Holds at: T=1 A; fails at: T=2 B; unresolved at: T=3 C.")  # the labels keep their case
    assert table1.startswith("- **reproduced** (t)") and table1.endswith("d +0.100 [+0.020, +0.200].")
    [row] = [v for v in claims.to_json() if v["claim"] == "central"]
    assert [c["standing"] for c in row["comparisons"]] == ["holds", "fails", "unresolved"]
    assert row["comparisons"][0]["note"].endswith("(KL 12.7)") and "note" not in row["comparisons"][1]
    assert standing((0.0, 0.0, 0.1)) == "unresolved"  # an interval touching zero does not exclude it


def test_pairs_agreement_names_the_sampling_settings_that_differ(tmp_path):
    """Two run folders with the same prompts but other responses, sampled at sampling.batch_size 64 and 16 (the
    committed sweep's offline baselines predate the default's change): not the same pairs, the same prompts, and
    the one differing setting named; identical files agree."""
    from dataclasses import astuple

    from bpo.experiments.iopo_report import pairs_agreement

    def run(name, chosen, batch):
        folder = tmp_path / name
        (folder / "pairs").mkdir(parents=True)
        (folder / "config.yaml").write_text(f"sampling:\n  batch_size: {batch}\n  temperature: 1.0\n")
        row = {"id": "p0", "prompt": "w1", "chosen": chosen, "rejected": "w3"}
        (folder / "pairs" / "phase-000.jsonl").write_text(json.dumps(row) + "\n")
        return folder

    a, b, c = run("a", "w2", 64), run("b", "w4", 16), run("c", "w2", 64)
    assert astuple(pairs_agreement(a, b)) == (False, True, ("sampling.batch_size: 64 vs 16",))
    assert astuple(pairs_agreement(a, c)) == (True, True, ())


def test_iopo_preset_plans_the_iopo_paper_s_table1():
    """--preset iopo on reviews, 5 seeds: per seed, Table 1's 3 DPO methods at beta 0.1 (the IOPO paper's), IOPO
    offline under 2
    readings and the 3 offline baselines Table 1 lacks (RSO = SLiC, IPO, KTO-pair): 8 x 5 = 40 runs; one
    annotation phase each offline run; IOPO 4 rounds of 16 + 4 (T = 80) on N = 64 * 16 = 1024 pairs, offline
    DPO's N; 8 learning-rate arms of 3 values on one selection seed: 24 selection runs."""
    from bpo.experiments.reproduce import LR_GRID, iopo_plan

    plan = iopo_plan(["reviews"], 5, [])
    specs = set(plan.specs())
    assert len(specs) == 40
    configs = {spec: load_config(RunConfig, None, list(spec.overrides)) for spec in specs}
    assert {cfg.beta for cfg in configs.values()} == {0.1}
    iopo = [cfg for spec, cfg in configs.items() if spec.label["method"] == "iopo"]
    assert len(iopo) == 10 and {cfg.iopo.adversary for cfg in iopo} == {"symmetric", "reversed"}
    assert {(s.steps, s.phases, s.pairs) for s in (cfg.resolved_schedule() for cfg in iopo)} == {(80, 1, 1024)}
    offline = [cfg for spec, cfg in configs.items() if spec.label["method"] == "offline_dpo"]
    assert {cfg.loss for cfg in offline} == {"dpo", "slic", "ipo", "kto_pair"}
    assert {(s.steps, s.phases, s.pairs) for s in (cfg.resolved_schedule() for cfg in offline)} == {(64, 1, 1024)}
    candidates = plan.selection_specs("optim.lr", plan.lr_grid, plan.lr_arms())
    assert len(candidates) == 8 and sum(len(v) for v in candidates.values()) == 8 * len(LR_GRID)
