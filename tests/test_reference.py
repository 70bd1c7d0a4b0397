"""Each reference strategy changes exactly when it should, and to what it should.

Expected log-probs are computed here independently of bpo's scoring code (`teacher_forced_logp`: one
unpadded sequence at a time, log_softmax, index the response tokens), and expected moving-reference
weights from the members' LoRA factors by hand (mean_i s_i B_i A_i, s_i = alpha / r)."""

import pytest
import torch
from conftest import make_policy

from bpo.core.schedule import resolve_schedule
from bpo.data.records import Pair, make_batch
from bpo.model.loading import load_causal_lm
from bpo.model.policy import MERGED
from bpo.training.reference import (
    BehaviorReference,
    EMAReference,
    FixedReference,
    ReferenceConfig,
    SFTReference,
    SyncReference,
)


def fake_training(policy, strategy, schedule):
    """Drive the hooks like the online loop does, moving the members by a fixed amount each step."""
    for phase in schedule.iter_phases():
        strategy.on_phase_start(policy, phase.first_step)
        for step in range(phase.first_step, phase.first_step + phase.steps):
            with torch.no_grad():
                for i in range(len(policy.members)):
                    for p in policy.member_parameters(i):
                        p.add_(0.01)
            policy.refresh_merged()
            strategy.on_step_end(policy, step)


def move_members(policy, generator, size=0.3):
    """One fake optimiser step: every member's factors move by their own random amount."""
    with torch.no_grad():
        for i in range(len(policy.members)):
            for p in policy.member_parameters(i):
                p.add_(size * torch.randn(p.shape, generator=generator))
    policy.refresh_merged()


def hand_policy_delta(policy, path):
    """The merged policy's weight update of one layer, from the members' factors: mean_i s_i B_i A_i."""
    m = dict(policy._layers)[path]
    s = policy.spec.alpha / policy.spec.rank
    return sum(s * m.lora_B[n].weight.detach() @ m.lora_A[n].weight.detach() for n in policy.members) / len(
        policy.members
    )


def model_with_deltas(folder, deltas):
    """A plain copy of the base model (loaded afresh) whose adapted weights have `deltas` added."""
    model = load_causal_lm(folder).eval()
    modules = dict(model.named_modules())
    with torch.no_grad():
        for path, delta in deltas.items():
            modules[path.removeprefix("base_model.model.")].weight += delta
    return model


@torch.no_grad()
def teacher_forced_logp(model, prompt_ids, response_ids):
    """sum_t log p(response_t | prompt, response_<t), one unpadded sequence, no bpo helper."""
    ids = torch.tensor([list(prompt_ids) + list(response_ids)])
    logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # (L, V): row t predicts token t+1
    start = len(prompt_ids)
    return sum(logp[start + j - 1, tok].item() for j, tok in enumerate(response_ids))


def pair_logps(model, pairs):
    """(2B,) like a PairBatch: chosen rows, then rejected rows."""
    rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    return torch.tensor([teacher_forced_logp(model, x, y) for x, y in rows])


SCHEDULE = resolve_schedule(steps=8, phases=4, batch_size=2)


def sample_pairs(n=3):
    return [
        Pair(
            id=f"x{i}",
            phase=0,
            prompt="p",
            chosen="a",
            rejected="b",
            prompt_ids=[2, 5 + i, 6],
            chosen_ids=[10 + i, 11, 3],
            rejected_ids=[20, 21 + i, 22, 3],
            behavior_chosen_logp=-1.0 - i,
            behavior_rejected_logp=-2.0 - i,
        )
        for i in range(n)
    ]


def test_behavior_updates_at_each_phase_start_sft_never(tiny_model_dir):
    behavior, sft = BehaviorReference(), SFTReference()
    for strategy in (behavior, sft):
        fake_training(make_policy(tiny_model_dir, ensemble=2), strategy, SCHEDULE)
    assert behavior.updated_at == [0, 2, 4, 6]
    assert sft.updated_at == []


def test_sync_every_three_steps_and_ema_every_step(tiny_model_dir):
    sync, ema, frozen = SyncReference(every=3), EMAReference(tau=0.25), EMAReference(tau=0.0)
    for strategy in (sync, ema, frozen):
        fake_training(make_policy(tiny_model_dir, ensemble=2), strategy, SCHEDULE)
    assert sync.updated_at == [0, 3, 6]  # the initial policy, then after steps 2 and 5
    assert ema.updated_at == list(range(9))
    assert frozen.updated_at == [0]  # tau = 0: never moves after the start


def test_ema_is_the_average_of_the_weight_deltas(tiny_model_dir):
    """delta_ref_t = tau * delta_theta_t + (1 - tau) * delta_ref_{t-1}, delta_ref_0 = 0, for every layer, with
    delta_theta_t = mean_i s_i B_i A_i of the members after step t; its log-probs are those of the base model
    with delta_ref added to the weights. Averaging the factors instead gives a different reference."""
    tau, n_steps = 0.3, 3
    policy = make_policy(tiny_model_dir, ensemble=3)
    ema = EMAReference(tau=tau)
    ema.on_phase_start(policy, 0)
    g = torch.Generator().manual_seed(11)
    paths = [path for path, _ in policy._layers]
    expected = {path: torch.zeros_like(hand_policy_delta(policy, path)) for path in paths}
    factor_avg = None  # what the old code did: the EMA of each member's A and B, then the merge
    for step in range(n_steps):
        move_members(policy, g)
        ema.on_step_end(policy, step)
        for path in paths:
            expected[path] = tau * hand_policy_delta(policy, path) + (1 - tau) * expected[path]
        states = policy.member_states()
        factor_avg = (
            states
            if factor_avg is None
            else [{k: tau * new[k] + (1 - tau) * old[k] for k in new} for new, old in zip(states, factor_avg)]
        )
    got = ema.state_dict()["deltas"]
    assert set(got) == set(paths)
    for path in paths:
        assert torch.allclose(got[path], expected[path], atol=1e-6), path
    # The test can tell the two apart: the merge of the averaged factors is far from the averaged deltas.
    path, s, n = paths[0], policy.spec.alpha / policy.spec.rank, len(policy.members)
    old_delta = sum(s * st[f"{path}.B"] @ st[f"{path}.A"] for st in factor_avg) / n
    assert (old_delta - expected[path]).abs().max() > 1e-2

    pairs = sample_pairs()
    hand = model_with_deltas(tiny_model_dir, expected)
    want = pair_logps(hand, pairs)
    assert torch.allclose(ema.batch_logprobs(policy, make_batch(pairs, pad_id=0)), want, atol=1e-5)
    with policy.use(MERGED) as merged:  # and the reference is not simply the current policy
        assert not torch.allclose(pair_logps(merged, pairs), want, atol=1e-2)


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_ema_extremes_tau_0_is_sft_tau_1_is_the_policy(tiny_model_dir, tau):
    policy = make_policy(tiny_model_dir, ensemble=2)
    ema = EMAReference(tau=tau)
    ema.on_phase_start(policy, 0)
    g = torch.Generator().manual_seed(3)
    for step in range(4):
        move_members(policy, g)
        ema.on_step_end(policy, step)
    pairs = sample_pairs()
    got = ema.batch_logprobs(policy, make_batch(pairs, pad_id=0))
    sft = pair_logps(load_causal_lm(tiny_model_dir).eval(), pairs)
    with policy.use(MERGED) as merged:
        current = pair_logps(merged, pairs)
    assert not torch.allclose(sft, current, atol=1e-2)  # the members did move away from the SFT policy
    assert torch.allclose(got, sft if tau == 0 else current, atol=1e-5)


def test_ema_tau_must_be_in_the_unit_interval():
    ReferenceConfig(kind="ema", ema_tau=0.0).validate()
    ReferenceConfig(kind="ema", ema_tau=1.0).validate()
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"ema_tau must be in \[0, 1\]"):
            ReferenceConfig(kind="ema", ema_tau=bad).validate()


def test_ema_state_round_trips_through_a_checkpoint(tiny_model_dir, tmp_path):
    from bpo.run.checkpoint import Checkpoint, load_latest, save_checkpoint
    from bpo.training.train_step import EnsembleOptimizer, OptimSpec

    policy = make_policy(tiny_model_dir, ensemble=2)
    ema = EMAReference(tau=0.4)
    ema.on_phase_start(policy, 0)
    g = torch.Generator().manual_seed(5)
    for step in range(2):
        move_members(policy, g)
        ema.on_step_end(policy, step)
    optim = EnsembleOptimizer(policy, OptimSpec(), 10)
    save_checkpoint(
        tmp_path / "ckpt",
        Checkpoint(2, policy.member_states(), optim.state_dict(), ema.state_dict(), torch.get_rng_state()),
    )
    assert (tmp_path / "ckpt" / "step-000002" / "reference.safetensors").is_file()

    restored = EMAReference(tau=0.4)
    restored.load_state_dict(make_policy(tiny_model_dir, ensemble=2), load_latest(tmp_path / "ckpt").reference)
    assert restored.updated_at == ema.updated_at == [0, 1, 2]
    assert set(restored.deltas) == set(ema.deltas)
    assert all(torch.equal(restored.deltas[k], ema.deltas[k]) for k in ema.deltas)
    # Both go on identically (the restored deltas are its own tensors, not shared with the original).
    move_members(policy, g)
    for strategy in (ema, restored):
        strategy.on_step_end(policy, 2)
    assert all(torch.equal(restored.deltas[k], ema.deltas[k]) for k in ema.deltas)
    batch = make_batch(sample_pairs(), pad_id=0)
    assert torch.equal(restored.batch_logprobs(policy, batch), ema.batch_logprobs(policy, batch))


def test_moving_reference_loads_a_member_snapshot_of_older_checkpoints(tiny_model_dir):
    """Checkpoints written before the deltas stored a member snapshot; its reference was the snapshot's merge."""
    policy = make_policy(tiny_model_dir, ensemble=2)
    snapshot = policy.member_states()
    expected = {path: hand_policy_delta(policy, path) for path, _ in policy._layers}
    move_members(policy, torch.Generator().manual_seed(1))
    sync = SyncReference(every=2)
    sync.load_state_dict(policy, {"updated_at": [0, 2], "states": snapshot})
    assert all(torch.allclose(sync.deltas[k], expected[k], atol=1e-6) for k in expected)
    with pytest.raises(ValueError, match="shape"):
        sync.load_state_dict(policy, {"updated_at": [], "deltas": {k: v[:1] for k, v in expected.items()}})


def test_stored_references_write_log_probs_once(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=2)
    pairs = sample_pairs()
    BehaviorReference().label_pairs(policy, pairs)
    assert [p.ref_chosen_logp for p in pairs] == [-1.0, -2.0, -3.0]  # the sampler's numbers, no forward pass
    SFTReference().label_pairs(policy, pairs)
    expected = pair_logps(load_causal_lm(tiny_model_dir).eval(), pairs)  # the SFT model: the base, no adapters
    assert torch.allclose(
        torch.tensor([p.ref_chosen_logp for p in pairs] + [p.ref_rejected_logp for p in pairs]), expected, atol=1e-5
    )
    batch = make_batch(pairs, pad_id=0)
    assert torch.allclose(SFTReference().batch_logprobs(policy, batch), expected, atol=1e-5)


def test_fixed_reference_scores_with_its_own_model(tiny_model_dir, tmp_path):
    from conftest import save_tiny_llama

    other = load_causal_lm(save_tiny_llama(tmp_path / "gold", seed=7))
    policy = make_policy(tiny_model_dir, ensemble=2)
    pairs = sample_pairs()
    fixed = FixedReference(other)
    fake_training(policy, fixed, SCHEDULE)
    fixed.label_pairs(policy, pairs)
    expected = pair_logps(other, pairs)
    got = torch.tensor([p.ref_chosen_logp for p in pairs] + [p.ref_rejected_logp for p in pairs])
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(
        got, pair_logps(load_causal_lm(tiny_model_dir).eval(), pairs), atol=1e-2
    )  # not the policy's base
    assert fixed.updated_at == []


def test_sync_reference_scores_with_the_policy_of_the_last_sync(tiny_model_dir):
    """sync (every 2 steps) after steps 0, 1, 2: its log-probs are the merged policy's as it was after
    step 1, neither the current policy's nor the initial one's; its deltas are that policy's update."""
    policy = make_policy(tiny_model_dir, ensemble=2)
    sync = SyncReference(every=2)
    sync.on_phase_start(policy, 0)
    pairs = sample_pairs()
    batch = make_batch(pairs, pad_id=0)
    g = torch.Generator().manual_seed(2)
    for step in range(3):
        move_members(policy, g)
        sync.on_step_end(policy, step)
        if step == 1:
            with policy.use(MERGED) as merged:
                at_sync = pair_logps(merged, pairs)
            deltas_at_sync = {path: hand_policy_delta(policy, path) for path, _ in policy._layers}
    assert sync.updated_at == [0, 2]
    assert all(torch.allclose(sync.deltas[k], deltas_at_sync[k], atol=1e-6) for k in deltas_at_sync)
    got = sync.batch_logprobs(policy, batch)
    assert torch.allclose(got, at_sync, atol=1e-5)
    with policy.use(MERGED) as merged:
        assert not torch.allclose(got, pair_logps(merged, pairs), atol=1e-2)
    assert not torch.allclose(got, pair_logps(load_causal_lm(tiny_model_dir).eval(), pairs), atol=1e-2)
