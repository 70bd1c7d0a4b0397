"""The built-in "reviews" task: its judge, its data, its tiny policy and the SFT policy it yields.

Hand-computed judge scores (prompt "review the pizza recommended by anna :", a food item whose
fitting aspects are taste, portion, price and service):

  "the pizza was great and the taste was superb ."
      great 1.2 + superb 1.5 + item 1.0 + aspect taste 0.25                            =  3.95
  "the pizza was bland and the price was awful ."
      bland -1.05 + awful -1.4 + item 1.0 + aspect price 0.25                          = -1.2
  "the laptop was great ."
      great 1.2 - other item laptop 0.5                                                =  0.7
  "great great pizza xyz"
      great 1.2 + item 1.0 - repeated great 0.5 - no final "." 1.0 - unknown xyz 1.0   = -0.3
  "superb ."
      superb 1.5 - 3 words short of 4 * 0.5                                            =  0.0
  "the pizza was good and the battery was nice ."
      good 1.0 + nice 0.9 + item 1.0 (battery is a tech aspect: no bonus)              =  2.9
  "the pizza was <unk> ."
      item 1.0 - unknown <unk> 1.0                                                     =  0.0
  "the pizza was good and the taste was nice and the price was fine and the service was okay ."
      good 1.0 + nice 0.9 + fine 0.16 + okay 0.12 + item 1.0 + 3 aspects 0.75
      - 7 words over 12 * 0.5                                                          =  0.43
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bpo.common.cachefolder import COMPLETE_MARKER
from bpo.data.tokens import collate, encode_prompt, strip_eos
from bpo.tasks import reviews
from bpo.tasks.registry import BUILTIN_TASKS
from bpo.training.sft import supervised_finetune

PIZZA = "review the pizza recommended by anna :"


# ----------------------------------------------------------------------------------------- judge


@pytest.mark.parametrize(
    "response, expected",
    [
        ("the pizza was great and the taste was superb .", 3.95),
        ("the pizza was bland and the price was awful .", -1.2),
        ("the laptop was great .", 0.7),
        ("great great pizza xyz", -0.3),
        ("superb .", 0.0),
        ("the pizza was good and the battery was nice .", 2.9),
        ("the pizza was <unk> .", 0.0),
        ("the pizza was good and the taste was nice and the price was fine and the service was okay .", 0.43),
    ],
)
def test_judge_hand_computed_scores(response: str, expected: float) -> None:
    assert reviews.score(PIZZA, response) == pytest.approx(expected, abs=1e-9)


def test_judge_terms_sum_to_score_and_attached_punctuation_is_split() -> None:
    terms = reviews.score_terms(PIZZA, "the pizza was great.")
    assert terms["period"] == 0.0 and terms["item"] == 1.0
    assert reviews.score(PIZZA, "the pizza was great.") == reviews.score(PIZZA, "the pizza was great .")
    assert sum(terms.values()) == pytest.approx(reviews.score(PIZZA, "the pizza was great ."))


def test_judge_preferences() -> None:
    s = lambda r: reviews.score(PIZZA, r)  # noqa: E731
    assert s("the pizza was great .") > s("the pizza was awful .")  # praise over complaints
    assert s("the pizza was great .") > s("the pizza was okay .") > s("the pizza was bad .")
    assert s("the pizza was great .") > s("the laptop was great .")  # on topic over off topic
    assert s("the pizza was great and the taste was nice .") > s("the pizza was great .")  # aspects
    assert s("the pizza was great .") > s("the pizza was great")  # ends with a full stop
    assert s("the pizza was great .") > s("the pizza pizza was great .")  # no repeats
    # The batch judge is the same function, pairwise.
    assert reviews.judge([PIZZA, PIZZA], ["the pizza was great .", "bad ."]) == [
        s("the pizza was great ."),
        s("bad ."),
    ]
    with pytest.raises(ValueError):
        reviews.judge([PIZZA], [])


# ------------------------------------------------------------------------------------------ data


def test_task_is_deterministic_split_and_registered() -> None:
    task = BUILTIN_TASKS["reviews"].build()
    assert task == reviews.build_task() and task.judge is reviews.judge and task.name == "reviews"
    assert not task.chat_template
    assert len(task.train) == reviews.N_TRAIN and len(task.eval) == reviews.N_EVAL
    train_prompts = {e.prompt for e in task.train}
    assert len(train_prompts) == len(task.train)
    assert train_prompts.isdisjoint(e.prompt for e in task.eval)
    assert {e.prompt for e in task.demonstrations} == train_prompts
    # That no run seed changes the split, for every task: tests/test_held_out.py.


def test_data_is_what_cached_sft_policies_were_trained_on() -> None:
    """The SFT cache is named by TASK_VERSION and the SFT settings, not by the data itself, so a
    change of the data must come with a new TASK_VERSION; this digest is of the data that version 1
    was trained on (the task of seed 0, when the task still took a seed)."""
    task = reviews.build_task()
    data = {key: [asdict(e) for e in getattr(task, key)] for key in ("train", "eval", "demonstrations")}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert (reviews.TASK_VERSION, digest) == (1, "6e3da1e7f2cf878a251d383688466374b62515977b58f8b11727c61809f55f39"), (
        "the reviews data changed: bump TASK_VERSION, then pin the new digest here"
    )


def test_references_are_decent_but_beatable_and_demonstrations_mixed() -> None:
    task = reviews.build_task()
    refs = [reviews.score(e.prompt, e.reference) for e in task.train + task.eval]
    assert min(refs) > 1.5  # on topic and positive
    # Two strong words, the item and an aspect beat every reference.
    strong = "the {item} was superb and the {aspect} was brilliant ."
    for e in task.eval:
        item = reviews.prompt_item(e.prompt)
        better = strong.format(item=item, aspect=reviews.ASPECTS_BY_CATEGORY[reviews.CATEGORY_OF[item]][0])
        assert reviews.score(e.prompt, better) > reviews.score(e.prompt, e.reference)
    demos = [reviews.score(e.prompt, e.reference) for e in task.demonstrations]
    worse = sum(d < 1.5 for d in demos) / len(demos)
    assert 0.4 < worse < 0.8  # many crowd reviews are negative, neutral or off topic
    assert max(demos) > max(refs)  # but some are better than any reference


# ---------------------------------------------------------------------------------- tiny policy


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reviews.build_tiny_policy(tmp_path_factory.mktemp("tiny"), seed=0)


def test_tokenizer_adds_bos_only_with_special_tokens(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert (tok.pad_token, tok.unk_token, tok.bos_token, tok.eos_token) == ("<pad>", "<unk>", "<bos>", "<eos>")
    plain = tok("the pizza was great .", add_special_tokens=False)["input_ids"]
    assert len(plain) == 5 and tok.bos_token_id not in plain
    assert tok("the pizza was great .", add_special_tokens=True)["input_ids"] == [tok.bos_token_id] + plain
    assert tok.decode(plain) == "the pizza was great ."
    assert tok("the zebra", add_special_tokens=False)["input_ids"][1] == tok.unk_token_id
    assert len(tok) == len(reviews.VOCABULARY) + len(reviews.SPECIAL_TOKENS)


def test_tiny_policy_round_trips_and_is_seeded(tiny_dir: Path, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    assert model.dtype == torch.float32 and model.config.tie_word_embeddings
    ids = torch.tensor([[2, 10, 20, 30, 40]])
    with torch.no_grad():
        logits = model(ids).logits
    model.save_pretrained(tmp_path / "again")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "again").eval()
    same_seed = AutoModelForCausalLM.from_pretrained(reviews.build_tiny_policy(tmp_path / "seed0", seed=0))
    other_seed = AutoModelForCausalLM.from_pretrained(reviews.build_tiny_policy(tmp_path / "seed1", seed=1))
    with torch.no_grad():
        assert torch.equal(again(ids).logits, logits)
        assert torch.equal(same_seed(ids).logits, logits)
        assert not torch.allclose(other_seed(ids).logits, logits)


def test_supervised_finetune_is_deterministic_and_lowers_the_loss(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    examples = reviews.build_task().demonstrations[:64]
    runs = []
    for _ in range(2):
        model = AutoModelForCausalLM.from_pretrained(tiny_dir)
        runs.append(supervised_finetune(model, tok, examples, steps=40, batch_size=8, lr=1e-2, seed=3, progress=False))
    assert runs[0] == runs[1] and len(runs[0]) == 40
    assert statistics.mean(runs[0][-5:]) < 0.6 * statistics.mean(runs[0][:5])


# ------------------------------------------------------------------------------------ SFT policy


@pytest.fixture(scope="session")
def sft_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    path = reviews.sft_policy(cache, seed=0, progress=False)
    print(f"\nSFT of the reviews policy: {time.perf_counter() - start:.1f} s")
    return path


def generate(model, tokenizer, prompts: list[str], *, sample: bool, n: int = 1, seed: int = 0) -> list[str]:
    """n responses per prompt (grouped by prompt), left-padded batch, decoded without EOS."""
    ids = [encode_prompt(tokenizer, p) for p in prompts for _ in range(n)]
    input_ids, attention, _ = collate(ids, [[] for _ in ids], tokenizer.pad_token_id, "left")
    options = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if sample else dict(do_sample=False)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=20,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **options,
        )
    new = out[:, input_ids.shape[1] :].tolist()
    return [tokenizer.decode(strip_eos(row, tokenizer.eos_token_id), skip_special_tokens=True) for row in new]


def win(score: float, reference: float) -> float:
    return 1.0 if score > reference else 0.5 if score == reference else 0.0


def test_sft_policy_is_cached(sft_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (sft_dir / COMPLETE_MARKER).exists() and sft_dir.name.startswith("reviews-sft-")
    assert [p.name for p in sft_dir.parent.iterdir()] == [sft_dir.name]  # no temporary folder left

    def no_training(*args, **kwargs):
        raise AssertionError("a complete cached policy must be reused")

    monkeypatch.setattr("bpo.training.sft.supervised_finetune", no_training)
    assert reviews.sft_policy(sft_dir.parent, seed=0, progress=False) == sft_dir


def test_left_padded_generation_matches_unpadded(sft_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(sft_dir).eval()
    tok = AutoTokenizer.from_pretrained(sft_dir)
    prompts = [
        "review the pizza recommended by anna :",
        "what did you think of the zoo recommended by leo ?",
        "give your opinion on the camera recommended by omar :",
    ]
    batched = generate(model, tok, prompts, sample=False)
    assert batched == [generate(model, tok, [p], sample=False)[0] for p in prompts]
    assert all(r.endswith(".") for r in batched)


def test_sft_policy_is_below_the_references_with_room_to_improve(sft_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(sft_dir).eval()
    tok = AutoTokenizer.from_pretrained(sft_dir)
    task = reviews.build_task()
    prompts = [e.prompt for e in task.eval]
    refs = reviews.judge(prompts, [e.reference for e in task.eval])

    greedy = reviews.judge(prompts, generate(model, tok, prompts, sample=False))
    n = 4
    sampled = reviews.judge([p for p in prompts for _ in range(n)], generate(model, tok, prompts, sample=True, n=n))
    per_prompt = [sampled[i * n : (i + 1) * n] for i in range(len(prompts))]

    greedy_win = statistics.mean(win(g, r) for g, r in zip(greedy, refs))
    sample_win = statistics.mean(win(s, r) for group, r in zip(per_prompt, refs) for s in group)
    best_of_n_win = statistics.mean(win(max(group), r) for group, r in zip(per_prompt, refs))
    print(
        f"\nreference mean {statistics.mean(refs):.2f}; greedy mean {statistics.mean(greedy):.2f} "
        f"win {greedy_win:.3f}; sampled mean {statistics.mean(sampled):.2f} win {sample_win:.3f}; "
        f"best-of-{n} win {best_of_n_win:.3f}"
    )
    assert greedy_win < 0.45
    assert sample_win < 0.45
    assert best_of_n_win > sample_win + 0.15
