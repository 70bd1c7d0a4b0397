"""`bpo reproduce`: analogues of the BPO paper's experiments (and IOPO's) on our tasks, with honest statistics.

    Table 1   offline DAP (F = 1) vs on-policy DAP (F = T, SFT reference) vs on-policy BPO (F = T,
              behavior reference), per loss and beta, at the same budget N; mean +- std over seeds
    Figure 3  across tasks x losses x betas x seeds: median, IQM and mean of each method's win rate
              with 95% stratified bootstrap intervals
    Figure 4  BPO (DPO) against the annotation frequency F at fixed N, offline and on-policy DPO as lines
    paired    BPO minus each baseline, per-prompt outcomes paired by (seed, prompt)
    Table 2   BPO head to head against offline and on-policy DPO (the judge compares the two policies'
              answers to the same prompt): win / tie / lose
    Figure 5  on-policy DPO whose fixed reference is a better ("gold") policy, trained by BPO, vs BPO
    Figure 6  BPO with 1, 2 and 5 LoRA adapters over training (evaluations during training, eval.every)
    Figure 7  BPO with an EMA reference and one adapter over training
    IOPO      IOPO (both adversary readings) against SFT, DPO, RSO, IPO, KTO-pair and iterative DPO: win /
              tie / lose head to head, held-out reward margin and pairwise accuracy, margin histograms
Win rates against references are given for sampled responses (temperature 1) and greedy ones, as strict
win rates (ties count 0, the paper's) with the tie rate. Every run also records learning curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bpo.experiments.sweep import RunSpec

METHODS = ("offline_dpo", "online_dpo", "bpo")
METHOD_NAMES = {
    "offline_dpo": "offline DPO (F = 1)",
    "online_dpo": "on-policy DPO (F = T, SFT ref)",
    "bpo": "BPO (F = T, behavior ref)",
}
# Applied to every run of the sweep alike (never tuned for one method): 2 adapters keep a run at ~20 s
# on 2 cores. Evaluation during training (CURVE_POINTS evaluations on CURVE_PROMPTS prompts, with a KL
# estimate) gives every run its learning curves; it does not change training (tests/test_eval_every.py).
SWEEP_SETTINGS = ("lora.ensemble=2", "eval.kl=true")
CURVE_POINTS, CURVE_PROMPTS = 8, 32
EMA_VARIANT = "EMA reference, 1 adapter"
# Figures 6-7: (name, method, overrides) of the DPO variants trained beside Table 1's BPO run (2 adapters).
ADAPTER_VARIANTS = (
    ("1 adapter", "bpo", ("lora.ensemble=1",)),
    ("5 adapters", "bpo", ("lora.ensemble=5",)),
    (EMA_VARIANT, "bpo", ("lora.ensemble=1", "reference.kind=ema")),
)
GOLD = "gold reference"  # Figure 5's variant: on-policy DPO with a BPO-trained policy as its fixed reference
# The IOPO section: T / N_mu rounds of IOPO_ROUND_STEPS, both players over the baselines' pairs.
IOPO_READINGS = ("symmetric", "reversed")
# IOPO's two scenarios. offline (the IOPO paper's Table 1): one annotation phase by the SFT policy, so its pairs
# are the offline baselines' own (same seed, same policy: identical pairs files, which the report checks);
# online (the paper's Table 2 scenario, run our way): a new annotation phase by the protagonist each round.
IOPO_KINDS = ("offline", "online")
IOPO_ROUND_STEPS = (16, 4)  # (N_mu, N_nu): at the plans' T = 64, 4 rounds, as iterative DPO's 4 phases
# IOPO's baselines by the paper's names: (name, method, loss, phases: None = 1 offline, "rounds" iterative)
IOPO_BASELINES = (
    ("DPO", "offline_dpo", "dpo"),
    ("RSO (hinge = SLiC)", "offline_dpo", "slic"),
    ("IPO", "offline_dpo", "ipo"),
    ("KTO-pair", "offline_dpo", "kto_pair"),
    ("iterative DPO", "online_dpo", "dpo"),
)
SECTIONS = ("table1", "figure4", "table2", "figure5", "figure6", "iopo", "central")
# The central claim (BPO above on-policy DPO) where its mechanism predicts a gap: a policy that moves far from
# the SFT model. (T, beta) cells beside Table 1's (T of the plan, its first beta): a 3x longer horizon and a
# 4x larger beta, alone and together; DPO, BPO and on-policy DPO, every Table 1 seed.
CENTRAL_VARIANT = "horizon"
# The fair protocol's grids (bpo.experiments.selection): each arm's learning rate, then the EMA's tau at the
# BPO arm's learning rate, chosen on the dev prompts by runs on seeds of their own (never a reported seed).
LR_GRID = (3e-4, 1e-3, 3e-3)
TAU_GRID = (1e-2, 1e-3, 1e-4)  # within Figure 7's grid {1e-2, 5e-2, 1e-3, 5e-3, 1e-4}
SELECT_SEEDS = (100,)
SELECT_VARIANT = "select"


@dataclass(frozen=True)
class Plan:
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]  # Table 1, Figure 4 and the aggregate
    losses: tuple[str, ...]
    betas: tuple[float, ...]
    phases: tuple[int, ...]  # F values of Figure 4 (each must divide T)
    overrides: tuple[str, ...] = ()  # the user's key=value settings, given to every run
    base: tuple[str, ...] = SWEEP_SETTINGS  # the sweep's own settings, before everything else
    variants: tuple[tuple[str, str, tuple[str, ...]], ...] = ADAPTER_VARIANTS  # Figures 6-7's runs
    extra_seeds: tuple[int, ...] | None = None  # Table 2, Figures 5-7 and IOPO (default: seeds)
    sections: tuple[str, ...] = SECTIONS
    iopo_round: tuple[int, int] = IOPO_ROUND_STEPS  # IOPO's (N_mu, N_nu); T must be a multiple of N_mu
    iopo_baselines: tuple[str, ...] = tuple(b[0] for b in IOPO_BASELINES)  # names of IOPO_BASELINES to run
    # The learning rates to choose each arm's from on the dev prompts (bpo.experiments.selection); empty: one
    # learning rate for every method, the run configuration's (the paper's protocol).
    lr_grid: tuple[float, ...] = ()
    tau_grid: tuple[float, ...] = ()  # the EMA variant's reference.ema_tau, chosen the same way (empty: the default)
    select_seeds: tuple[int, ...] = SELECT_SEEDS
    iopo_kinds: tuple[str, ...] = IOPO_KINDS  # which of IOPO's scenarios to run
    central: tuple[tuple[int, float], ...] = ()  # (T, beta) cells of the central-claim section
    # What the selection chose: (arm, key, value), arm = (task, method, loss, beta, variant kind); see arm_of.
    chosen: tuple[tuple[tuple, str, float], ...] = ()

    def __post_init__(self):
        if "iopo" in self.sections and (
            not self.iopo_kinds
            or len(set(self.iopo_kinds)) < len(self.iopo_kinds)
            or set(self.iopo_kinds) - set(IOPO_KINDS)
        ):
            raise ValueError(f"iopo_kinds must be some of {IOPO_KINDS}, each once; got {self.iopo_kinds}")

    @property
    def baselines(self) -> list[tuple[str, str, str]]:
        return [b for b in IOPO_BASELINES if b[0] in self.iopo_baselines]

    @property
    def other_seeds(self) -> tuple[int, ...]:
        return self.seeds if self.extra_seeds is None else self.extra_seeds

    def spec(
        self,
        task: str,
        method: str,
        loss: str,
        beta: float,
        steps: int,
        phases: int,
        seed: int,
        variant: str = "",
        extra: Sequence[str] = (),
        last: Sequence[str] = (),
    ) -> RunSpec:
        labels = (
            ("task", task),
            ("method", method),
            ("loss", loss),
            ("beta", beta),
            ("T", steps),
            ("F", phases),
            ("seed", seed),
            ("variant", variant),
        )
        chosen = tuple(f"{key}={value:g}" for arm, key, value in self.chosen if arm in arms_of(labels))
        settings = (
            f"task={task}",
            f"method={method}",
            f"loss={loss}",
            f"beta={beta}",
            f"schedule.phases={phases}",
            f"seed={seed}",
            f"eval.every={max(1, steps // CURVE_POINTS)}",
            f"eval.every_prompts={CURVE_PROMPTS}",
            *extra,
            *chosen,
        )
        return RunSpec(labels, (*self.base, *settings, *self.overrides, *last))  # `last` wins over the user's

    # -------------------------------------------------------------------------------- selection

    def lr_arms(self) -> dict[tuple, RunSpec]:
        """Each arm whose learning rate is chosen, with the first run of the plan that belongs to it (Table 1's
        run for its methods, the IOPO run for each reading, the baseline run for a loss Table 1 lacks)."""
        arms: dict[tuple, RunSpec] = {}
        for spec in self.specs():
            arms.setdefault(arm_of(spec.labels), spec)
        return arms

    def selection_specs(self, key: str, grid: Sequence[float], arms: dict[tuple, RunSpec]) -> dict[tuple, list]:
        """arm -> [(value, spec)]: the arm's run again for each grid value and selection seed, evaluated on the
        dev prompts (eval.split=dev) and labelled as a selection run."""
        out: dict[tuple, list] = {}
        for arm, spec in arms.items():
            for value in grid:
                for seed in self.select_seeds:
                    labels = tuple(
                        (
                            k,
                            seed
                            if k == "seed"
                            else f"{SELECT_VARIANT} {key}={value:g} {v}".strip()
                            if k == "variant"
                            else v,
                        )
                        for k, v in spec.labels
                    )
                    settings = tuple(o for o in spec.overrides if not o.startswith(("seed=", f"{key}=")))
                    out.setdefault(arm, []).append(
                        (value, RunSpec(labels, (*settings, f"seed={seed}", "eval.split=dev", f"{key}={value:g}")))
                    )
        return out

    def tau_arms(self) -> dict[tuple, RunSpec]:
        """The EMA variant's arm per task (its tau is chosen at the BPO arm's chosen learning rate)."""
        if not self.tau_grid or "figure6" not in self.sections:
            return {}
        return {
            (task, "ema"): next(
                s for s in self.specs() if s.label["task"] == task and s.label["variant"] == EMA_VARIANT
            )
            for task in self.tasks
        }

    def table1_spec(self, task: str, method: str, loss: str, beta: float, seed: int) -> RunSpec:
        steps = steps_of(task, self.overrides)
        return self.spec(task, method, loss, beta, steps, 1 if method == "offline_dpo" else steps, seed)

    def specs(self, gold: dict[str, Path] | None = None) -> list[RunSpec]:
        """Every run of the plan; Figure 5's only when the tasks' gold policies are given (they are trained first)."""
        specs = []
        beta, on = self.betas[0], lambda name: name in self.sections
        for task in self.tasks:
            steps = steps_of(task, self.overrides)
            for seed in self.seeds:
                specs += [
                    self.table1_spec(task, m, loss, b, seed)
                    for loss in self.losses
                    for b in self.betas
                    for m in METHODS
                ]
                if on("figure4"):
                    specs += [
                        self.spec(task, "bpo", "dpo", beta, steps, f, seed) for f in self.phases if steps % f == 0
                    ]
                if on("central"):
                    specs += self.central_specs(task, seed)
            for seed in self.other_seeds:
                specs += [
                    self.table1_spec(task, m, "dpo", beta, seed) for m in METHODS
                ]  # Table 2's and the curves' runs
                if on("figure6"):
                    specs += [
                        self.spec(task, method, "dpo", beta, steps, steps, seed, name, extra)
                        for name, method, extra in self.variants
                    ]
                if on("figure5") and gold:
                    specs.append(self.gold_spec(task, seed, gold[task]))
                if on("iopo"):
                    specs += self.iopo_specs(task, seed)
        return specs

    def central_specs(self, task: str, seed: int) -> list[RunSpec]:
        """BPO and on-policy DPO (DPO loss) at each (T, beta) cell of `central`, F = T."""
        return [
            self.spec(task, m, "dpo", beta, steps, steps, seed, CENTRAL_VARIANT, last=(f"schedule.steps={steps}",))
            for steps, beta in self.central
            for m in ("bpo", "online_dpo")
        ]

    def gold_spec(self, task: str, seed: int, gold: Path) -> RunSpec:
        steps = steps_of(task, self.overrides)
        return self.spec(
            task,
            "online_dpo",
            "dpo",
            self.betas[0],
            steps,
            steps,
            seed,
            GOLD,
            ("reference.kind=fixed", f"reference.path={gold}"),
        )

    def gold_source(self, task: str) -> RunSpec:
        """The run whose policy is Figure 5's gold reference: Table 1's BPO (DPO) run of the first extra seed."""
        return self.table1_spec(task, "bpo", "dpo", self.betas[0], self.other_seeds[0])

    def iopo_rounds(self, task: str) -> int:
        """N_iter = T / N_mu: the players share the pairs (iopo.pairs=shared), so the protagonist's N_iter * N_mu
        steps take the baselines' T batches, each once; 0 where N_mu does not divide T."""
        steps, mu = steps_of(task, self.overrides), self.iopo_round[0]
        return steps // mu if steps % mu == 0 else 0

    def iopo_specs(self, task: str, seed: int) -> list[RunSpec]:
        """IOPO under both readings in each scenario, and its baselines, at the plan's first beta: each baseline
        T steps of B pairs; IOPO's protagonist the same T steps on the same N = T * B pairs (offline: the same
        file as offline DPO's of its seed, sampled from the SFT policy with the same seed and settings; checked
        in the report), its adversary N_iter * N_nu steps more over the same pairs."""
        rounds, steps, beta = self.iopo_rounds(task), steps_of(task, self.overrides), self.betas[0]
        if not rounds:
            return []
        mu, nu = self.iopo_round
        iopo = [
            self.spec(
                task,
                "iopo",
                "dpo",
                beta,
                steps,
                1 if kind == "offline" else rounds,
                seed,
                iopo_variant(kind, reading),
                (
                    f"iopo.adversary={reading}",
                    f"iopo.rounds={rounds}",
                    f"iopo.protagonist_steps={mu}",
                    f"iopo.adversary_steps={nu}",
                    "iopo.pairs=shared",
                ),
            )
            for kind in self.iopo_kinds
            for reading in IOPO_READINGS
        ]
        return iopo + [self.iopo_baseline(task, b, seed) for b in self.baselines]

    def iopo_baseline(self, task: str, baseline: tuple[str, str, str], seed: int) -> RunSpec:
        name, method, loss = baseline
        if method == "offline_dpo":
            return self.table1_spec(task, method, loss, self.betas[0], seed)
        return self.spec(
            task, method, loss, self.betas[0], steps_of(task, self.overrides), self.iopo_rounds(task), seed
        )


def iopo_variant(kind: str, reading: str) -> str:
    """An IOPO run's variant label. The online runs keep the plain name that earlier sweeps gave them, so their
    finished runs are reused."""
    if kind not in IOPO_KINDS:
        raise ValueError(f"IOPO's scenario must be one of {', '.join(IOPO_KINDS)}, got {kind!r}")
    return f"IOPO ({reading})" if kind == "online" else f"IOPO offline ({reading})"


def arms_of(labels: tuple[tuple[str, object], ...]) -> tuple[tuple, ...]:
    """The arms whose chosen settings a run takes: its learning-rate arm and, for the EMA variant, the tau arm."""
    label = dict(labels)
    arms = (arm_of(labels),)
    return (*arms, (label["task"], "ema")) if label["variant"] == EMA_VARIANT else arms


def arm_of(labels: tuple[tuple[str, object], ...]) -> tuple:
    """A run's learning-rate arm: (task, method, loss, beta, kind). Every variant of a method shares its arm
    (Figure 4's F values, Figures 6-7's adapters, Figure 5's gold reference, iterative DPO) except IOPO's two
    readings, which are two methods."""
    label = dict(labels)
    kind = str(label["variant"]) if str(label["variant"]).startswith("IOPO") else ""
    return (label["task"], label["method"], label["loss"], label["beta"], kind)


def steps_of(task: str, overrides: Sequence[str]) -> int:
    from bpo.common.configlib import load_config
    from bpo.loop.config import RunConfig

    return load_config(RunConfig, None, [f"task={task}", *overrides]).resolved_schedule().steps


BUILTIN = ("reviews", "sorting")


# The betas of Table 1: the paper's 0.1 and a larger one. Table 2, Figures 4-7 and IOPO use the first,
# 0.5: with our ~10-token responses beta * (log-ratio margin) is so small at 0.1 that the loss weights
# every pair alike whatever the reference, and a fixed and a behavior reference train the same policy.
BETAS = (0.5, 0.1)


def selection_grids(select: str) -> dict:
    """The Plan fields of a learning-rate protocol: "dev" chooses each arm's learning rate (and the EMA's tau)
    on the dev prompts; "paper" trains every method at the one learning rate of the run configuration."""
    if select not in SELECT_PROTOCOLS:
        raise ValueError(f"select must be one of {', '.join(SELECT_PROTOCOLS)}, got {select!r}")
    return {"lr_grid": LR_GRID, "tau_grid": TAU_GRID} if select == "dev" else {}


SELECT_PROTOCOLS = ("dev", "paper")


def quick_plan(tasks: Sequence[str], seeds: int, overrides: Sequence[str], select: str = "dev") -> Plan:
    """About 10-20 minutes on 2 slow cores: DPO only, F in {1, 2, T}, T = 32 steps of 16 pairs, 64
    held-out prompts; Table 2, Figures 5-7 and IOPO (against DPO, iterative DPO and SFT) on the first
    seed only; with select="dev", each arm's learning rate chosen first on one selection seed."""
    small = ("schedule.steps=32", "schedule.batch_size=16", "eval.prompts=64")
    return Plan(
        tuple(tasks),
        tuple(range(seeds)),
        ("dpo",),
        BETAS,
        (2,),
        (*small, *overrides),
        extra_seeds=(0,),
        iopo_baselines=("DPO", "iterative DPO"),
        **selection_grids(select),
    )


def full_plan(tasks: Sequence[str], seeds: int, overrides: Sequence[str], select: str = "dev") -> Plan:
    """T = 64 steps of 16 pairs (the defaults), DPO, IPO and SLiC, F in {1, 2, 4, 8, 16, T}, every section on
    every seed: 31 runs per task and seed, and with select="dev" the selection runs (3 learning rates per arm,
    3 taus for the EMA variant) on one selection seed."""
    return Plan(
        tuple(tasks),
        tuple(range(seeds)),
        ("dpo", "ipo", "slic"),
        BETAS,
        (1, 2, 4, 8, 16),
        tuple(overrides),
        central=central_cells(tasks, overrides),
        **selection_grids(select),
    )


def central_cells(tasks: Sequence[str], overrides: Sequence[str]) -> tuple[tuple[int, float], ...]:
    """The central-claim cells beside Table 1's (T, first beta): 3T at that beta, T at 4x beta, 3T at 4x beta."""
    steps = steps_of(tasks[0], overrides)
    return ((3 * steps, BETAS[0]), (steps, 4 * BETAS[0]), (3 * steps, 4 * BETAS[0]))


# The BPO paper's Figure 7 grid of the EMA's tau, and its F grids of Figure 4 (section 5.2): on TL;DR T = 600
# and F in {1, 2, 6, 15, 600}; on Helpfulness T = 150 and F in {1, 2, 3, 150}.
PAPER_TAUS = (1e-2, 5e-2, 1e-3, 5e-3, 1e-4)
PAPER_STEPS, PAPER_PHASES = 120, (1, 2, 6, 15)  # the TL;DR grid's F values; 120 = 600 / 5 is divided by each
PRESETS = ("default", "paper", "iopo")
IOPO_PAPER_BETA = 0.1  # the IOPO paper's section 6.1


def iopo_plan(tasks: Sequence[str], seeds: int, overrides: Sequence[str], select: str = "dev") -> Plan:
    """`--preset iopo`: the IOPO paper's Table 1 on our tasks and nothing else. IOPO offline under both readings
    against the paper's offline baselines (DPO, RSO, IPO, KTO-pair; SFT), every one on the same pairs: one
    annotation phase by the SFT policy, T = 64 batches of 16 (the protagonist's; 4 rounds of 16 + 4), β = 0.1
    (the IOPO paper's, section 6.1); Table 1's three methods at (DPO, β) come with it (the report's frame). Each
    arm's learning rate chosen on the dev prompts unless select="paper"."""
    return Plan(
        tuple(tasks),
        tuple(range(seeds)),
        ("dpo",),
        (IOPO_PAPER_BETA,),
        (),
        tuple(overrides),
        sections=("table1", "iopo"),
        iopo_kinds=("offline",),
        iopo_baselines=tuple(name for name, method, _ in IOPO_BASELINES if method == "offline_dpo"),
        **selection_grids(select),
    )


def paper_plan(tasks: Sequence[str], seeds: int, overrides: Sequence[str], select: str = "paper") -> Plan:
    """`--preset paper`: the BPO paper's own settings where they run here. β = 0.1 for every method, 5 LoRA
    adapters, DPO / IPO / SLiC; T = 120 with the F values of Figure 4's TL;DR grid (1, 2, 6, 15, T: the same
    numbers of phases, at a fifth of the paper's T, so a phase is a fifth as long); Figure 6's arms (BPO and
    on-policy DPO with 1 adapter beside Table 1's 5); Figure 7's five taus (one adapter, EMA reference); IOPO
    offline, as in its paper. One learning rate for all methods (the paper's protocol) unless select="dev"."""
    variants = (
        ("1 adapter", "bpo", ("lora.ensemble=1",)),
        ("on-policy DPO, 1 adapter", "online_dpo", ("lora.ensemble=1",)),
        *(
            (
                f"EMA reference τ={tau:g}, 1 adapter",
                "bpo",
                ("lora.ensemble=1", "reference.kind=ema", f"reference.ema_tau={tau:g}"),
            )
            for tau in PAPER_TAUS
        ),
    )
    return Plan(
        tuple(tasks),
        tuple(range(seeds)),
        ("dpo", "ipo", "slic"),
        (0.1,),
        PAPER_PHASES,
        (f"schedule.steps={PAPER_STEPS}", *overrides),
        base=("lora.ensemble=5", "eval.kl=true"),
        variants=variants,
        iopo_kinds=("offline",),
        iopo_round=(12, 4),  # a 3 : 1 round; N_mu = 12 divides T = 120: 10 rounds
        **{**selection_grids(select), "tau_grid": ()},
    )
