"""Each reference strategy changes exactly when it should, and to what it should."""

import torch
from conftest import make_policy

from bpo.reference import BehaviorReference, EMAReference, FixedReference, SFTReference, SyncReference
from bpo.schedule import resolve_schedule
from bpo.scoring import response_logprobs
from bpo.types import Pair, make_batch


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


SCHEDULE = resolve_schedule(steps=8, phases=4, batch_size=2)


def test_behavior_updates_at_each_phase_start_sft_never(tiny_model_dir):
    behavior, sft = BehaviorReference(), SFTReference()
    for strategy in (behavior, sft):
        fake_training(make_policy(tiny_model_dir, ensemble=2), strategy, SCHEDULE)
    assert behavior.updated_at == [0, 2, 4, 6]
    assert sft.updated_at == []


def test_sync_every_three_steps_and_ema_every_step(tiny_model_dir):
    sync, ema = SyncReference(every=3), EMAReference(tau=0.25)
    for strategy in (sync, ema):
        fake_training(make_policy(tiny_model_dir, ensemble=2), strategy, SCHEDULE)
    assert sync.updated_at == [0, 3, 6]  # the initial policy, then after steps 2 and 5
    assert ema.updated_at == list(range(9))


def test_ema_blends_member_states(tiny_model_dir):
    """After one step: ref = tau * theta_1 + (1 - tau) * theta_0, member by member."""
    policy = make_policy(tiny_model_dir, ensemble=2)
    ema = EMAReference(tau=0.25)
    ema.on_phase_start(policy, 0)
    theta0 = policy.member_states()
    with torch.no_grad():
        for p in policy.member_parameters(1):
            p.mul_(3.0)
    ema.on_step_end(policy, 0)
    theta1 = policy.member_states()
    for ref, new, old in zip(ema.states, theta1, theta0):
        for k in ref:
            assert torch.allclose(ref[k], 0.25 * new[k] + 0.75 * old[k])


def sample_pairs(n=3):
    return [
        Pair(id=f"x{i}", phase=0, prompt="p", chosen="a", rejected="b", prompt_ids=[2, 5 + i, 6],
             chosen_ids=[10 + i, 11, 3], rejected_ids=[20, 21 + i, 22, 3],
             behavior_chosen_logp=-1.0 - i, behavior_rejected_logp=-2.0 - i)
        for i in range(n)
    ]


def test_stored_references_write_log_probs_once(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=2)
    pairs = sample_pairs()
    BehaviorReference().label_pairs(policy, pairs)
    assert [p.ref_chosen_logp for p in pairs] == [-1.0, -2.0, -3.0]  # the sampler's numbers, no forward pass
    SFTReference().label_pairs(policy, pairs)
    with policy.use(None) as base:
        expected = response_logprobs(base, [p.prompt_ids for p in pairs], [p.chosen_ids for p in pairs], 0)
    assert torch.allclose(torch.tensor([p.ref_chosen_logp for p in pairs]), expected, atol=1e-6)
    batch = make_batch(pairs, pad_id=0)
    assert torch.allclose(SFTReference().batch_logprobs(policy, batch)[:3], expected, atol=1e-6)


def test_fixed_reference_scores_with_its_own_model(tiny_model_dir, tmp_path):
    from conftest import save_tiny_llama

    from bpo.models import load_causal_lm

    other = load_causal_lm(save_tiny_llama(tmp_path / "gold", seed=7))
    policy = make_policy(tiny_model_dir, ensemble=2)
    pairs = sample_pairs()
    fixed = FixedReference(other)
    fake_training(policy, fixed, SCHEDULE)
    fixed.label_pairs(policy, pairs)
    expected = response_logprobs(other, [p.prompt_ids for p in pairs], [p.rejected_ids for p in pairs], 0)
    assert torch.allclose(torch.tensor([p.ref_rejected_logp for p in pairs]), expected, atol=1e-6)
    assert fixed.updated_at == []


def test_moving_reference_scores_batches_with_its_snapshot(tiny_model_dir):
    """sync's batch log-probs equal the merged policy's as it was at the last sync, not the current one."""
    policy = make_policy(tiny_model_dir, ensemble=2)
    sync = SyncReference(every=100)
    sync.on_phase_start(policy, 0)
    pairs = sample_pairs()
    batch = make_batch(pairs, pad_id=0)
    from bpo.policy import MERGED
    with policy.use(MERGED) as m:
        at_sync = response_logprobs(m, [p.prompt_ids for p in pairs] * 2, [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs], 0)
    fake_training(policy, SyncReference(every=100), resolve_schedule(steps=2, phases=1, batch_size=1))
    assert torch.allclose(sync.batch_logprobs(policy, batch), at_sync, atol=1e-5)
    with policy.use(MERGED) as m:
        now = response_logprobs(m, [p.prompt_ids for p in pairs], [p.chosen_ids for p in pairs], 0)
    assert not torch.allclose(now, at_sync[:3], atol=1e-3)
