"""Building the run's pieces from a validated RunConfig (task, policy, annotator, reference, judge)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bpo.common.cachefolder import cache_dir
from bpo.common.configlib import ConfigError
from bpo.data.task import Task
from bpo.judging.annotators import ScoreAnnotator, SimulatedAnnotator
from bpo.judging.judges import judge_timeout, load_judge, with_timeout
from bpo.loop.config import RunConfig
from bpo.model.loading import load_causal_lm, load_tokenizer, naming
from bpo.model.policy import EnsemblePolicy
from bpo.training.reference import (
    BehaviorReference,
    EMAReference,
    FixedReference,
    ReferenceStrategy,
    SFTReference,
    SyncReference,
)


def build_task(cfg: RunConfig, sft_base: Path | None = None) -> Task:
    """The task named by cfg.task. It does not depend on cfg.seed: every run of a task, whatever its
    seed, has the same train, demonstration and held-out eval prompts. A run whose SFT stage is saved
    (`sft_base`, see load_base) does not read sft.data again: resume, eval and export work if it moved."""
    from bpo.tasks.files import check_held_out, load_task_file
    from bpo.tasks.registry import BUILTIN_TASKS

    task = BUILTIN_TASKS[cfg.task].build() if cfg.task in BUILTIN_TASKS else load_task_file(cfg.task)
    if cfg.sft.data and not sft_done(
        cfg, sft_base
    ):  # SFT on a preference file's chosen responses (never on held-out prompts)
        from bpo.data.datafiles import naming_setting
        from bpo.training.sft import preferred_demonstrations

        with naming_setting("sft.data"):
            demonstrations = preferred_demonstrations(cfg.sft.data)
        check_held_out(Path(cfg.sft.data), task.eval, "sft.data", demonstrations)
        check_held_out(Path(cfg.sft.data), task.dev, "sft.data", demonstrations, "dev")
        task = replace(task, demonstrations=demonstrations)
    return task


def initial_model_folder(cfg: RunConfig, progress: bool = True) -> Path:
    """The folder of the initial policy: the configured one, or the task's built-in (SFT'd) policy."""
    if cfg.policy.path:
        from bpo.model.loading import naming, resolve_folder

        with naming("policy.path"):
            return resolve_folder(cfg.policy.path)  # a local folder, or a Hub id's cached snapshot
    from bpo.tasks.registry import BUILTIN_TASKS

    builtin = BUILTIN_TASKS.get(cfg.task)
    if builtin is None or builtin.policy is None:
        raise ConfigError(f"policy.path: task {cfg.task!r} has no built-in policy; set policy.path to a model folder")
    return builtin.policy(cache_dir(), progress)


def sft_done(cfg: RunConfig, sft_base: Path | None) -> bool:
    """Whether the run's SFT stage is saved in its folder (complete: config.json is written last)."""
    return bool(cfg.sft.steps) and sft_base is not None and (sft_base / "config.json").is_file()


def load_base(cfg: RunConfig, task: Task, sft_base: Path | None = None, progress: bool = True, finetune: bool = True):
    """(model, tokenizer, fine_tuned_now) of the policy's base: the initial policy, after the optional SFT stage
    (`finetune=False`: without it, for a dry run, which only times it).

    A run that did its SFT stage saved the result in its folder (`sft_base`); that copy is loaded, so
    `bpo eval`, `bpo export` and `--resume` use the very base the adapters were trained on, without
    redoing SFT. `fine_tuned_now` says the caller should save it there.
    """
    device = cfg.policy.torch_device()
    if sft_done(cfg, sft_base):
        return load_causal_lm(sft_base, cfg.policy.dtype).to(device), load_tokenizer(sft_base), False
    folder = initial_model_folder(cfg, progress)
    with naming("policy.path" if cfg.policy.path else None):
        model = load_causal_lm(folder, cfg.policy.dtype, cfg.policy.allow_pickle, cfg.policy.trust_remote_code).to(
            device
        )
        tokenizer = load_tokenizer(folder, cfg.policy.trust_remote_code)
    if not cfg.sft.steps or not finetune:
        return model, tokenizer, False
    from bpo.training.sft import supervised_finetune

    supervised_finetune(
        model,
        tokenizer,
        task.demonstrations,
        steps=cfg.sft.steps,
        batch_size=cfg.sft.batch_size,
        lr=cfg.sft.lr,
        seed=cfg.seed,
        chat_template=task.chat_template,
        progress=progress,
    )
    return model, tokenizer, True


def build_policy(cfg: RunConfig, task: Task, sft_base: Path | None = None, progress: bool = True) -> EnsemblePolicy:
    """The LoRA ensemble on the run's base (see `load_base`), for runs whose base is already saved."""
    model, tokenizer, _ = load_base(cfg, task, sft_base, progress)
    return EnsemblePolicy(model, tokenizer, cfg.lora, seed=cfg.seed)


def build_eval_judge(cfg: RunConfig, task: Task, run_root: Path | None = None):
    """The evaluation judge (eval.judge), loaded once for whatever evaluates the run. An LLM judge
    (eval.judge=llm, llm_local) compares each response with its reference; an endpoint's answers are kept in
    the run folder `run_root` when one is given."""
    from bpo.evaluation.evaluate import LLM_JUDGES

    if cfg.eval.judge in LLM_JUDGES:
        from bpo.judging.llm import EVAL_STORE_NAME, build_eval_llm_judge

        store = run_root / EVAL_STORE_NAME if run_root is not None else None
        return build_eval_llm_judge(cfg.annotator, cfg.eval, store, cfg.policy.torch_device(), cfg.policy.dtype)
    return timed_judge(cfg, task, "eval.judge", cfg.eval.judge_timeout, "eval.judge_timeout")


def timed_judge(cfg: RunConfig, task: Task, name: str, timeout: float | None, setting: str):
    """The judge the setting `name` (annotator.judge, eval.judge) names, each call within its timeout (the
    setting `setting`, else its kind's default): a judge that never answers stops the run
    (bpo.judging.judges.with_timeout). A reward model is loaded once for both roles (load_judge caches it);
    a folder or Hub id that cannot be loaded is refused naming the setting."""
    section, key = name.split(".")
    spec = getattr(getattr(cfg, section), key)
    with naming(name):
        judge = load_judge(spec, task.judge, cfg.policy.torch_device())
    return with_timeout(judge, spec, judge_timeout(spec, timeout), setting)


def build_judges(cfg: RunConfig, task: Task, run_root: Path | None = None):
    """(the phase's annotator, the evaluation judge), each judge loaded once: the same setting for both
    (a reward model, say) is one judge. The annotator is None for people (annotator.kind=human or
    external), who label stored pairs (bpo.annotate). An LLM endpoint's answers are stored in the run
    folder `run_root` (bpo.judging.llm)."""
    eval_judge = build_eval_judge(cfg, task, run_root)
    if cfg.annotator.kind in ("human", "external"):
        return None, eval_judge
    if cfg.annotator.kind in ("llm", "llm_local"):
        from bpo.judging.llm import STORE_NAME, build_llm_annotator

        store = run_root / STORE_NAME if run_root is not None else None
        return build_llm_annotator(cfg.annotator, store, cfg.policy.torch_device(), cfg.policy.dtype), eval_judge
    judge = timed_judge(cfg, task, "annotator.judge", cfg.annotator.timeout, "annotator.timeout")
    if cfg.annotator.kind in ("rule", "reward_model"):  # the judge's higher score is chosen
        return ScoreAnnotator(judge), eval_judge
    return SimulatedAnnotator(judge, temperature=cfg.annotator.temperature, tie_band=cfg.annotator.tie_band), eval_judge


class VocabularyMismatch(ValueError):
    pass


def build_reference(cfg: RunConfig, tokenizer) -> ReferenceStrategy:
    """The loss's reference; a fixed one is loaded now and must share the policy's `tokenizer` vocabulary."""
    kind = cfg.reference_kind()
    if kind == "sft":
        return SFTReference()
    if kind == "behavior":
        return BehaviorReference()
    if kind == "ema":
        return EMAReference(tau=cfg.reference.ema_tau)
    if kind == "sync":
        return SyncReference(every=cfg.reference.sync_every)
    model = load_causal_lm(cfg.reference.path, cfg.policy.dtype, cfg.policy.allow_pickle, cfg.policy.trust_remote_code)
    model = model.to(cfg.policy.torch_device())
    ref_vocab = load_tokenizer(cfg.reference.path).get_vocab()
    if ref_vocab != tokenizer.get_vocab():
        raise VocabularyMismatch(
            f"reference.path={cfg.reference.path}: its tokenizer's vocabulary differs from the policy's "
            f"({len(ref_vocab)} vs {len(tokenizer.get_vocab())} tokens); a fixed reference must score the "
            "policy's own token ids, so use a checkpoint of the same model family"
        )
    return FixedReference(model)
