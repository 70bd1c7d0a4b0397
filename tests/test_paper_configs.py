"""configs/paper/: the BPO and IOPO papers' own settings, checked without downloading anything.

Each file goes through what `bpo train CONFIG` does before it reads any data or weights: bpo.api.make_config
(the YAML read, typed and validated, the schedule resolved) and, for its task file, read_task_spec (keys,
types, format; a Hub data set id is resolved only when the task is built). HF_HUB_OFFLINE=1 throughout.

The numbers are the papers', with where they stand:

BPO paper (000_17e805bb176e7523.txt), section 5 "Implementation": batch size 16, 64 and 16 and 625, 150 and
625 steps for TL;DR, Helpfulness and Harmlessness; learning rate 5e-5 for SFT and preference learning; beta =
0.1; Gemma-2b; an ensemble of 5 LoRA weights. Section 5.1: on-policy BPO (K = 1, so F = T) for Table 1.
Section 5 "Dataset & Evaluation Metric", footnote 1: OpenAssistant/reward-model-deberta-v3-large-v2 annotates
and evaluates.

IOPO paper (003_cd555d8f0dea9dc6.txt), section 6.1 "Datasets & Setting": learning rate 2e-7 (printed
"2 * exp^{-7}"), batch size 32, beta = 0.1, epsilon = 0.3, Baichuan2-7B; footnotes 1 and 2: the data sets
argilla/distilabel-capybara-dpo-7k-binarized and mlabonne/orpo-dpo-mix-40k; offline (one phase, data.pairs).

Each model or data set id in a config appears in its paper's text (white space ignored: the PDF extraction
breaks footnote 1's URL after "OpenAssistant/"), or, where the paper names the thing but gives no id (the id
is then ours and marked so in the YAML), the paper's own name for it does. The text is read from
/work/shared/papers (or $BPO_PAPERS) when it is there; a clean clone without it skips that check.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from bpo import api
from bpo.common.hub import DATASET_ID, MODEL_ID
from bpo.tasks.files import read_task_spec

ROOT = Path(__file__).parent.parent
PAPER_CONFIGS = sorted((ROOT / "configs" / "paper").glob("*.yaml"))
PAPERS = Path(os.environ.get("BPO_PAPERS", "/work/shared/papers"))
BPO_PAPER, IOPO_PAPER = "000_17e805bb176e7523.txt", "003_cd555d8f0dea9dc6.txt"

RM = "OpenAssistant/reward-model-deberta-v3-large-v2"
# file: (T, B); F = T, beta, the learning rates and the adapters are the same for all three
BPO = {
    "bpo-tldr.yaml": (625, 16),
    "bpo-hh-helpful.yaml": (150, 64),
    "bpo-hh-harmless.yaml": (625, 16),
}
IOPO = {
    "iopo-capybara.yaml": "argilla/distilabel-capybara-dpo-7k-binarized:train",
    "iopo-orpo-mix.yaml": "mlabonne/orpo-dpo-mix-40k:train",
}
# Ids that are ours (the paper names the model or data set, not its Hub id): the name the paper uses instead.
PAPER_NAME = {
    "google/gemma-2b": "Gemma-2b",
    "baichuan-inc/Baichuan2-7B-Chat": "Baichuan2-7B",
    "vwxyzjn/summarize_from_feedback_tldr_3_filtered_oai_preprocessing_1706381144": "Reddit TL;DR",
    "trl-lib/hh-rlhf-helpful-base": "Anthropic Helpfulness",
    "xinpeng/hh-rlhf-harmless-base": "Harmlessness",
}
# The IOPO configs evaluate on the BPO paper's helpfulness task with its reward model (ours: the IOPO paper's
# judges cannot be loaded by bpo): those ids are checked against the BPO paper.
BORROWED = {RM, "trl-lib/hh-rlhf-helpful-base"}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))  # nothing cached: nothing can load
    monkeypatch.chdir(ROOT)  # the configs name their task files from the repository root, as the docs run them


def test_every_paper_config_is_checked_here():
    assert sorted(p.name for p in PAPER_CONFIGS) == sorted([*BPO, *IOPO])


def checked(path: Path):
    """What `bpo train PATH` validates before reading data or weights: the config, then its task file."""
    cfg = api.make_config(path)
    spec = read_task_spec(Path(cfg.task))
    return cfg, spec


@pytest.mark.parametrize("name", sorted(BPO))
def test_bpo_configs_hold_the_papers_settings(name):
    cfg, spec = checked(ROOT / "configs" / "paper" / name)
    steps, batch = BPO[name]
    s = cfg.resolved_schedule()
    assert (cfg.method, cfg.loss, cfg.reference_kind()) == ("bpo", "dpo", "behavior")
    assert (s.steps, s.batch_size, s.phases) == (steps, batch, steps)  # F = T: section 5.1, K = 1
    assert (cfg.beta, cfg.optim.lr, cfg.sft.lr, cfg.lora.ensemble) == (0.1, 5e-5, 5e-5, 5)
    assert cfg.sft.steps > 0  # an SFT stage on preferred responses (its length is ours)
    assert cfg.policy.path == "google/gemma-2b"
    assert (cfg.annotator.kind, cfg.annotator.judge, cfg.eval.judge) == ("reward_model", RM, RM)
    assert {spec["train"], spec["eval"]} <= set(ids_of(ROOT / "configs" / "paper" / name))


@pytest.mark.parametrize("name", sorted(IOPO))
def test_iopo_configs_hold_the_papers_settings(name):
    cfg, _ = checked(ROOT / "configs" / "paper" / name)
    s = cfg.resolved_schedule()
    assert (cfg.method, cfg.data.pairs, s.phases) == ("iopo", IOPO[name], 1)  # offline: all pairs up front
    assert (cfg.beta, cfg.optim.lr, s.batch_size, cfg.iopo.eps) == (0.1, 2e-7, 32, 0.3)
    assert cfg.eval.temperature == 0.8  # section 6.2: evaluation samples at temperature 0.8
    assert s.pairs <= {"iopo-capybara.yaml": 7563, "iopo-orpo-mix.yaml": 44245}[name]  # rows per section 6.1 / card


def ids_of(path: Path) -> list[str]:
    """Every Hub model or data set id in a config and in the task file it names (values only)."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, str) and not Path(value).exists():
            if MODEL_ID.match(value) or DATASET_ID.match(value):
                found.append(value)

    data = yaml.safe_load(path.read_text())
    walk(data)
    task = ROOT / data["task"]
    if task.is_file():
        walk(yaml.safe_load(task.read_text()))
    return found


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.name)
def test_ids_are_the_papers(path):
    own = BPO_PAPER if path.name.startswith("bpo-") else IOPO_PAPER
    for name in {own, BPO_PAPER}:
        if not (PAPERS / name).is_file():
            pytest.skip(f"{PAPERS / name}: the paper's text is not here (a clean clone has no ../shared/papers)")
    ids = ids_of(path)
    assert ids
    for spec in ids:
        repo = (DATASET_ID.match(spec) or MODEL_ID.match(spec))["repo"]
        text = (PAPERS / (BPO_PAPER if repo in BORROWED else own)).read_text()
        squeezed = re.sub(r"\s+", "", text)
        if repo in PAPER_NAME:
            assert PAPER_NAME[repo] in text, (path.name, repo, PAPER_NAME[repo])
        else:
            assert repo in squeezed, (path.name, repo)
