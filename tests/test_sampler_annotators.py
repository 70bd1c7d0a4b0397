"""The sampler's recorded log-probs, the annotators, the pair collection and the buffer."""

import pytest
import torch
from conftest import make_policy

from bpo.judging.annotators import ScoreAnnotator, SimulatedAnnotator
from bpo.judging.judges import JudgeError, load_judge
from bpo.loop.config import SamplingSpec
from bpo.model.policy import MERGED
from bpo.model.sampler import generate
from bpo.model.scoring import response_logprobs
from bpo.training.buffer import phase_batches


def test_sampled_logprobs_equal_teacher_forced_pass(tiny_model_dir):
    """BPO needs no reference forward pass: the behavior log-probs the sampler records are the snapshot's."""
    policy = make_policy(tiny_model_dir, ensemble=2, perturb=0.3)
    tok = policy.tokenizer
    prompts = [tok("w1 w2 w3")["input_ids"], tok("w5")["input_ids"], tok("w7 w8 w9 w10 w11")["input_ids"]]
    torch.manual_seed(0)
    with policy.use(MERGED) as model:
        samples = generate(model, tok, prompts, 2, SamplingSpec(max_new_tokens=10, temperature=0.7, top_p=0.9))
        flat = [r for rs in samples for r in rs]
        forced = response_logprobs(
            model, [p for p in prompts for _ in range(2)], [r.ids for r in flat], tok.pad_token_id
        )
    assert len(samples) == 3 and all(len(s) == 2 for s in samples)
    assert torch.allclose(torch.tensor([r.logp for r in flat]), forced, atol=1e-4)
    for r in flat:  # a response stops at (and includes) its first EOS
        assert tok.eos_token_id not in r.ids[:-1]


def test_sample_tokens_by_inverse_cdf():
    """Tokens 0, 1, 2 with probabilities 0.2, 0.5, 0.3 (deliberately not in order).
    Temperature 1, top_p 1: cumulative 0.2, 0.7, 1.0, so u = 0.1 -> 0, 0.5 -> 1, 0.75 -> 2.
    top_p 0.6: in decreasing order 0.5 (mass before 0), 0.3 (before 0.5 < 0.6, kept), 0.2 (before 0.8,
    dropped); renormalised token 1 gets 0.625, token 2 0.375: u = 0.6 -> 1, 0.7 -> 2, never 0.
    Temperature 0.5 squares the probabilities: 0.04, 0.25, 0.09 over 0.38 = 0.1053, 0.6579, 0.2368,
    cumulative 0.1053, 0.7632: u = 0.1 -> 0, 0.11 -> 1, 0.76 -> 1, 0.77 -> 2."""
    from bpo.model.sampler import sample_tokens

    logits = torch.tensor([0.2, 0.5, 0.3]).log()

    def draw(temperature, top_p, us):
        return sample_tokens(logits.expand(len(us), 3), temperature, top_p, torch.tensor(us)).tolist()

    assert draw(1.0, 1.0, [0.1, 0.5, 0.75]) == [0, 1, 2]
    assert draw(1.0, 0.6, [0.0, 0.6, 0.7, 0.99]) == [1, 1, 2, 2]
    assert draw(0.5, 1.0, [0.1, 0.11, 0.76, 0.77]) == [0, 1, 1, 2]
    assert draw(1.0, 1.0, [1.0 - 2**-24]) == [2]
    # a draw past the CDF's end (rounding) lands on a last token of probability 0: the mode is taken instead
    zero_last = torch.tensor([[0.0, 0.0, -float("inf")]])  # 0.5, 0.5, 0
    assert sample_tokens(zero_last, 1.0, 1.0, torch.tensor([1.0])).tolist() == [0]


def test_samples_of_one_prompt_are_independent_and_ignore_the_generation_config(tiny_model_dir):
    """The prompt runs once and its cache is repeated: the n samples must still be n separate draws.
    The model's generation_config (here a repetition penalty) is not applied: bpo samples from the policy
    itself, shaped only by its own temperature and top-p."""
    policy = make_policy(tiny_model_dir, ensemble=1)
    tok = policy.tokenizer
    spec = SamplingSpec(max_new_tokens=8, temperature=1.0)
    with policy.use(MERGED) as model:
        torch.manual_seed(1)
        plain = generate(model, tok, [tok("w1 w2")["input_ids"]], 8, spec)[0]
        model.generation_config.repetition_penalty = 5.0
        torch.manual_seed(1)
        penalised = generate(model, tok, [tok("w1 w2")["input_ids"]], 8, spec)[0]
    assert len({tuple(r.ids) for r in plain}) > 1
    assert [r.ids for r in penalised] == [r.ids for r in plain]


def test_greedy_is_deterministic(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=1)
    tok = policy.tokenizer
    prompts = [tok("w1 w2")["input_ids"]]
    with policy.use(MERGED) as model:
        a = generate(model, tok, prompts, 1, SamplingSpec(max_new_tokens=6, greedy=True))
        b = generate(model, tok, prompts, 1, SamplingSpec(max_new_tokens=6, greedy=True))
    assert a[0][0].ids == b[0][0].ids


def length_judge(prompts, responses):
    return [float(len(r.split())) for r in responses]


def test_score_annotator_prefers_higher_score_and_reports_ties():
    labels = ScoreAnnotator(length_judge).label(["p", "p", "p"], ["a b", "a", "a b"], ["a", "a b c", "c d"])
    assert [label.preferred for label in labels] == [0, 1, None]
    assert labels[1].scores == (1.0, 3.0)


def test_simulated_annotator_follows_bradley_terry():
    """Scores differ by 1 with temperature 1: P(first preferred) = sigmoid(1) = 0.731; within the tie band: tie."""
    n = 4000
    sim = SimulatedAnnotator(length_judge, temperature=1.0, tie_band=0.0)
    labels = sim.label(["p"] * n, ["a b"] * n, ["a"] * n, seed=3)
    rate = sum(label.preferred == 0 for label in labels) / n
    assert abs(rate - 0.7311) < 0.03
    assert labels == sim.label(["p"] * n, ["a b"] * n, ["a"] * n, seed=3)  # same seed, same rater
    banded = SimulatedAnnotator(length_judge, temperature=1.0, tie_band=1.0).label(["p"], ["a b"], ["a"])
    assert banded[0].preferred is None


def test_user_judge_by_module_function():
    judge = load_judge("test_sampler_annotators:length_judge")
    assert judge(["p"], ["a b c"]) == [3.0]
    with pytest.raises(JudgeError, match="cannot import"):
        load_judge("no_such_module_xyz:f")
    with pytest.raises(JudgeError, match="not 'task'"):
        load_judge("nonsense")


def test_phase_batches_use_each_pair_once_in_an_order_set_by_seed_and_phase():
    from test_reference import sample_pairs

    pairs = sample_pairs(6)
    batches = phase_batches(pairs, batch_size=2, seed=1, phase=0)
    assert [len(b) for b in batches] == [2, 2, 2]
    assert sorted(p.id for b in batches for p in b) == sorted(p.id for p in pairs)  # each exactly once
    assert phase_batches(sample_pairs(6), 2, seed=1, phase=0) == batches  # a resumed run: same batches
    orders = {tuple(p.id for b in phase_batches(pairs, 2, seed=1, phase=f) for p in b) for f in range(6)}
    assert len(orders) > 1  # another phase, another order (6! orders: equal for all six phases is ~1e-14)
    with pytest.raises(ValueError, match="phase 3 has 6 pairs, not a multiple of the batch size 4"):
        phase_batches(pairs, 4, seed=1, phase=3)


def test_reward_model_judge_rescores_text_with_its_own_tokenizer(tmp_path):
    """A sequence-classification model with a character-level vocabulary unrelated to the policy's:
    texts are re-tokenised by its own tokenizer; scores equal a direct forward pass; batching does not
    change them; the annotator chooses the higher score."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    from bpo.judging.judges import RewardModelJudge

    chars = ["<pad>", "<unk>", "<eos>"] + list("abcdefghijklmnopqrstuvwxyz0123456789 ")
    tk = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    ).save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(chars),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
        pad_token_id=0,
    )
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)

    judge = load_judge(str(tmp_path))
    assert isinstance(judge, RewardModelJudge)
    prompts, responses = ["hi there", "what is 2"], ["hello friend", "it is 4 i think"]
    scores = judge(prompts, responses)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    direct = []
    for p, r in zip(prompts, responses):
        enc = tok([f"{p} {r}"], return_tensors="pt")
        with torch.no_grad():
            direct.append(judge.model(**enc).logits[0, 0].item())
    assert scores == pytest.approx(direct, abs=1e-5)
    judge.batch_size = 1
    assert judge(prompts, responses) == pytest.approx(scores, abs=1e-5)
    labels = ScoreAnnotator(judge).label(prompts, responses, ["zzz", "it is 4 i think"])
    expected_first = [0 if a > b else 1 for a, b in zip(scores, judge(prompts, ["zzz", "it is 4 i think"]))]
    assert [label.preferred for label in labels][:1] == expected_first[:1] and labels[1].preferred is None
