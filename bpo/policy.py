"""The policy: a base causal LM with an ensemble of n LoRA adapters and merged slots.

As in the BPO reference implementation, every adapter of the ensemble has its own optimiser and is
trained on the same pairs; sampling, evaluation and export use the merged adapter (see bpo.merge).

One base model is shared by every adapter slot, so snapshots are adapter weights only:
    a0 .. a{n-1}   the trained ensemble members
    merged         the merge of the members (the policy pi_theta used to sample and evaluate)
    reference      a merge of some snapshot (EMA, periodic sync, a fixed adapter checkpoint)
    (none)         adapters disabled: the initial (SFT) policy
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor

from bpo.configlib import option
from bpo.merge import MERGES, MergeMode, merged_rank


@dataclass(frozen=True)
class LoraSpec:
    rank: int = option(8, help="LoRA rank r of each ensemble member")
    alpha: float = option(16.0, help="LoRA alpha; a member's update is (alpha / r) * B @ A")
    dropout: float = option(0.0, help="LoRA dropout during training")
    target_modules: tuple[str, ...] = option(("q_proj", "k_proj", "v_proj", "o_proj"), help="names of the linear layers that get adapters")
    ensemble: int = option(5, help="number n of LoRA adapters trained side by side (the paper uses 5)")
    merge: MergeMode = option("exact", help="exact: mean of the members' weight deltas; linear: peft's `linear` combination, as the paper's code did (not the mean of the deltas)")

    def validate(self):
        if self.rank <= 0 or self.ensemble <= 0 or self.alpha <= 0:
            raise ValueError("rank, alpha and ensemble must be positive")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")

# A snapshot of the ensemble: for each member, {"<module>.A": (r, in), "<module>.B": (out, r)}.
AdapterStates = list[dict[str, Tensor]]

MERGED, REFERENCE = "merged", "reference"


def peft_config(spec: LoraSpec, rank: int | None = None, alpha: float | None = None, dropout: float | None = None):
    from peft import LoraConfig

    return LoraConfig(
        r=rank or spec.rank,
        lora_alpha=spec.alpha if alpha is None else alpha,
        lora_dropout=spec.dropout if dropout is None else dropout,
        target_modules=list(spec.target_modules),
        task_type="CAUSAL_LM",
    )


def member_name(i: int) -> str:
    return f"a{i}"


class EnsemblePolicy:
    def __init__(self, base_model, tokenizer, spec: LoraSpec, seed: int = 0):
        from peft import get_peft_model

        self.spec = spec
        self.tokenizer = tokenizer
        self.members = [member_name(i) for i in range(spec.ensemble)]
        # Each member starts from its own seed: A random (B = 0, so the initial policy is the base).
        torch.manual_seed(seed)
        self.model = get_peft_model(base_model, peft_config(spec), adapter_name=self.members[0])
        for i, name in enumerate(self.members[1:], start=1):
            torch.manual_seed(seed + i)
            self.model.add_adapter(name, peft_config(spec))
        rank = merged_rank(spec.merge, [spec.rank] * spec.ensemble)
        for slot in (MERGED, REFERENCE):  # scaling 1: the merge functions fold the scalings into B
            self.model.add_adapter(slot, peft_config(spec, rank=rank, alpha=rank, dropout=0.0))
        self._layers = [(name, m) for name, m in self.model.named_modules() if hasattr(m, "lora_A") and self.members[0] in m.lora_A]
        self.refresh_merged()

    # ---- parameters and states -------------------------------------------------------------------
    def member_parameters(self, i: int) -> list[torch.nn.Parameter]:
        name = self.members[i]
        return [p for _, m in self._layers for p in (m.lora_A[name].weight, m.lora_B[name].weight)]

    def member_states(self) -> AdapterStates:
        """A detached copy of every member's factors: the cheap snapshot of the policy."""
        return [
            {f"{path}.{k}": getattr(m, f"lora_{k}")[name].weight.detach().clone() for path, m in self._layers for k in "AB"}
            for name in self.members
        ]

    def load_member_states(self, states: AdapterStates) -> None:
        with torch.no_grad():
            for name, state in zip(self.members, states):
                for path, m in self._layers:
                    m.lora_A[name].weight.copy_(state[f"{path}.A"])
                    m.lora_B[name].weight.copy_(state[f"{path}.B"])
        self.refresh_merged()

    def _write_merge(self, slot: str, states: AdapterStates) -> None:
        merge = MERGES[self.spec.merge]
        with torch.no_grad():
            for path, m in self._layers:
                scalings = [m.scaling[name] for name in self.members]
                A, B = merge([s[f"{path}.A"] for s in states], [s[f"{path}.B"] for s in states], scalings)
                m.lora_A[slot].weight.copy_(A)
                m.lora_B[slot].weight.copy_(B)

    def refresh_merged(self) -> None:
        """Write the merge of the current members into the `merged` slot (after each optimiser step)."""
        self._write_merge(MERGED, self.member_states())

    def set_reference(self, states: AdapterStates) -> None:
        """Write the merge of a snapshot into the `reference` slot."""
        self._write_merge(REFERENCE, states)

    @torch.no_grad()
    def merged_delta(self, module_path: str, slot: str = MERGED) -> Tensor:
        """The weight update the slot adds to one wrapped linear layer, (out, in)."""
        m = dict(self._layers)[module_path]
        return m.scaling[slot] * m.lora_B[slot].weight @ m.lora_A[slot].weight

    # ---- which adapter the forward pass uses ------------------------------------------------------
    def train_member(self, i: int):
        """Make member i the active (trainable) adapter, in train mode (LoRA dropout on)."""
        self.model.set_adapter(self.members[i])
        self.model.train()
        return self.model

    @contextlib.contextmanager
    def use(self, slot: str | None) -> Iterator[torch.nn.Module]:
        """Run the model as `merged`, `reference`, or the initial policy (slot None), in eval mode."""
        was_training = self.model.training
        previous = self.model.active_adapter
        self.model.eval()
        try:
            if slot is None:
                with self.model.disable_adapter():
                    yield self.model
            else:
                self.model.set_adapter(slot, inference_mode=True)
                yield self.model
        finally:
            self.model.set_adapter(previous, inference_mode=previous in (MERGED, REFERENCE))
            self.model.train(was_training)

    # ---- persistence (peft format) -----------------------------------------------------------------
    def save(self, folder: Path, members: bool = True) -> None:
        """Save the merged adapter to folder/merged and (optionally) each member to folder/a<i>, in peft format."""
        names = [MERGED] + (self.members if members else [])
        self.model.save_pretrained(str(folder), selected_adapters=names)  # peft: one sub-folder per adapter

    def export_merged(self, folder: Path) -> None:
        """Write base + merged update as a plain transformers model folder (safetensors) with its tokenizer.

        Consumes the policy: peft folds the `merged` slot into the base weights and removes the adapters.
        """
        model = self.model.merge_and_unload(adapter_names=[MERGED])
        model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))

    def load_members(self, folder: Path) -> None:
        """Load member adapters saved by `save` (peft format) into this policy."""
        from safetensors.torch import load_file

        states = []
        for name in self.members:
            raw = load_file(str(_adapter_dir(folder, name) / "adapter_model.safetensors"))
            states.append(_peft_to_states(raw, self._layers))
        self.load_member_states(states)


def _adapter_dir(folder: Path, name: str) -> Path:
    sub = Path(folder) / name
    return sub if sub.is_dir() else Path(folder)


def _peft_to_states(raw: dict[str, Tensor], layers: Sequence) -> dict[str, Tensor]:
    """peft saves '<module path>.lora_A.weight' (adapter name removed); map it to '<module path>.A'."""
    state = {}
    for path, _ in layers:
        for k in "AB":
            key = f"{path}.lora_{k}.weight"
            if key not in raw:
                raise ValueError(f"adapter file has no weights for {key}")
            state[f"{path}.{k}"] = raw[key]
    return state
