"""The initial policy's evaluation responses are generated once (bpo.evaluation.evalcache): a second evaluation with
the same weights, prompts, settings and seed reads them back and gives the same result as generating
them; anything the responses depend on gives another key; the judge always scores afresh."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import make_policy

import bpo.evaluation.evaluate
from bpo.data.task import Example
from bpo.evaluation.evaluate import evaluate_policy
from bpo.model.sampler import SamplingSpec

EXAMPLES = [Example(f"w{4 + i} w{10 + i}", f"w{40 + i % 5} w{20 + i}") for i in range(6)]
SPEC = SamplingSpec(temperature=1.0, max_new_tokens=6, batch_size=4)


def count_words(prompts, responses):
    return [float(len(r.split())) for r in responses]


def liked_words(prompts, responses):
    return [float(sum(w in {"w40", "w41"} for w in r.split())) for r in responses]


@pytest.fixture
def calls(monkeypatch):
    """How many times the sampler ran."""
    seen = []
    real = bpo.evaluation.evaluate.generate

    def spy(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bpo.evaluation.evaluate, "generate", spy)
    return seen


def initial(policy, cache, judge=count_words, spec=SPEC, seed=0):
    return evaluate_policy(
        policy, EXAMPLES, judge, spec, None, estimate_kl=False, seed=seed, progress=False, cache=cache
    ).to_json()


def test_second_evaluation_reads_the_responses_back_and_equals_an_uncached_one(tiny_model_dir, tmp_path, calls):
    """Two adapters trained apart (perturbed) do not change the key: the initial policy is the base."""
    policy = make_policy(tiny_model_dir, ensemble=2)
    uncached = initial(policy, None)
    first = initial(policy, tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 1
    again = initial(make_policy(tiny_model_dir, ensemble=2, seed=5), tmp_path)
    assert len(calls) == 2  # no generation: read back
    assert again == first == uncached
    assert [e["response"] for e in again["examples"]] == json.loads(next(tmp_path.glob("*.json")).read_text())[
        "responses"
    ]


def test_a_changed_judge_scores_the_cached_responses_again(tiny_model_dir, tmp_path, calls):
    policy = make_policy(tiny_model_dir, ensemble=1)
    by_length = initial(policy, tmp_path)
    by_words = initial(policy, tmp_path, judge=liked_words)
    assert len(calls) == 1
    responses = [e["response"] for e in by_length["examples"]]
    assert [e["response"] for e in by_words["examples"]] == responses
    assert [e["score"] for e in by_words["examples"]] == liked_words(None, responses)


@pytest.mark.parametrize("change", ["seed", "sampling", "prompts", "weights", "model config"])
def test_what_the_responses_depend_on_changes_the_key(tiny_model_dir, tmp_path, calls, change):
    policy = make_policy(tiny_model_dir, ensemble=1)
    initial(policy, tmp_path)
    if change == "seed":
        initial(policy, tmp_path, seed=1)
    elif change == "sampling":
        initial(policy, tmp_path, spec=replace(SPEC, greedy=True))
    elif change == "prompts":
        evaluate_policy(
            policy, EXAMPLES[:5], count_words, SPEC, None, estimate_kl=False, progress=False, cache=tmp_path
        )
    elif change == "model config":  # a value no state_dict holds (another folder's norm epsilon), no weight changes
        policy.model.config.rms_norm_eps *= 10
        initial(policy, tmp_path)
    else:
        with torch.no_grad():  # a fine-tuned base (an SFT stage): one weight of the base model moves
            next(p for n, p in policy.model.named_parameters() if "lora_" not in n).view(-1)[0] += 1e-3
        initial(policy, tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2


def test_the_trained_policy_and_kl_estimates_are_never_cached(tiny_model_dir, tmp_path, calls):
    """slot MERGED (the trained policy) and an evaluation with a KL estimate generate every time."""
    from bpo.model.policy import MERGED

    policy = make_policy(tiny_model_dir, ensemble=1)
    for _ in range(2):
        evaluate_policy(policy, EXAMPLES, count_words, SPEC, MERGED, estimate_kl=False, progress=False, cache=tmp_path)
    evaluate_policy(policy, EXAMPLES, count_words, SPEC, None, estimate_kl=True, progress=False, cache=tmp_path)
    assert len(calls) == 2 + 2 and not list(tmp_path.glob("*.json"))  # the KL run samples twice


def test_a_cache_that_cannot_be_written_warns_and_the_evaluation_goes_on(tiny_model_dir, tmp_path, calls):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder should be: mkdir fails
    policy = make_policy(tiny_model_dir, ensemble=1)
    with pytest.warns(UserWarning, match="cannot store the initial policy's answers"):
        result = initial(policy, blocked / "cache")
    assert result == initial(policy, None)


def test_a_damaged_entry_is_generated_again(tiny_model_dir, tmp_path, calls):
    policy = make_policy(tiny_model_dir, ensemble=1)
    first = initial(policy, tmp_path)
    entry = next(tmp_path.glob("*.json"))
    entry.write_text('{"responses": [')  # cut by a kill
    assert initial(policy, tmp_path) == first and len(calls) == 2
    assert json.loads(entry.read_text())["responses"] == [e["response"] for e in first["examples"]]
