"""policy.device: which torch device a name means, bf16 autocast only on CUDA, RNG states through checkpoints."""

from __future__ import annotations

import pytest
import torch

from bpo.common.configlib import ConfigError, load_config
from bpo.model.device import autocast, forked_rng, resolve_device, rng_states, set_rng_states


@pytest.mark.parametrize(
    "name, cuda_count, expected",
    [("auto", 0, "cpu"), ("auto", 2, "cuda:0"), ("cpu", 2, "cpu"), ("cuda", 1, "cuda:0"), ("cuda:1", 2, "cuda:1")],
)
def test_device_names_resolve(name, cuda_count, expected):
    assert resolve_device(name, cuda_count=cuda_count) == torch.device(expected)


@pytest.mark.parametrize(
    "name, cuda_count, message",
    [
        ("cuda", 0, "torch sees no CUDA device"),
        ("cuda:2", 2, "torch sees 2 CUDA device(s)"),
        ("gpu", 1, "auto, cpu, cuda or cuda:N"),
        ("cuda:", 1, "auto, cpu, cuda or cuda:N"),
        ("CPU", 0, "auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_or_missing_devices_are_refused(name, cuda_count, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(name, cuda_count=cuda_count)


def test_config_refuses_a_device_naming_the_key():
    from bpo.loop.config import RunConfig

    assert load_config(RunConfig).policy.torch_device() == resolve_device("auto")  # auto: the CPU here
    with pytest.raises(ConfigError, match="policy: device must be auto, cpu, cuda or cuda:N"):
        load_config(RunConfig, overrides=["policy.device=gpu"])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="policy: device .*no CUDA device"):
            load_config(RunConfig, overrides=["policy.device=cuda"])


def test_cpu_keeps_float32_under_autocast():
    """bf16 autocast is for CUDA only: on the CPU a matmul stays float32 (bf16 is ~150x slower there)."""
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu")):
        assert (a @ a).dtype == torch.float32


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    """The restored state replays the very draws that followed the save; the forked block leaves it untouched."""
    from bpo.run.checkpoint import Checkpoint, load_latest, save_checkpoint

    cpu = torch.device("cpu")
    torch.manual_seed(123)
    torch.rand(5)  # somewhere in the stream, not at a seed
    states = rng_states(cpu)
    assert set(states) == {"torch_cpu"}  # no CUDA state on the CPU
    save_checkpoint(tmp_path, Checkpoint(1, [], {"optimizers": [], "schedulers": []}, {}, states, settings={}))
    expected = torch.rand(7)
    with forked_rng(cpu):
        torch.manual_seed(999)
        torch.rand(3)
    after_fork = torch.rand(2)
    torch.manual_seed(0)  # anywhere else
    restored = load_latest(tmp_path).rng
    set_rng_states(restored, cpu)
    assert torch.equal(torch.rand(7), expected)
    assert torch.equal(torch.rand(2), after_fork)  # the forked seeding did not move the stream
