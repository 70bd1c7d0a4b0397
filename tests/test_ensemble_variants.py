"""`lora.training`: the paper's independent members, members on disjoint shares, a jointly trained ensemble.

Each variant is checked against a computation written here from its definition:
    independent  member i after a step == a lone adapter (member i's factors) stepped on the whole batch
    disjoint     member i after a step == a lone adapter stepped on pairs i, i + n, ... only; the metrics
                 are over the whole batch, each pair under the member that trained on it
    joint        the forward is W x + (1/n) sum_i s_i B_i A_i x (== the merged policy that samples); by the
                 chain rule through delta = (1/n) sum_i s_i B_i A_i, with G = dL/d delta of a layer,
                     dL/dB_i = (s_i / n) G A_i^T,    dL/dA_i = (s_i / n) B_i^T G,
                 and each member then takes its own (clipped) AdamW step on that gradient.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_policy
from ddp_steps import fixed_pairs

from bpo.common.configlib import ConfigError, load_config
from bpo.core.losses import bind_loss, get_loss
from bpo.data.records import make_batch
from bpo.loop.config import RunConfig
from bpo.model.distributed import SINGLE
from bpo.model.loading import load_causal_lm, load_tokenizer
from bpo.model.logprobs import pair_sequence_logprobs
from bpo.model.policy import MERGED, EnsemblePolicy, LoraSpec
from bpo.training.train_step import EnsembleOptimizer, OptimSpec, select_pairs, train_step

BETA, LR, MAX_NORM = 0.5, 1e-2, 0.5
RANK, SCALING = 4, 2.0  # make_policy: alpha = 2 r, so s_i = alpha / r = 2


def variant(policy: EnsemblePolicy, training: str) -> EnsemblePolicy:
    """The same policy trained as `training` (the spec is read by train_step at each step)."""
    from dataclasses import replace

    policy.spec = replace(policy.spec, training=training)
    return policy


def lone_adapter(folder, factors: dict) -> EnsemblePolicy:
    """A one-member policy whose adapter has the given factors (a member of another ensemble, alone)."""
    policy = EnsemblePolicy(
        load_causal_lm(folder), load_tokenizer(folder), LoraSpec(rank=RANK, alpha=2.0 * RANK, ensemble=1)
    )
    policy.load_member_states([factors])
    return policy


def step(policy: EnsemblePolicy, pairs, ref=None, steps: int = 1):
    """`steps` DPO steps on `pairs` (stored references unless `ref` (2B,) is given): the last metrics."""
    batch = make_batch(pairs, pad_id=0)
    optim = EnsembleOptimizer(policy, OptimSpec(lr=LR, max_grad_norm=MAX_NORM), 10)
    for _ in range(steps):
        metrics = train_step(
            policy, optim, batch, batch.stored_ref_logp if ref is None else ref, bind_loss("dpo", BETA)
        )
    return metrics


def logps(model, pairs) -> torch.Tensor:
    """The pairs' log-probs as train_step computes them (each prompt once: AdamW's first step is about
    sign(gradient), so the expected step must come from the same float operations to agree to 1e-6)."""
    batch = make_batch(pairs, pad_id=0)
    return pair_sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask)


def assert_same_factors(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=atol), (k, (a[k] - b[k]).abs().max().item())


# ---- independent (the paper's) ---------------------------------------------------------------------


def test_independent_members_each_step_as_a_lone_adapter_on_the_whole_batch(tiny_model_dir):
    """Two steps of a 2-member ensemble: each member equals its factors trained alone on all 8 pairs."""
    pairs = fixed_pairs()
    policy = make_policy(tiny_model_dir, ensemble=2, rank=RANK)
    start = policy.member_states()
    step(policy, pairs, steps=2)
    for i in range(2):
        alone = lone_adapter(tiny_model_dir, start[i])
        step(alone, pairs, steps=2)
        assert_same_factors(policy.member_states()[i], alone.member_states()[0])
    moved = policy.member_states()
    assert all(max((moved[i][k] - start[i][k]).abs().max().item() for k in start[i]) > 1e-4 for i in range(2))


# ---- disjoint shares ---------------------------------------------------------------------------------


def test_disjoint_member_steps_as_a_lone_adapter_on_its_share_only(tiny_model_dir):
    """n = 2, 8 pairs: member 0 trains on pairs 0, 2, 4, 6 and member 1 on 1, 3, 5, 7; two steps each equal a
    lone adapter's two steps on that share (and differ from a step on the whole batch)."""
    pairs = fixed_pairs()
    policy = variant(make_policy(tiny_model_dir, ensemble=2, rank=RANK), "disjoint")
    start = policy.member_states()
    step(policy, pairs, steps=2)
    for i in range(2):
        alone = lone_adapter(tiny_model_dir, start[i])
        step(alone, pairs[i::2], steps=2)
        assert_same_factors(policy.member_states()[i], alone.member_states()[0])
        whole = lone_adapter(tiny_model_dir, start[i])
        step(whole, pairs, steps=2)
        assert (
            max((policy.member_states()[i][k] - whole.member_states()[0][k]).abs().max().item() for k in start[i])
            > 1e-4
        )


def test_disjoint_metrics_count_each_pair_once_under_its_member(tiny_model_dir):
    """References = member's own log-probs shifted: share 0 (member 0) chosen + 1, rejected - 1, so h = -2;
    share 1 (member 1) chosen - 1, rejected + 1, so h = +2. With beta = 0.5:
        share 0: -log sigmoid(-1) = log(1 + e) = 1.3132617,   share 1: -log sigmoid(1) = log(1 + 1/e) = 0.3132617
        whole batch (equal shares): loss (1.3132617 + 0.3132617) / 2 = 0.8132617,
        margin beta * mean(h) = 0.5 * 0 = 0, accuracy 4 of 8 pairs = 0.5.
    A member's metrics on the whole batch (each pair counted n times) would not give h = +-2."""
    pairs = fixed_pairs()
    policy = variant(make_policy(tiny_model_dir, ensemble=2, rank=RANK), "disjoint")
    ref = torch.zeros(16)
    with torch.no_grad():
        for i, shift in ((0, 1.0), (1, -1.0)):
            w, rejected = logps(policy.train_member(i), pairs[i::2]).split(4)
            ref[i:8:2], ref[8 + i :: 2] = w + shift, rejected - shift
    metrics = step(policy, pairs, ref)
    assert metrics.loss == pytest.approx((math.log(1 + math.e) + math.log(1 + 1 / math.e)) / 2, abs=1e-5)
    assert metrics.loss == pytest.approx(0.8132617, abs=1e-5)
    assert metrics.reward_margin == pytest.approx(0.0, abs=1e-5)
    assert metrics.reward_accuracy == 0.5


def test_select_pairs_takes_both_rows_of_each_pair_cut_to_the_longest(tiny_model_dir):
    pairs = fixed_pairs()
    batch, share = make_batch(pairs, pad_id=0), make_batch(pairs[1::2], pad_id=0)
    got = select_pairs(batch, torch.arange(1, 8, 2))
    assert torch.equal(got.input_ids, share.input_ids) and torch.equal(got.attention_mask, share.attention_mask)
    assert torch.equal(got.response_mask, share.response_mask) and torch.equal(
        got.stored_ref_logp, share.stored_ref_logp
    )
    assert got.pair_ids == ["p1", "p3", "p5", "p7"]


def test_disjoint_refuses_a_batch_that_does_not_split_into_n_shares():
    """B = 8 pairs do not split into 3 equal shares, into 4 they do (one process; over several, see
    tests/test_distributed.py). Checked once, before a run builds anything."""
    from bpo.loop.online import check_batch_shares

    def check(*overrides):
        check_batch_shares(load_config(RunConfig, overrides=["lora.training=disjoint", *overrides]), SINGLE)

    with pytest.raises(ConfigError, match=r"schedule.batch_size=8 must be a multiple of 3") as err:
        check("lora.ensemble=3", "schedule.batch_size=8")
    assert "lora.ensemble=3" in str(err.value)
    check("lora.ensemble=4", "schedule.batch_size=8")  # accepted


# ---- joint: the mean of the members --------------------------------------------------------------------


def hand_deltas(policy: EnsemblePolicy) -> dict[str, torch.Tensor]:
    """delta of every adapted layer = (1/n) sum_i s_i B_i A_i, from the members' factors (s_i = 2)."""
    states, n = policy.member_states(), len(policy.members)
    paths = sorted({k.rsplit(".", 1)[0] for k in states[0]})
    return {p: sum(SCALING * s[f"{p}.B"] @ s[f"{p}.A"] for s in states) / n for p in paths}


def test_joint_forward_is_the_base_plus_the_mean_delta_and_the_merged_policy(tiny_model_dir):
    """On 3 perturbed members: the joint forward == the merged slot that samples (exactly: the same merge of
    the same values) == W + mean delta written out here (float rounding). A sum of the deltas (no 1/n) misses."""
    pairs = fixed_pairs()
    policy = variant(make_policy(tiny_model_dir, ensemble=3, rank=RANK), "joint")
    with torch.no_grad():
        joint = logps(policy.train_joint(), pairs)
        with policy.use(MERGED) as model:
            merged = logps(model, pairs)
        deltas = hand_deltas(policy)
        with policy.use_deltas(deltas) as model:
            by_hand = logps(model, pairs)
        with policy.use_deltas({k: 3 * v for k, v in deltas.items()}) as model:
            summed = logps(model, pairs)
    assert torch.equal(joint, merged)
    assert torch.allclose(joint, by_hand, rtol=0, atol=1e-4)
    assert (joint - summed).abs().max() > 1e-2


def test_joint_gradient_reaches_each_member_through_the_mean(tiny_model_dir):
    """G = dL/d delta from a forward of W + delta (use_deltas, delta a leaf); then for member i
    dL/dB_i = (s_i/n) G A_i^T and dL/dA_i = (s_i/n) B_i^T G, against autograd through train_joint."""
    pairs, n = fixed_pairs(), 3
    policy = variant(make_policy(tiny_model_dir, ensemble=n, rank=RANK), "joint")
    batch = make_batch(pairs, pad_id=0)
    ref = batch.stored_ref_logp

    def dpo_loss(logp):
        return get_loss("dpo").fn(logp[:8], logp[8:], ref[:8], ref[8:], BETA).mean()

    deltas = {k: v.clone().requires_grad_(True) for k, v in hand_deltas(policy).items()}
    with policy.use_deltas(deltas) as model:
        G = dict(zip(deltas, torch.autograd.grad(dpo_loss(logps(model, pairs)), list(deltas.values()))))
    params = [p for i in range(n) for p in policy.member_parameters(i)]
    grads = torch.autograd.grad(dpo_loss(logps(policy.train_joint(), pairs)), params)
    states = policy.member_states()
    k = len(states[0])  # member_parameters and member_states list the same factors in the same order
    got = {(i, name): g for i in range(n) for name, g in zip(states[i], grads[i * k : (i + 1) * k])}
    for i in range(n):
        for path, g in G.items():
            A, B = states[i][f"{path}.A"], states[i][f"{path}.B"]
            assert torch.allclose(got[(i, f"{path}.B")], SCALING / n * g @ A.T, rtol=1e-3, atol=1e-6)
            assert torch.allclose(got[(i, f"{path}.A")], SCALING / n * B.T @ g, rtol=1e-3, atol=1e-6)
    assert max(g.abs().max().item() for g in grads) > 1e-4  # a gradient that is not zero


def test_joint_step_is_each_members_adamw_step_on_its_share_of_the_mean_gradient(tiny_model_dir):
    """One joint step == per member: its gradient through the mean (as above, by autograd on the joint
    forward), clipped to its own norm MAX_NORM, one AdamW step; then the merged slot is that new mean.
    References = the mean policy's log-probs, chosen + 1, rejected - 1: h = -2, loss log(1 + e), margin -1."""
    pairs, n = fixed_pairs(), 3
    policy = variant(make_policy(tiny_model_dir, ensemble=n, rank=RANK), "joint")
    with torch.no_grad():
        w, rejected = logps(policy.train_joint(), pairs).split(8)
    ref = torch.cat([w + 1.0, rejected - 1.0])
    params = [p for i in range(n) for p in policy.member_parameters(i)]
    logp = logps(policy.train_joint(), pairs)
    loss = get_loss("dpo").fn(logp[:8], logp[8:], ref[:8], ref[8:], BETA).mean()
    grads = torch.autograd.grad(loss, params)
    expected, norms, k = [], [], len(params) // n
    for i in range(n):
        copies = [p.detach().clone().requires_grad_(True) for p in params[i * k : (i + 1) * k]]
        for c, g in zip(copies, grads[i * k : (i + 1) * k]):
            c.grad = g.clone()
        norms.append(torch.nn.utils.clip_grad_norm_(copies, MAX_NORM).item())
        torch.optim.AdamW(copies, lr=LR, weight_decay=0.0).step()
        expected += [c.detach() for c in copies]

    metrics = step(policy, pairs, ref)
    assert metrics.loss == pytest.approx(math.log(1 + math.e), abs=1e-5)
    assert metrics.reward_margin == pytest.approx(-1.0, abs=1e-5) and metrics.reward_accuracy == 0.0
    assert metrics.grad_norm == pytest.approx(sum(norms) / n, rel=1e-5)
    for p, e in zip(params, expected):
        assert torch.allclose(p.detach(), e, rtol=0, atol=1e-6)
    with torch.no_grad():  # the policy that samples is the mean of the stepped members
        with policy.use(MERGED) as model:
            merged = logps(model, pairs)
        assert torch.equal(merged, logps(policy.train_joint(), pairs))


def test_joint_needs_the_exact_merge_and_no_dropout():
    with pytest.raises(
        ConfigError, match="training=joint trains the mean of the members, which only merge=exact samples"
    ):
        load_config(RunConfig, overrides=["lora.training=joint", "lora.merge=linear"])
    with pytest.raises(ConfigError, match="set dropout=0"):
        load_config(RunConfig, overrides=["lora.training=joint", "lora.dropout=0.1"])
    with pytest.raises(ConfigError, match="independent, disjoint, joint"):
        load_config(RunConfig, overrides=["lora.training=mean"])
