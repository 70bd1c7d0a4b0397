"""Merging an ensemble of LoRA adapters into one low-rank update, as pure functions on factors.

A LoRA adapter i adds  delta_i = s_i * B_i @ A_i  to a weight, with A_i (r_i, in), B_i (out, r_i) and
scaling s_i = alpha_i / r_i. Both merges return factors (A, B) of a single adapter with scaling 1.

`exact`: B @ A = (1/n) sum_i s_i B_i A_i, the mean of the adapters' weight deltas, exactly. It
concatenates the factors (rank sum_i r_i), which is what makes it exact: the mean of n rank-r products
is in general not a rank-r product.

`linear`: the rank-r combination peft's `add_weighted_adapter(..., combination_type="linear")` builds,
which is how the BPO authors' code merged its ensemble:
    A = sum_i sqrt(w_i s_i) A_i,   B = sum_i sqrt(w_i s_i) B_i,   w_i = 1/n
so B @ A = sum_{i,j} sqrt(w_i s_i w_j s_j) B_i A_j. It contains the cross terms B_i A_j (i != j) and is
therefore NOT the mean of the deltas; even n equal adapters give n times their delta, because both
factors are scaled by sum_i sqrt(1/n) = sqrt(n). `linear_merge_factors` reproduces peft's arithmetic
(a test checks it against peft) so runs can compare the two.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

MergeMode = Literal["exact", "linear"]


def exact_merge_factors(As: Sequence[Tensor], Bs: Sequence[Tensor], scalings: Sequence[float]) -> tuple[Tensor, Tensor]:
    """(A, B) with B @ A = mean_i(s_i B_i A_i); rank = sum of the adapters' ranks."""
    n = len(As)
    A = torch.cat(list(As), dim=0)
    B = torch.cat([B_i * (s_i / n) for B_i, s_i in zip(Bs, scalings)], dim=1)
    return A, B


def linear_merge_factors(
    As: Sequence[Tensor], Bs: Sequence[Tensor], scalings: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """peft's `linear` combination with equal weights 1/n; all ranks must be equal."""
    n = len(As)
    if len({A_i.shape for A_i in As}) != 1:
        raise ValueError("the linear merge needs adapters of equal rank; use the exact merge")
    coef = [math.sqrt(s_i / n) for s_i in scalings]
    A = sum(c * A_i for c, A_i in zip(coef, As))
    B = sum(c * B_i for c, B_i in zip(coef, Bs))
    return A, B


MERGES = {"exact": exact_merge_factors, "linear": linear_merge_factors}


def merged_rank(mode: MergeMode, ranks: Sequence[int]) -> int:
    return sum(ranks) if mode == "exact" else ranks[0]
