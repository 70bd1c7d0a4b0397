"""A few training steps of a LoRA ensemble on one fixed batch, by one process or as one of several
(run under torchrun by tests/test_distributed.py: `python ddp_steps.py MODEL_DIR OUT_DIR STEPS [TRAINING]`,
TRAINING a `lora.training` value, independent by default)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

PAIRS = 8


def fixed_pairs():
    """8 pairs of token ids of the tiny vocabulary, of different lengths, with stored reference log-probs."""
    from bpo.data.records import Pair

    g = torch.Generator().manual_seed(3)
    ids = lambda n: torch.randint(4, 60, (n,), generator=g).tolist()  # noqa: E731
    return [
        Pair(
            id=f"p{i}",
            phase=0,
            prompt="",
            chosen="",
            rejected="",
            prompt_ids=[2] + ids(3 + i % 3),
            chosen_ids=ids(2 + i % 4) + [3],
            rejected_ids=ids(5 - i % 3) + [3],
            ref_chosen_logp=-10.0 - i,
            ref_rejected_logp=-12.0 + 0.5 * i,
        )
        for i in range(PAIRS)
    ]


def run_steps(model_dir: Path, steps: int, ranks=None, training: str = "independent") -> tuple[list[float], list[dict]]:
    """The losses of `steps` DPO steps on the fixed batch (this process's share of it) and the members after."""
    from bpo.core.losses import bind_loss
    from bpo.data.records import make_batch
    from bpo.model.distributed import SINGLE
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.policy import EnsemblePolicy, LoraSpec
    from bpo.training.train_step import EnsembleOptimizer, OptimSpec, train_step

    ranks = ranks or SINGLE
    policy = EnsemblePolicy(
        load_causal_lm(model_dir), load_tokenizer(model_dir), LoraSpec(rank=4, ensemble=2, training=training), seed=0
    )
    optim = EnsembleOptimizer(policy, OptimSpec(lr=1e-2, max_grad_norm=0.5), steps)
    batch = make_batch(ranks.share(fixed_pairs()), pad_id=0)
    losses = [
        train_step(policy, optim, batch, batch.stored_ref_logp, bind_loss("dpo", 0.5), ranks=ranks).loss
        for _ in range(steps)
    ]
    return losses, policy.member_states()


if __name__ == "__main__":
    from safetensors.torch import save_file

    from bpo.model.distributed import join

    torch.set_num_threads(1)
    model_dir, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    training = sys.argv[4] if len(sys.argv) > 4 else "independent"
    ranks = join(cpu=True)
    losses, members = run_steps(model_dir, steps, ranks, training)
    save_file(
        {f"{i}|{k}": v.contiguous() for i, m in enumerate(members) for k, v in m.items()},
        str(out / f"members-{ranks.rank}.safetensors"),
    )
    (out / f"losses-{ranks.rank}.json").write_text(json.dumps({"world": ranks.world, "losses": losses}))
