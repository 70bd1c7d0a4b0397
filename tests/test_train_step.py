"""The learning-rate schedule and one optimiser step, against numbers worked out by hand.

`train_step` is checked against a loss, a gradient and an AdamW update computed here independently:
teacher-forced log-probs from log_softmax of the model's logits, one unpadded row at a time; the DPO
and IPO formulas written out again; autograd for the gradient.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_policy

from bpo.core.losses import bind_loss, get_loss
from bpo.data.records import Pair, make_batch
from bpo.training.sft import sft_lr_factor
from bpo.training.train_step import EnsembleOptimizer, OptimSpec, lr_factor, train_step

# ---- lr_factor -------------------------------------------------------------------------------------


def test_warmup_is_linear_up_to_one():
    """total 10, warmup 2: step 0 -> (0 + 1) / 2 = 0.5, step 1 -> (1 + 1) / 2 = 1.0, whatever the decay."""
    for kind in ("constant", "linear", "cosine"):
        assert [lr_factor(s, 10, 2, kind) for s in (0, 1)] == [0.5, 1.0]


def test_constant_after_warmup():
    """constant: 1 at every step after the warm-up, the first (2) and the last (9) included."""
    assert [lr_factor(s, 10, 2, "constant") for s in (2, 5, 9, 10)] == [1.0, 1.0, 1.0, 1.0]


def test_linear_decay_with_warmup():
    """total 10, warmup 2: progress p = (step - 2) / 8, factor 1 - p.
    step 2: p = 0 -> 1; step 6: p = 4/8 -> 0.5; step 10: p = 1 -> 0; step 12: p clamped at 1 -> 0 (not -0.25)."""
    assert [lr_factor(s, 10, 2, "linear") for s in (2, 6, 10, 12)] == [1.0, 0.5, 0.0, 0.0]


def test_cosine_decay_with_warmup():
    """total 10, warmup 2: p = (step - 2) / 8, factor (1 + cos(pi p)) / 2.
    step 2: p = 0 -> 1; step 4: p = 1/4 -> (1 + sqrt(2)/2) / 2 = 0.8535534; step 6 (the midpoint of the
    decay): p = 1/2 -> (1 + 0) / 2 = 0.5; step 10: p = 1 -> (1 - 1) / 2 = 0; step 12: p clamped at 1 -> 0
    (unclamped, cos(1.25 pi) would give 0.146 and the rate would rise again)."""
    got = [lr_factor(s, 10, 2, "cosine") for s in (2, 4, 6, 10, 12)]
    assert got == pytest.approx([1.0, 0.8535534, 0.5, 0.0, 0.0], abs=1e-7)


def test_decay_without_warmup():
    """total 4, warmup 0: p = step / 4, so step 0 -> 1 for every kind (no zero first step);
    linear: step 1 -> 0.75, step 2 -> 0.5; cosine: step 2 -> 0.5, step 3 -> (1 + cos(3 pi / 4)) / 2 = 0.1464466."""
    assert [lr_factor(0, 4, 0, k) for k in ("constant", "linear", "cosine")] == [1.0, 1.0, 1.0]
    assert [lr_factor(s, 4, 0, "linear") for s in (1, 2)] == [0.75, 0.5]
    assert [lr_factor(s, 4, 0, "cosine") for s in (2, 3)] == pytest.approx([0.5, 0.1464466], abs=1e-7)


def test_unknown_kind_is_refused_even_during_warmup():
    with pytest.raises(ValueError, match="unknown scheduler 'step'"):
        lr_factor(0, 10, 2, "step")


def test_sft_schedule_is_lr_factor_with_a_tenth_of_the_steps_as_warmup():
    """SFT, 20 steps: warm-up max(1, int(0.1 * 20)) = 2 steps: 0.5, 1.0; then cosine with
    p = (step - 2) / 18: step 11 -> p = 1/2 -> 0.5, step 20 -> 0. Constant: 1 after the warm-up.
    5 steps: warm-up max(1, int(0.5)) = 1 step: step 0 -> 1/1 = 1; cosine step 3 -> p = 2/4 -> 0.5."""
    cosine, constant = sft_lr_factor("cosine", 20), sft_lr_factor("constant", 20)
    assert [cosine(s) for s in (0, 1, 11, 20)] == pytest.approx([0.5, 1.0, 0.5, 0.0], abs=1e-12)
    assert [constant(s) for s in (0, 1, 2, 19)] == [0.5, 1.0, 1.0, 1.0]
    assert [sft_lr_factor("cosine", 5)(s) for s in (0, 3)] == pytest.approx([1.0, 0.5], abs=1e-12)
    with pytest.raises(ValueError):
        sft_lr_factor("linear", 20)


# ---- train_step against a hand-computed loss and AdamW update -------------------------------------

BETA = 0.5
LR, MAX_GRAD_NORM, EPS = 1e-3, 0.25, 1e-8
TOTAL, WARMUP = 10, 2  # first step's factor (0 + 1) / 2 = 0.5 (cosine)
LR_FIRST = LR * 0.5

# Two pairs with responses of different lengths (chosen 2 and 4 tokens, rejected 1 and 4), so that a
# per-token mean differs from a sum.
PAIRS = [
    Pair("p0", 0, "", "", "", prompt_ids=[2, 10, 11], chosen_ids=[20, 21], rejected_ids=[30]),
    Pair("p1", 0, "", "", "", prompt_ids=[2, 12], chosen_ids=[22, 23, 24, 25], rejected_ids=[31, 32, 33, 34]),
]


def own_logprobs(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chosen sums, rejected sums, chosen lengths, rejected lengths), each (B,), with autograd:
    one unpadded forward per row; the token at t is predicted by the logits at t - 1."""

    def one(prompt: list[int], response: list[int]) -> torch.Tensor:
        ids = torch.tensor([prompt + response])
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
        logp = F.log_softmax(logits[:-1], dim=-1).gather(-1, ids[0, 1:, None])[:, 0]  # (L - 1,)
        return logp[len(prompt) - 1 :].sum()

    chosen = torch.stack([one(p.prompt_ids, p.chosen_ids) for p in PAIRS])
    rejected = torch.stack([one(p.prompt_ids, p.rejected_ids) for p in PAIRS])

    def lengths(key):
        return torch.tensor([float(len(getattr(p, key))) for p in PAIRS])

    return chosen, rejected, lengths("chosen_ids"), lengths("rejected_ids")


def fresh_policy(tiny_model_dir):
    """One member, perturb = 0: LoRA B = 0, so the policy is the base model (and dL/dA = 0)."""
    policy = make_policy(tiny_model_dir, ensemble=1, rank=4, perturb=0.0)
    assert all(p.abs().max() == 0 for p in policy.member_parameters(0)[1::2])  # the B factors
    return policy


def shifted_references(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Stored reference sums (2B,): chosen rows policy + 1, rejected rows policy - 1."""
    return torch.cat([chosen.detach() + 1.0, rejected.detach() - 1.0])


def own_loss(name: str, chosen, rejected, len_w, len_l, ref: torch.Tensor) -> torch.Tensor:
    """The batch-mean loss written out again: DPO on sums, IPO on per-token means."""
    ref_w, ref_l = ref[: len(PAIRS)], ref[len(PAIRS) :]
    if name == "dpo":
        h = (chosen - ref_w) - (rejected - ref_l)
        return -F.logsigmoid(BETA * h).mean()
    h = (chosen / len_w - ref_w / len_w) - (rejected / len_l - ref_l / len_l)
    return ((h - 1.0 / (2.0 * BETA)) ** 2).mean()


def step_against_hand(tiny_model_dir, name: str, weight_decay: float = 0.0):
    """Run train_step once and return (metrics, own loss, own grads, params before, params after)."""
    policy = fresh_policy(tiny_model_dir)
    params = policy.member_parameters(0)
    model = policy.train_member(0)
    chosen, rejected, len_w, len_l = own_logprobs(model)
    ref = shifted_references(chosen, rejected)
    loss = own_loss(name, chosen, rejected, len_w, len_l, ref)
    grads = torch.autograd.grad(loss, params)
    before = [p.detach().clone() for p in params]

    spec = OptimSpec(
        lr=LR, weight_decay=weight_decay, warmup_steps=WARMUP, scheduler="cosine", max_grad_norm=MAX_GRAD_NORM
    )
    optim = EnsembleOptimizer(policy, spec, TOTAL)
    metrics = train_step(policy, optim, make_batch(PAIRS, pad_id=0), ref, bind_loss(name, BETA))
    after = [p.detach().clone() for p in params]
    return metrics, loss.item(), grads, before, after


def check_first_adamw_step(metrics, grads, before, after, weight_decay):
    """AdamW's first step, m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected m_hat = g, v_hat = g^2:
        p <- p (1 - lr wd) - lr g / (|g| + eps)
    with g the clipped gradient c g, c = max_norm / (||g|| + 1e-6) when ||g|| > max_norm, and lr the
    scheduled rate lr * 0.5. c > 0, so clipping never changes a sign: where |c g| >> eps the move is
    exactly -lr sign(g), wherever the gradient came from.
    B = 0 makes dL/dA = scaling * B^T (dL/dy) x^T = 0: A moves only by the decay -lr wd A."""
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    assert metrics.grad_norm == pytest.approx(norm, rel=1e-3)  # train_step reports the norm before clipping
    assert norm > 2 * MAX_GRAD_NORM  # so clipping is active in this test (it scales g by c < 1/2)
    assert metrics.lr == pytest.approx(LR_FIRST)
    clip = MAX_GRAD_NORM / (norm + 1e-6)
    moved = 0
    for k, (g, p0, p1) in enumerate(zip(grads, before, after)):
        step = p1 - p0
        if k % 2 == 0:  # A: zero gradient, only the decoupled weight decay
            assert g.abs().max() == 0
            assert torch.allclose(step, -LR_FIRST * weight_decay * p0, rtol=0, atol=1e-7)
            if weight_decay == 0:
                assert torch.equal(p1, p0)
            continue
        gc = clip * g
        assert torch.allclose(step, -LR_FIRST * gc / (gc.abs() + EPS), rtol=0, atol=LR_FIRST * 1e-2)
        big = gc.abs() > 1e3 * EPS  # there eps changes the move by less than 0.1%
        assert torch.allclose(step[big], -LR_FIRST * torch.sign(g[big]), rtol=1e-3, atol=0)
        moved += int(big.sum())
    assert moved > 0.9 * sum(g.numel() for g in grads[1::2])  # nearly every entry of B is tested


@pytest.mark.parametrize("weight_decay", [0.0, 1.0])
def test_dpo_step_by_hand(tiny_model_dir, weight_decay):
    """References = policy + 1 (chosen), policy - 1 (rejected): h = (pi_w - ref_w) - (pi_l - ref_l)
    = (-1) - (+1) = -2 for every pair, whatever the lengths (DPO sums log-probs). With beta = 0.5:
        loss = -log sigmoid(beta h) = -log sigmoid(-1) = log(1 + e) = 1.3132617
        reward_margin = beta h = -1,  reward_accuracy = fraction of h > 0 = 0.
    A wrong sign (-log sigmoid(+1) = 0.3133), beta outside the sigmoid (-0.5 log sigmoid(-2) = 1.0635)
    or a sum over the batch (2.6265) all miss 1.3133."""
    metrics, loss, grads, before, after = step_against_hand(tiny_model_dir, "dpo", weight_decay)
    assert loss == pytest.approx(math.log(1 + math.e), abs=1e-5)  # our own formula agrees with the hand value
    assert metrics.loss == pytest.approx(1.3132617, abs=1e-4)
    assert metrics.reward_margin == pytest.approx(-1.0, abs=1e-4)
    assert metrics.reward_accuracy == 0.0
    check_first_adamw_step(metrics, grads, before, after, weight_decay)


def test_ipo_step_uses_per_token_means(tiny_model_dir):
    """IPO reduces log-probs to per-token means, so the same +-1 shift of the sums becomes -1/|y_w| and
    +1/|y_l|: h = -1/|y_w| - 1/|y_l|.
        pair 0 (|y_w| = 2, |y_l| = 1): h = -1/2 - 1 = -1.5
        pair 1 (|y_w| = 4, |y_l| = 4): h = -1/4 - 1/4 = -0.5
    beta = 0.5, target 1/(2 beta) = 1: (h - 1)^2 = 6.25 and 2.25, batch mean 4.25;
    reward_margin = beta * mean(h) = 0.5 * (-1) = -0.5; reward_accuracy 0.
    Sums instead of means would give h = -2, loss 9, margin -1; a target of 1/beta = 2 gives 9.25."""
    metrics, loss, grads, before, after = step_against_hand(tiny_model_dir, "ipo")
    assert get_loss("ipo").reduction == "mean"
    assert loss == pytest.approx(4.25, abs=1e-4)
    assert metrics.loss == pytest.approx(4.25, abs=1e-4)
    assert metrics.reward_margin == pytest.approx(-0.5, abs=1e-4)
    assert metrics.reward_accuracy == 0.0
    check_first_adamw_step(metrics, grads, before, after, 0.0)


def test_gradient_checkpointing_recomputes_every_layer_and_steps_the_same(tiny_model_dir):
    """policy.gradient_checkpointing as open_session enables it: in a training pass the attention (with its
    LoRA factors) of each of the tiny model's 2 decoder layers runs twice over the pairs' full rows (the
    forward, then again inside the backward pass), against once without (with dropout, rows are never
    split into a shared prompt and the responses: see EnsemblePolicy.shares_prompts);
    the step's loss and updated adapters (2 members, dropout 0.1, so the replayed random numbers matter too)
    equal the step without checkpointing to float rounding."""
    from bpo.loop.config import LoraSpec
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.policy import EnsemblePolicy

    results = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        policy = EnsemblePolicy(
            load_causal_lm(tiny_model_dir),
            load_tokenizer(tiny_model_dir),
            LoraSpec(rank=4, ensemble=2, dropout=0.1),
            seed=0,
        )
        if checkpointing:
            policy.checkpoint_activations()
        layers = policy.model.get_base_model().model.layers
        calls = []
        for layer in layers:  # (transformers checkpoints a layer's forward: what runs inside it runs again)
            layer.self_attn.register_forward_hook(
                lambda module, args, kwargs, out: calls.append((args[0] if args else kwargs["hidden_states"]).shape[1]),
                with_kwargs=True,
            )
        optim = EnsembleOptimizer(policy, OptimSpec(lr=1e-2), 4)
        batch = make_batch(PAIRS, pad_id=0)
        ref = torch.zeros(2 * len(PAIRS))
        torch.manual_seed(1)
        metrics = train_step(policy, optim, batch, ref, bind_loss("dpo", BETA))
        results[checkpointing] = (
            calls,
            metrics.loss,
            [p.detach().clone() for i in range(2) for p in policy.member_parameters(i)],
        )
    (plain_calls, plain_loss, plain), (ckpt_calls, ckpt_loss, ckpt) = results[False], results[True]
    row = batch.input_ids.shape[1]
    assert len(layers) == 2 and plain_calls == [row] * 2 * 2 and ckpt_calls == [row] * 4 * 2  # 2 members, each one pass
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, ckpt))
