"""Response log-probs against a direct computation, with left and right padding."""

import torch

from bpo.data.tokens import collate
from bpo.model.loading import load_causal_lm
from bpo.model.logprobs import model_sequence_logprobs, sequence_logprobs


def direct(logits, ids, response_mask):
    """The definition, token by token: sum over response positions t of log softmax(logits[t-1])[ids[t]]."""
    out = []
    for b in range(ids.shape[0]):
        total = 0.0
        for pos in range(1, ids.shape[1]):
            if response_mask[b, pos]:
                total += torch.log_softmax(logits[b, pos - 1].double(), -1)[ids[b, pos]].item()
        out.append(total)
    return torch.tensor(out)


def test_sequence_logprobs_match_direct_sum_and_mean():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    ids = torch.randint(0, 11, (3, 7), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 1]])
    expected = direct(logits, ids, mask)
    assert torch.allclose(sequence_logprobs(logits, ids, mask, "sum").double(), expected.double(), atol=1e-5)
    lengths = torch.tensor([3.0, 6.0, 1.0])
    assert torch.allclose(
        sequence_logprobs(logits, ids, mask, "mean").double(), (expected / lengths).double(), atol=1e-5
    )


def test_prompt_and_padding_do_not_count():
    """Changing logits at prompt or padding positions leaves the result unchanged."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 6, 5, generator=g)
    ids = torch.tensor([[1, 2, 3, 4, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 0, 0]])  # response tokens at positions 2, 3: logits 1, 2 count
    before = sequence_logprobs(logits, ids, mask)
    logits[0, 0] += 100.0
    logits[0, 3:] -= 50.0
    assert torch.equal(before, sequence_logprobs(logits, ids, mask))


def test_left_and_right_padding_agree_through_the_model(tiny_model_dir):
    model = load_causal_lm(tiny_model_dir).eval()
    prompts = [[2, 5, 6, 7], [2, 9], [2, 11, 12, 13, 14, 15, 16]]
    responses = [[20, 21, 3], [30, 31, 32, 33, 34, 3], [40, 3]]
    results = {}
    for side in ("left", "right"):
        ids, att, resp = collate(prompts, responses, pad_id=0, side=side)
        with torch.no_grad():
            results[side] = model_sequence_logprobs(model, ids, att, resp)
    unpadded = []
    for p, r in zip(prompts, responses):
        ids, att, resp = collate([p], [r], pad_id=0)
        with torch.no_grad():
            unpadded.append(model_sequence_logprobs(model, ids, att, resp).item())
    assert torch.allclose(results["left"], results["right"], atol=1e-5)
    assert torch.allclose(results["right"], torch.tensor(unpadded), atol=1e-5)


def test_the_model_projects_only_from_the_first_response_position_and_matches_full_logits(tiny_model_dir):
    """Prompt + response lengths 7, 8 and 9, so L = 9. Padded on the left, the batch's first response token is
    row 1's at position 3 (one pad, 2 prompt tokens): logits are needed at positions 2..8, the last 7 of 9.
    Padded on the right, it is row 1's at position 2: positions 1..8, 8 of 9. Either way the result equals
    the definition on the full logits."""
    model = load_causal_lm(tiny_model_dir).eval()
    prompts = [[2, 5, 6, 7], [2, 9], [2, 11, 12, 13, 14, 15, 16]]
    responses = [[20, 21, 3], [30, 31, 32, 33, 34, 3], [40, 3]]
    kept = []
    model.register_forward_hook(lambda module, args, out: kept.append(out.logits.shape[1]))
    for side, positions in (("left", 7), ("right", 8)):
        ids, att, resp = collate(prompts, responses, pad_id=0, side=side)
        with torch.no_grad():
            lean = model_sequence_logprobs(model, ids, att, resp)
            full = model(input_ids=ids, attention_mask=att, position_ids=(att.cumsum(-1) - 1).clamp(min=0)).logits
        assert ids.shape[1] == 9 and kept[-2] == positions and kept[-1] == 9
        assert torch.allclose(lean.double(), direct(full, ids, resp).double(), atol=1e-4)


def test_a_pairs_prompt_runs_once_for_both_responses_with_the_full_passs_values_and_gradients(tiny_model_dir):
    """Three pairs, prompts of 4, 8 and 2 tokens, responses of 3 to 6 tokens. The shared-prompt pass runs
    the model twice: the 3 prompts (left-padded to 8) and the 6 responses (right-padded to 6) against their
    prompt's cache, 3 x 8 + 6 x 6 = 60 token positions instead of the full pass's 6 x (8 + 6) = 84. Its
    log-probs equal the definition on the full logits, and the LoRA gradient of a weighted sum of them
    equals the full pass's. Rows that are not pairs (rejected row with another prompt) run the full pass."""
    from conftest import make_policy

    from bpo.data.records import Pair, make_batch
    from bpo.model.logprobs import pair_sequence_logprobs, shared_prompt_layout

    policy = make_policy(tiny_model_dir, ensemble=1, perturb=0.3)
    prompts = [[2, 5, 6, 7], [2, 9, 10, 11, 12, 13, 14, 15], [2, 16]]
    chosen, rejected = (
        [[20, 21, 3], [30, 31, 32, 33, 34, 3], [40, 41, 3]],
        [[22, 3, 3], [35, 3, 3, 3], [42, 43, 44, 45, 46, 3]],
    )
    batch = make_batch(
        [Pair(str(i), 0, "", "", "", p, c, r) for i, (p, c, r) in enumerate(zip(prompts, chosen, rejected))], pad_id=0
    )
    model, params = policy.train_member(0), policy.member_parameters(0)
    shapes = []
    hook = model.get_base_model().register_forward_hook(
        lambda module, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )

    def run(fn):
        for p in params:
            p.grad = None
        logp = fn(model, batch.input_ids, batch.attention_mask, batch.response_mask)
        (logp * torch.arange(1.0, 7.0)).sum().backward()
        return logp.detach(), [p.grad.clone() for p in params]

    shared, shared_grads = run(pair_sequence_logprobs)
    assert shapes == [(3, 8), (6, 6)]
    full, full_grads = run(model_sequence_logprobs)
    assert shapes[-1] == (6, 14)
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).logits  # right-padded: positions as is
    assert torch.allclose(shared.double(), direct(logits, batch.input_ids, batch.response_mask).double(), atol=1e-4)
    assert torch.allclose(shared, full, atol=1e-4)
    for a, b in zip(shared_grads, full_grads):
        assert torch.allclose(a, b, atol=1e-5 * max(1.0, b.abs().max().item()))
    # not pairs: row 3 + 0 (pair 0's rejected row) starts with another prompt token
    other = batch.input_ids.clone()
    other[3, 1] = 8
    assert shared_prompt_layout(other, batch.attention_mask, batch.response_mask) is None
    with torch.no_grad():
        fallback = pair_sequence_logprobs(model, other, batch.attention_mask, batch.response_mask)
    assert shapes[3:] == [(6, 14), (6, 14)]  # the direct logits above, then the fallback: one full pass
    assert torch.allclose(fallback, model_sequence_logprobs(model, other, batch.attention_mask, batch.response_mask))
    hook.remove()


def test_pairs_share_their_prompt_only_where_the_full_pass_computes_the_same(tmp_path, tiny_model_dir):
    """A dropout anywhere in a training pass (LoRA's, or the base model's own: GPT-2's configs set 0.1)
    would give a shared prompt one set of draws where the full pass gives each row its own; gradient
    checkpointing keeps no cache. Only the tiny Llama without dropout shares."""
    from conftest import make_policy, tiny_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    from bpo.loop.config import LoraSpec
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.policy import EnsemblePolicy

    assert make_policy(tiny_model_dir, ensemble=1).shares_prompts
    tok = tiny_tokenizer()
    for pdrop, shares in ((0.1, False), (0.0, True)):
        gpt2 = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tok),
                n_embd=16,
                n_layer=1,
                n_head=2,
                resid_pdrop=pdrop,
                embd_pdrop=pdrop,
                attn_pdrop=pdrop,
            )
        )
        assert (
            EnsemblePolicy(gpt2, tok, LoraSpec(rank=2, ensemble=1, target_modules=("c_attn",))).shares_prompts is shares
        )
    with_lora_dropout = EnsemblePolicy(
        load_causal_lm(tiny_model_dir), load_tokenizer(tiny_model_dir), LoraSpec(rank=2, ensemble=1, dropout=0.1)
    )
    assert not with_lora_dropout.shares_prompts
    checkpointed = make_policy(tiny_model_dir, ensemble=1)
    checkpointed.checkpoint_activations()
    assert not checkpointed.shares_prompts
