"""The policy: a base causal LM with an ensemble of n LoRA adapters and their merge.

As in the BPO reference implementation, every adapter of the ensemble has its own optimiser and is
trained on the same pairs (`lora.training`: also on disjoint shares of each batch, or jointly through
their mean: bpo.training.train_step); sampling, evaluation and export use the merged adapter (see bpo.core.merge).

One base model is shared by every adapter slot, so snapshots are adapter weights only:
    a0 .. a{n-1}   the trained ensemble members
    merged         the merge of the members (the policy pi_theta used to sample and evaluate)
    (none)         adapters disabled: the initial (SFT) policy
Several ensembles can share the one base model (IOPO's two players): each names its adapters with
its own prefix ("" for the policy, "nu_" for IOPO's adversary: nu_a0 .., nu_merged); a slot passed to
`use` or `merged_delta` is this ensemble's (MERGED means its own merge), and `use(None)` is the base.
A model that is the initial policy plus arbitrary dense weight updates (the `ema` and `sync`
references of bpo.training.reference) runs through `use_deltas`, which replaces each adapted layer's weight W
by W + delta for one forward pass (torch.func.functional_call) without writing to the base weights.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor

from bpo.common.configlib import option
from bpo.common.seeds import ADAPTER_INIT, derive_seed
from bpo.core.merge import MERGES, MergeMode, exact_merge_factors, merged_rank
from bpo.model.device import forked_rng, model_device, rng_states

TRAININGS = ("independent", "disjoint", "joint")  # LoraSpec.training (bpo.training.train_step runs them)


@dataclass(frozen=True)
class LoraSpec:
    rank: int = option(8, help="LoRA rank r of each ensemble member")
    alpha: float = option(16.0, help="LoRA alpha; a member's update is (alpha / r) * B @ A")
    dropout: float = option(0.0, help="LoRA dropout during training")
    target_modules: tuple[str, ...] = option(
        ("q_proj", "k_proj", "v_proj", "o_proj"), help="names of the linear layers that get adapters"
    )
    ensemble: int = option(5, help="number n of LoRA adapters trained side by side (the paper uses 5)")
    merge: MergeMode = option(
        "exact",
        help="exact: mean of the members' weight deltas; linear: peft's `linear` combination, as the paper's code did "
        "(not the mean of the deltas)",
    )
    training: str = option(
        "independent",
        choices=TRAININGS,
        help="independent: every member trains on the whole batch with its own AdamW (the paper's; n passes per step); "
        "disjoint: member i trains only on pairs i, i+n, i+2n.. of each batch (B a multiple of n; about one adapter's "
        "cost); "
        "joint: one pass whose update is the mean of the members (the merged policy), gradients to every member "
        "through it "
        "(needs merge=exact and dropout=0)",
    )

    def validate(self):
        for key, value in (("rank", self.rank), ("ensemble", self.ensemble)):
            if value <= 0:
                raise ValueError(f"{key} must be positive, got {value}")
        if not 0 < self.alpha < float("inf"):
            raise ValueError(f"alpha must be positive and finite, got {self.alpha}")
        if not self.target_modules or not all(isinstance(m, str) and m.strip() for m in self.target_modules):
            raise ValueError("target_modules must name at least one linear layer (e.g. q_proj)")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.training == "joint" and self.merge != "exact":
            raise ValueError(
                "training=joint trains the mean of the members, which only merge=exact samples from; got "
                f"merge={self.merge}"
            )
        if self.training == "joint" and self.dropout:
            raise ValueError(
                "training=joint runs the merged adapter's forward, which has no dropout; set dropout=0 (got "
                f"{self.dropout})"
            )


# A snapshot of the ensemble: for each member, {"<module>.A": (r, in), "<module>.B": (out, r)}.
AdapterStates = list[dict[str, Tensor]]
# Dense weight updates: {"<module>": (out, in) float32 on the model's device}, one per adapted layer.
WeightDeltas = dict[str, Tensor]

MERGED = "merged"


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
    def __init__(self, base_model, tokenizer, spec: LoraSpec, seed: int = 0, prefix: str = ""):
        """`base_model`: a transformers model, or the peft model of another EnsemblePolicy, whose base this
        ensemble then shares (its adapters are added beside the other's, named with `prefix`)."""
        from peft import PeftModel, get_peft_model

        self.spec = spec
        self.tokenizer = tokenizer
        self.members = [prefix + member_name(i) for i in range(spec.ensemble)]
        self.checkpointing = False  # checkpoint_activations() turns it on
        self.merged = prefix + MERGED  # this ensemble's merge slot
        # Each member starts from its own seed (bpo.common.seeds.ADAPTER_INIT): A random (B = 0, so the initial
        # policy is the base). Drawn in a forked RNG: the caller's random streams are left as they were.
        device = model_device(base_model)
        with forked_rng(device):
            torch.manual_seed(derive_seed(seed, 0, weights=ADAPTER_INIT))
            if isinstance(base_model, PeftModel):
                self.model = base_model
                self.model.add_adapter(self.members[0], peft_config(spec))
            else:
                with (
                    warnings.catch_warnings()
                ):  # peft reads transformers' deprecated is_gradient_checkpointing (a FutureWarning on every run)
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                    self.model = get_peft_model(base_model, peft_config(spec), adapter_name=self.members[0])
            for i, name in enumerate(self.members[1:], start=1):
                torch.manual_seed(derive_seed(seed, i, weights=ADAPTER_INIT))
                self.model.add_adapter(name, peft_config(spec))
            rank = merged_rank(spec.merge, [spec.rank] * spec.ensemble)
            # scaling 1: the merge functions fold the members' scalings into B
            self.model.add_adapter(self.merged, peft_config(spec, rank=rank, alpha=rank, dropout=0.0))
            # The random state the seeded initialisation ends in (CPU, and the CUDA device's): where a run's
            # training stream (LoRA dropout) starts, set by the session (set_rng_states), not left behind here.
            self.training_rng = rng_states(device)
        self._layers = [
            (name, m) for name, m in self.model.named_modules() if hasattr(m, "lora_A") and self.members[0] in m.lora_A
        ]
        self._by_path = dict(self._layers)
        names = {id(p): n for n, p in self.model.named_parameters()}
        self._base_weight_names = {
            path: names[id(m.get_base_layer().weight)] for path, m in self._layers
        }  # for use_deltas
        self._merged_factor_names = {
            path: (names[id(m.lora_A[self.merged].weight)], names[id(m.lora_B[self.merged].weight)])
            for path, m in self._layers
        }  # for train_joint
        self.refresh_merged()

    # ---- parameters and states -------------------------------------------------------------------
    def member_parameters(self, i: int) -> list[torch.nn.Parameter]:
        name = self.members[i]
        return [p for _, m in self._layers for p in (m.lora_A[name].weight, m.lora_B[name].weight)]

    def member_states(self) -> AdapterStates:
        """A detached copy of every member's factors: the cheap snapshot of the policy."""
        return [
            {
                f"{path}.{k}": getattr(m, f"lora_{k}")[name].weight.detach().clone()
                for path, m in self._layers
                for k in "AB"
            }
            for name in self.members
        ]

    def load_member_states(self, states: AdapterStates) -> None:
        with torch.no_grad():
            for name, state in zip(self.members, states):
                for path, m in self._layers:
                    m.lora_A[name].weight.copy_(state[f"{path}.A"])
                    m.lora_B[name].weight.copy_(state[f"{path}.B"])
        self.refresh_merged()

    def _merge(self, m, path: str, states: AdapterStates) -> tuple[Tensor, Tensor]:
        """Factors (A, B), scaling 1, of the merge of a snapshot's adapters of one layer."""
        scalings = [m.scaling[name] for name in self.members]
        return MERGES[self.spec.merge]([s[f"{path}.A"] for s in states], [s[f"{path}.B"] for s in states], scalings)

    def checkpoint_activations(self) -> None:
        """policy.gradient_checkpointing: each layer's activations are recomputed in the backward pass instead
        of kept. Non-reentrant: LoRA's inputs need no gradient, and dropout's random numbers are replayed."""
        self.checkpointing = True
        base = self.model.get_base_model()
        enable = getattr(base, "activation_checkpointing_enable", None)  # transformers 5's name
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    @property
    def shares_prompts(self) -> bool:
        """Whether a training pass runs each pair's prompt once for both responses
        (bpo.model.logprobs.pair_sequence_logprobs).
        Not under gradient checkpointing (a checkpointed model keeps no key/value cache), nor with any dropout
        in training mode (LoRA's, or the base model's own, as GPT-2's configs set): there the chosen and rejected
        rows would share the prompt's dropout draws, where the full pass gives each row its own; without
        dropout the two passes are the same computation."""
        return not self.checkpointing and not self._drops_out

    @property
    def _drops_out(self) -> bool:
        """Whether a training pass drops anything out: a Dropout module with p > 0, or an attention dropout rate."""
        config = self.model.get_base_model().config
        return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in self.model.modules()) or any(
            getattr(config, name, 0) or 0 for name in ("attention_dropout", "attn_pdrop")
        )

    def refresh_merged(self) -> None:
        """Write the merge of the current members into the `merged` slot (after each optimiser step)."""
        states = self.member_states()
        with torch.no_grad():
            for path, m in self._layers:
                A, B = self._merge(m, path, states)
                m.lora_A[self.merged].weight.copy_(A)
                m.lora_B[self.merged].weight.copy_(B)

    # ---- dense weight deltas (WeightDeltas, keyed by the adapted layers' module paths) -------------
    @torch.no_grad()
    def merged_delta(self, module_path: str, slot: str = MERGED) -> Tensor:
        """The weight update the slot adds to one wrapped linear layer, (out, in), computed in float32."""
        m, slot = self._by_path[module_path], self._slot(slot)
        return m.scaling[slot] * (m.lora_B[slot].weight.float() @ m.lora_A[slot].weight.float())

    @torch.no_grad()
    def merged_deltas(self, states: AdapterStates | None = None) -> WeightDeltas:
        """Every layer's update of the merged policy, or of the merge of a member snapshot, float32."""
        if states is None:
            return {path: self.merged_delta(path) for path, _ in self._layers}
        states = [{k: v.to(self.device, torch.float32) for k, v in s.items()} for s in states]
        deltas = {}
        for path, m in self._layers:
            A, B = self._merge(m, path, states)
            deltas[path] = B @ A
        return deltas

    def zero_deltas(self) -> WeightDeltas:
        """A zero update for every adapted layer: `use_deltas` of it is the initial policy."""
        return {
            path: torch.zeros(self._delta_shape(m), dtype=torch.float32, device=self.device) for path, m in self._layers
        }

    def as_deltas(self, deltas: dict[str, Tensor]) -> WeightDeltas:
        """A float32 copy on the model's device, once checked to hold exactly one (out, in) update per adapted layer."""
        wanted = {path: self._delta_shape(m) for path, m in self._layers}
        if set(deltas) != set(wanted):
            missing, extra = sorted(set(wanted) - set(deltas)), sorted(set(deltas) - set(wanted))
            raise ValueError(
                f"weight deltas do not match the policy's adapted layers (missing {missing[:3]}, unexpected "
                f"{extra[:3]})"
            )
        for path, shape in wanted.items():
            if tuple(deltas[path].shape) != shape:
                raise ValueError(
                    f"weight delta of {path} has shape {tuple(deltas[path].shape)}, the layer needs {shape}"
                )
        return {path: deltas[path].to(self.device, torch.float32, copy=True) for path in wanted}

    @staticmethod
    def _delta_shape(m) -> tuple[int, int]:
        out_in = tuple(m.get_base_layer().weight.shape)
        return out_in[::-1] if getattr(m, "fan_in_fan_out", False) else out_in  # Conv1D stores (in, out)

    @property
    def device(self) -> torch.device:
        """Where the model (and so every batch it is given) lives."""
        return next(self.model.parameters()).device

    # ---- which adapter the forward pass uses ------------------------------------------------------
    def _slot(self, slot: str) -> str:
        """The peft adapter name of a slot: MERGED is this ensemble's merge, a member name is itself."""
        return self.merged if slot == MERGED else slot

    def train_member(self, i: int):
        """Make member i the active (trainable) adapter, in train mode (LoRA dropout on)."""
        self.model.set_adapter(self.members[i])
        self.model.train()
        return self.model

    def train_joint(self) -> torch.nn.Module:
        """The merged policy as a function of the live members, in train mode: the `merged` slot's forward with its
        factors replaced by the exact merge of the members' current factors (torch.func.functional_call), so

            y = W x + (1/n) sum_i s_i B_i A_i x,   dL/dB_i = (s_i/n) G A_i^T,   dL/dA_i = (s_i/n) B_i^T G

        with G = dL/d(delta W) of the layer: one pass whose gradient reaches every member (lora.training=joint).
        All n adapters are computed together as one adapter of rank n r (the concatenated factors). It is the
        very computation sampling runs after `refresh_merged` (the same merge of the same values), so the merged
        policy is exactly the function trained. Needs merge=exact (LoraSpec.validate)."""
        self.model.set_adapter(self.merged, inference_mode=True)  # the slot's own copies stay frozen
        self.model.set_requires_grad(self.members, True)
        self.model.train()
        return _JointForward(self)

    def _joint_factors(self) -> dict[str, Tensor]:
        """{parameter name of the merged slot's A and B: the exact merge of the live members}, differentiable."""
        factors = {}
        for path, m in self._layers:
            A, B = exact_merge_factors(
                [m.lora_A[n].weight for n in self.members],
                [m.lora_B[n].weight for n in self.members],
                [m.scaling[n] for n in self.members],
            )
            name_A, name_B = self._merged_factor_names[path]
            factors[name_A], factors[name_B] = A, B
        return factors

    @contextlib.contextmanager
    def use(self, slot: str | None) -> Iterator[torch.nn.Module]:
        """Run the model as `merged` (or a member), or the initial policy (slot None), in eval mode."""
        was_training = self.model.training
        previous = self.model.active_adapter
        self.model.eval()
        try:
            if slot is None:
                with self.model.disable_adapter():
                    yield self.model
            else:
                self.model.set_adapter(self._slot(slot), inference_mode=True)
                yield self.model
        finally:
            self.model.set_adapter(previous, inference_mode=previous.endswith(MERGED))
            self.model.train(was_training)

    @contextlib.contextmanager
    def use_deltas(self, deltas: WeightDeltas) -> Iterator[torch.nn.Module]:
        """Run the initial policy with every adapted layer's weight W replaced by W + deltas[layer], in eval mode.

        Adapters are disabled and the replaced weights are passed to torch.func.functional_call, so the
        base weights are never written (nothing can drift). W + delta is computed in float32 and cast to
        W's dtype; the replaced weights exist only during the forward pass.
        """
        if set(deltas) != set(self._by_path):
            raise ValueError("use_deltas needs one weight delta per adapted layer (see as_deltas)")
        with self.use(None) as model:
            weights = {}
            for path, m in self._layers:
                W, d = m.get_base_layer().weight, deltas[path].to(self.device)
                weights[self._base_weight_names[path]] = (
                    W.float() + (d.T if getattr(m, "fan_in_fan_out", False) else d)
                ).to(W.dtype)
            yield _WithWeights(model, weights)

    # ---- persistence (peft format) -----------------------------------------------------------------
    def save(self, folder: Path, members: bool = True) -> None:
        """Save the merged adapter to folder/merged and (optionally) each member to folder/a<i>, in peft format."""
        names = [self.merged] + (self.members if members else [])
        self.model.save_pretrained(str(folder), selected_adapters=names)  # peft: one sub-folder per adapter

    def export_merged(self, folder: Path) -> None:
        """Write base + merged update as a plain transformers model folder (safetensors) with its tokenizer.

        Consumes the policy: peft folds the `merged` slot into the base weights and removes the adapters.
        """
        model = self.model.merge_and_unload(adapter_names=[self.merged])
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


class _WithWeights(torch.nn.Module):
    """A model called with some of its parameters replaced (torch.func.functional_call)."""

    def __init__(self, model: torch.nn.Module, weights: dict[str, Tensor]):
        super().__init__()
        self.model, self.weights = model, weights

    def forward(self, *args, **kwargs):
        return torch.func.functional_call(self.model, self.weights, args, kwargs)


class _JointForward(torch.nn.Module):
    """The policy's model run with its merged slot's factors computed from the members at each call (train_joint)."""

    def __init__(self, policy: EnsemblePolicy):
        super().__init__()
        self.model, self._factors = policy.model, policy._joint_factors

    def forward(self, *args, **kwargs):
        return torch.func.functional_call(self.model, self._factors(), args, kwargs)


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
