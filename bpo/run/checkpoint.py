"""Checkpoints of a run, written atomically and readable without pickle.

A checkpoint is a folder run/checkpoints/step-000012/ holding
    members.safetensors     every ensemble member's LoRA factors
    optimizer.safetensors   every member's AdamW tensors (exp_avg, exp_avg_sq, step)
    reference.safetensors   a moving reference's weight deltas (ema / sync), {layer path: (out, in)}, if any
    rng.safetensors         torch's random states (LoRA dropout): the CPU's, and the CUDA device's on a GPU
    state.json              the step reached, optimiser hyper-parameters and
                            scheduler states, the reference's update history, and the run's
                            settings that a resume must not change (bpo.run.rundir.resume_settings) with their hash
    COMPLETE                the marker, with the SHA-256 of every other file: written last, before the
                            folder is renamed into place

It is built in a temporary folder, every file fsync'd, then renamed: a crash leaves either the old
set of checkpoints or the new one, never a half folder under a final name. Folders without the
marker (or temporary ones) are ignored with a warning. A complete checkpoint whose files no longer
match their hashes, or cannot be read, is skipped with a warning in favour of the previous one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bpo.common.configlib import option
from bpo.common.files import TMP_PREFIX, atomic_folder
from bpo.model.policy import AdapterStates


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = option(0, help="also checkpoint every this many steps (0: only at phase boundaries)")

    def validate(self):
        if self.every < 0:
            raise ValueError("every must be >= 0")


MARKER = "COMPLETE"
SETTINGS_FILE = (
    "settings.json"  # the run folder's record of its settings (bpo.run.rundir.RunDir.settings), beside checkpoints/
)
KEEP = 2  # complete checkpoints kept; older ones are deleted once a newer one is in place


@dataclass
class Checkpoint:
    step: int  # global steps completed
    members: AdapterStates
    optimizer: dict  # EnsembleOptimizer.state_dict()
    reference: dict  # ReferenceStrategy.state_dict()
    rng: dict[str, torch.Tensor] | torch.Tensor  # bpo.model.device.rng_states() (a lone tensor: the CPU state)
    settings: dict | None = (
        None  # {"hash", "settings"}: what a resume must not change (default: the run's settings.json)
    )


def _flatten_states(states: AdapterStates) -> dict[str, torch.Tensor]:
    return {f"{i}|{k}": v.contiguous() for i, s in enumerate(states) for k, v in s.items()}


def _unflatten_states(flat: dict[str, torch.Tensor]) -> AdapterStates:
    states: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        i, name = key.split("|", 1)
        states.setdefault(int(i), {})[name] = value
    return [states[i] for i in sorted(states)]


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors into a flat dict (for safetensors), the rest (plain numbers) into JSON."""
    tensors, plain = {}, {"param_groups": [], "schedulers": state["schedulers"], "keys": []}
    for i, opt in enumerate(state["optimizers"]):
        plain["param_groups"].append(opt["param_groups"])
        keys = []
        for index, per_param in opt["state"].items():
            for name, value in per_param.items():
                tensors[f"{i}|{index}|{name}"] = torch.as_tensor(value).contiguous()
                keys.append([index, name])
        plain["keys"].append(keys)
    return tensors, plain


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    optimizers = []
    for i, groups in enumerate(plain["param_groups"]):
        state: dict[int, dict] = {}
        for index, name in plain["keys"][i]:
            state.setdefault(int(index), {})[name] = tensors[f"{i}|{index}|{name}"]
        optimizers.append({"state": state, "param_groups": groups})
    return {"optimizers": optimizers, "schedulers": plain["schedulers"]}


def save_checkpoint(root: Path, ckpt: Checkpoint) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{ckpt.step:06d}"
    with atomic_folder(final, fsync=True) as tmp:  # built in .tmp-step-NNNNNN, every file fsync'd, then renamed
        opt_tensors, opt_plain = _split_optimizer(ckpt.optimizer)
        reference = dict(ckpt.reference)
        ref_deltas = reference.pop("deltas", None)  # tensors to safetensors, the rest (updated_at) to JSON
        save_file(_flatten_states(ckpt.members), str(tmp / "members.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        rng = ckpt.rng if isinstance(ckpt.rng, dict) else {"torch_cpu": ckpt.rng}
        save_file({k: v.cpu().contiguous() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
        if ref_deltas is not None:
            save_file({k: v.contiguous() for k, v in ref_deltas.items()}, str(tmp / "reference.safetensors"))
        settings = ckpt.settings if ckpt.settings is not None else _run_settings(root)
        state = {"step": ckpt.step, "optimizer": opt_plain, "reference": reference, "settings": settings}
        (tmp / "state.json").write_text(json.dumps(state))
        hashes = {f.name: _sha256(f) for f in sorted(tmp.iterdir())}
        (tmp / MARKER).write_text(json.dumps({"sha256": hashes}) + "\n")
    for old in complete_checkpoints(root)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _run_settings(root: Path) -> dict | None:
    """The run folder's settings.json (beside checkpoints/), recorded in each checkpoint."""
    try:
        return json.loads((root.parent / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None


def complete_checkpoints(root: Path, warn: bool = True) -> list[Path]:
    """Complete checkpoint folders, oldest first; warns about partial ones."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(TMP_PREFIX) or not (folder / MARKER).is_file():
            if warn:
                warnings.warn(
                    f"ignoring partial checkpoint {folder} (no {MARKER} marker: the run stopped while writing it)"
                )
            continue
        found.append(folder)
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CorruptCheckpoint(ValueError):
    pass


def _verify(folder: Path) -> None:
    """Every file listed in the marker exists with its recorded hash (a marker of an older version: "ok")."""
    text = (folder / MARKER).read_text()
    if text.strip() == "ok":
        return
    try:
        hashes = json.loads(text)["sha256"]
    except (ValueError, KeyError, TypeError):
        raise CorruptCheckpoint(f"unreadable {MARKER} marker") from None
    for name, digest in hashes.items():
        if not (folder / name).is_file():
            raise CorruptCheckpoint(f"{name} is missing")
        if _sha256(folder / name) != digest:
            raise CorruptCheckpoint(f"{name} does not match its recorded hash")


def read_settings(root: Path) -> dict | None:
    """The settings record of the latest intact checkpoint (None if none, or none recorded)."""
    for folder in reversed(complete_checkpoints(root, warn=False)):
        try:
            _verify(folder)
            return json.loads((folder / "state.json").read_text()).get("settings")
        except (CorruptCheckpoint, OSError, ValueError, AttributeError):
            continue  # corrupt: load_latest will say so and fall back
    return None


def load_latest(root: Path) -> Checkpoint | None:
    """The newest complete checkpoint that reads back intact; a corrupt one is skipped with a warning."""
    folders = complete_checkpoints(root)
    for i in range(len(folders) - 1, -1, -1):
        try:
            _verify(folders[i])
            return _load(folders[i])
        except (CorruptCheckpoint, OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
            fallback = folders[i - 1].name if i else "step 0 (training restarts on the stored pairs)"
            warnings.warn(f"checkpoint {folders[i]} is corrupt ({err}); falling back to {fallback}")
    return None


def _rng(states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "torch_cpu" not in states:
        raise KeyError("rng.safetensors holds no CPU random state")
    return states


def _load(folder: Path) -> Checkpoint:
    state = json.loads((folder / "state.json").read_text())
    reference = state["reference"]
    if (folder / "reference.safetensors").is_file():
        tensors = load_file(str(folder / "reference.safetensors"))
        if tensors and all("|" in k for k in tensors):  # written before the deltas: a member snapshot
            reference["states"] = _unflatten_states(tensors)
        else:
            reference["deltas"] = tensors
    return Checkpoint(
        step=state["step"],
        members=_unflatten_states(load_file(str(folder / "members.safetensors"))),
        optimizer=_join_optimizer(load_file(str(folder / "optimizer.safetensors")), state["optimizer"]),
        reference=reference,
        rng=_rng(load_file(str(folder / "rng.safetensors"))),
        settings=state.get("settings"),
    )
