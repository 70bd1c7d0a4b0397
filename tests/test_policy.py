"""The LoRA ensemble: exact merge = mean of deltas, the merged model equals hand-merged weights,
peft's linear combination as the documented alternative, dense weight deltas (use_deltas), cheap
snapshots, peft-format save/load."""

import pytest
import torch
from conftest import make_policy

from bpo.core.merge import exact_merge_factors, linear_merge_factors
from bpo.model.loading import load_causal_lm
from bpo.model.policy import MERGED


def member_deltas(policy, path):
    m = dict(policy._layers)[path]
    return [m.scaling[n] * m.lora_B[n].weight @ m.lora_A[n].weight for n in policy.members]


def test_exact_merge_factors_are_the_mean_of_deltas():
    g = torch.Generator().manual_seed(0)
    As = [torch.randn(4, 10, generator=g) for _ in range(3)]
    Bs = [torch.randn(7, 4, generator=g) for _ in range(3)]
    s = [2.0, 0.5, 1.0]
    A, B = exact_merge_factors(As, Bs, s)
    mean = sum(si * Bi @ Ai for si, Ai, Bi in zip(s, As, Bs)) / 3
    assert A.shape == (12, 10) and B.shape == (7, 12)
    assert torch.allclose(B @ A, mean, atol=1e-6)


def test_linear_merge_is_not_the_mean_of_deltas():
    """Two rank-1 members, s = 1, w = 1/2: A = sqrt(1/2)(a1 + a2), B = sqrt(1/2)(b1 + b2), so
    B A = (1/2)(b1 + b2)(a1 + a2)^T = 0.5 * ones(2, 2), while the mean of the deltas is diag(1, 1) / 2.
    Two equal members give (sqrt(1/2) * 2)^2 b1 a1 = 2 b1 a1: n times the delta, not the delta."""
    a1, a2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    b1, b2 = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [1.0]])
    A, B = linear_merge_factors([a1, a2], [b1, b2], [1.0, 1.0])
    # mean of deltas = diag(1, 1) / 2; linear = (1/2) * ones(2, 2)
    assert torch.allclose(B @ A, torch.full((2, 2), 0.5))
    A, B = linear_merge_factors([a1, a1], [b1, b1], [1.0, 1.0])
    assert torch.allclose(B @ A, 2 * b1 @ a1)


def test_policy_merged_slot_is_the_mean_of_member_deltas(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=3)
    for path, _ in policy._layers:
        expected = sum(member_deltas(policy, path)) / 3
        assert torch.allclose(policy.merged_delta(path), expected, atol=1e-6)


def test_merged_model_equals_hand_merged_weights(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=3)
    hand = load_causal_lm(tiny_model_dir).eval()
    modules = dict(hand.named_modules())
    with torch.no_grad():
        for path, _ in policy._layers:
            name = path.removeprefix("base_model.model.")
            modules[name].weight += sum(member_deltas(policy, path)) / 3
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10]])
    with torch.no_grad(), policy.use(MERGED) as model:
        merged_logits = model(input_ids=ids).logits
    with torch.no_grad():
        hand_logits = hand(input_ids=ids).logits
    assert torch.allclose(merged_logits, hand_logits, atol=1e-5)


def test_linear_mode_matches_peft_add_weighted_adapter(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=3, merge="linear")
    n = len(policy.members)
    policy.model.add_weighted_adapter(policy.members, [1.0 / n] * n, "peft_linear", combination_type="linear")
    for path, m in policy._layers:
        peft_delta = m.scaling["peft_linear"] * m.lora_B["peft_linear"].weight @ m.lora_A["peft_linear"].weight
        assert torch.allclose(policy.merged_delta(path), peft_delta, atol=1e-6)
        assert not torch.allclose(peft_delta, sum(member_deltas(policy, path)) / n, atol=1e-4)


def test_fresh_policy_equals_base_and_use_deltas_adds_dense_updates(tiny_model_dir):
    """B = 0 at init, so the merged policy is the base; use_deltas(d) is the base with W + d, writing nothing."""
    from bpo.loop.config import LoraSpec
    from bpo.model.loading import load_tokenizer
    from bpo.model.policy import EnsemblePolicy

    policy = EnsemblePolicy(
        load_causal_lm(tiny_model_dir), load_tokenizer(tiny_model_dir), LoraSpec(rank=4, ensemble=2)
    )
    assert "reference" not in policy.model.peft_config  # no second merged slot: moving references hold dense deltas
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad():
        with policy.use(None) as m:
            base = m(input_ids=ids).logits
        with policy.use(MERGED) as m:
            merged = m(input_ids=ids).logits
        with policy.use_deltas(policy.zero_deltas()) as m:
            zero = m(input_ids=ids).logits
    assert torch.equal(base, merged) and torch.allclose(zero, base, atol=1e-6)

    g = torch.Generator().manual_seed(0)
    deltas = {path: 0.2 * torch.randn(policy.merged_delta(path).shape, generator=g) for path, _ in policy._layers}
    hand = load_causal_lm(tiny_model_dir).eval()
    modules = dict(hand.named_modules())
    with torch.no_grad():
        for path, d in deltas.items():
            modules[path.removeprefix("base_model.model.")].weight += d
        hand_logits = hand(input_ids=ids).logits
    weights_before = [m.get_base_layer().weight.clone() for _, m in policy._layers]
    with torch.no_grad(), policy.use_deltas(deltas) as m:
        shifted = m(input_ids=ids).logits
    assert torch.allclose(shifted, hand_logits, atol=1e-5) and not torch.allclose(shifted, base, atol=1e-3)
    assert all(torch.equal(w, m.get_base_layer().weight) for w, (_, m) in zip(weights_before, policy._layers))
    with torch.no_grad(), policy.use(None) as m:
        assert torch.equal(m(input_ids=ids).logits, base)  # the base weights were not touched


def test_use_deltas_of_the_merged_deltas_is_the_merged_policy(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=3)
    ids = torch.tensor([[2, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        with policy.use(MERGED) as m:
            merged = m(input_ids=ids).logits
        with policy.use_deltas(policy.merged_deltas()) as m:
            dense = m(input_ids=ids).logits
        with policy.use_deltas(policy.merged_deltas(policy.member_states())) as m:
            from_snapshot = m(input_ids=ids).logits
    assert torch.allclose(dense, merged, atol=1e-5) and torch.allclose(from_snapshot, merged, atol=1e-5)


def test_as_deltas_checks_layers_and_shapes(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=2)
    good = policy.merged_deltas()
    copy = policy.as_deltas(good)
    assert all(torch.equal(copy[k], good[k]) and copy[k] is not good[k] for k in good)
    first = next(iter(good))
    with pytest.raises(ValueError, match="missing"):
        policy.as_deltas({k: v for k, v in good.items() if k != first})
    with pytest.raises(ValueError, match="shape"):
        policy.as_deltas({**good, first: good[first][:1]})


def test_snapshot_is_adapter_weights_only(tiny_model_dir):
    policy = make_policy(tiny_model_dir, ensemble=2)
    snap_numel = sum(t.numel() for state in policy.member_states() for t in state.values())
    lora_numel = sum(p.numel() for i in range(2) for p in policy.member_parameters(i))
    base_numel = sum(p.numel() for n, p in policy.model.named_parameters() if "lora_" not in n)
    assert snap_numel == lora_numel < base_numel / 5


def test_save_and_load_members_in_peft_format(tiny_model_dir, tmp_path):
    from peft import PeftModel

    policy = make_policy(tiny_model_dir, ensemble=2)
    policy.save(tmp_path)
    assert {"merged", "a0", "a1"} <= {p.name for p in tmp_path.iterdir()}
    fresh = make_policy(tiny_model_dir, ensemble=2, perturb=0.0, seed=5)
    fresh.load_members(tmp_path)
    for a, b in zip(policy.member_states(), fresh.member_states()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # The merged adapter loads with plain peft and gives the merged policy's outputs.
    peft_model = PeftModel.from_pretrained(load_causal_lm(tiny_model_dir), tmp_path / "merged").eval()
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    with torch.no_grad(), policy.use(MERGED) as m:
        assert torch.allclose(peft_model(input_ids=ids).logits, m(input_ids=ids).logits, atol=1e-5)


def old_way_members(folder, spec, seed: int, model=None, prefix: str = ""):
    """The adapters as EnsemblePolicy initialised them before its draws moved into a forked RNG: the global
    seed reset to `seed`, then `seed + i` before member i, then the merged slot (the code as it was)."""
    from peft import get_peft_model

    from bpo.core.merge import merged_rank
    from bpo.model.policy import peft_config

    names = [f"{prefix}a{i}" for i in range(spec.ensemble)]
    torch.manual_seed(seed)
    if model is None:
        model = get_peft_model(load_causal_lm(folder), peft_config(spec), adapter_name=names[0])
    else:
        model.add_adapter(names[0], peft_config(spec))
    for i, name in enumerate(names[1:], start=1):
        torch.manual_seed(seed + i)
        model.add_adapter(name, peft_config(spec))
    rank = merged_rank(spec.merge, [spec.rank] * spec.ensemble)
    model.add_adapter(prefix + MERGED, peft_config(spec, rank=rank, alpha=rank, dropout=0.0))
    layers = [(path, m) for path, m in model.named_modules() if hasattr(m, "lora_A") and names[0] in m.lora_A]
    return model, [
        {f"{path}.{k}": getattr(m, f"lora_{k}")[name].weight.detach().clone() for path, m in layers for k in "AB"}
        for name in names
    ]


def assert_same_states(new, old):
    assert len(new) == len(old)
    for n, o in zip(new, old):
        assert n.keys() == o.keys() and all(torch.equal(n[k], o[k]) for k in n)


@pytest.mark.parametrize("seed", [0, 7])
def test_adapter_factors_and_the_training_stream_start_as_before(tiny_model_dir, seed):
    """The members' initial factors are bit-identical to the old initialisation, for the policy and for a
    second ensemble on its base (IOPO's adversary), and so is the random state a run's training stream
    (LoRA dropout) starts from: the one the seeded initialisation ends in, the same for both ensembles."""
    from bpo.loop.config import LoraSpec
    from bpo.model.loading import load_tokenizer
    from bpo.model.policy import EnsemblePolicy

    spec = LoraSpec(rank=4, alpha=8.0, ensemble=3)
    old_model, old_members = old_way_members(tiny_model_dir, spec, seed)
    old_training_start = torch.get_rng_state()
    _, old_adversary = old_way_members(tiny_model_dir, spec, seed, model=old_model, prefix="nu_")
    assert torch.equal(torch.get_rng_state(), old_training_start)

    torch.manual_seed(12345)
    policy = EnsemblePolicy(load_causal_lm(tiny_model_dir), load_tokenizer(tiny_model_dir), spec, seed=seed)
    adversary = EnsemblePolicy(policy.model, policy.tokenizer, spec, seed=seed, prefix="nu_")
    assert torch.equal(policy.training_rng["torch_cpu"], old_training_start)  # the session sets it (bpo.loop.online)
    assert torch.equal(adversary.training_rng["torch_cpu"], old_training_start)
    assert_same_states(policy.member_states(), old_members)
    assert_same_states(adversary.member_states(), old_adversary)
    first = next(iter(old_members[0]))
    assert not torch.equal(
        policy.member_states()[0][first], policy.member_states()[1][first]
    )  # each member its own seed


def test_building_a_policy_leaves_the_global_rng_alone(tiny_model_dir):
    from bpo.loop.config import LoraSpec
    from bpo.model.loading import load_tokenizer
    from bpo.model.policy import EnsemblePolicy

    torch.manual_seed(12345)
    torch.rand(3)  # somewhere in the caller's stream
    state = torch.get_rng_state()
    EnsemblePolicy(
        load_causal_lm(tiny_model_dir), load_tokenizer(tiny_model_dir), LoraSpec(rank=4, alpha=8.0, ensemble=3), seed=0
    )
    assert torch.equal(torch.get_rng_state(), state)
