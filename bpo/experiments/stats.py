"""Statistics for comparing methods over seeds, tasks and prompts, as pure functions on arrays.

Following Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice"), which the BPO
paper's Figure 3 uses:
    iqm                  interquartile mean: the mean of the middle half of the values
    stratified_bootstrap an interval for a statistic of pooled runs, resampling runs with
                         replacement *within* each stratum (a task x loss cell), so every stratum
                         keeps its size and no stratum can vanish from a resample
    paired_difference    an interval for mean(a - b) when a and b were measured on the same units
                         (the same seeds and prompts): resampling the differences keeps the pairing,
                         which removes the variation the two share (prompt difficulty, seed luck)
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], float]


def iqm(values: Sequence[float]) -> float:
    """Mean of the values left after cutting floor(n / 4) from each end of the sorted values.

    (scipy.stats.trim_mean(values, 0.25) computes the same.) n = 8: cut 2 each side, mean of 4.
    """
    v = np.sort(np.asarray(values, dtype=float))
    if v.size == 0:
        raise ValueError("iqm of no values")
    cut = int(0.25 * v.size)
    return float(v[cut : v.size - cut].mean())


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def median(values: Sequence[float]) -> float:
    return float(np.median(values))


AGGREGATES: dict[str, Statistic] = {"median": median, "iqm": iqm, "mean": mean}


def stratified_bootstrap(
    strata: Mapping[object, Sequence[float]],
    statistic: Statistic = mean,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic of the pooled values, low, high): a percentile interval from resampling each stratum's
    values with replacement, independently, and pooling them again."""
    groups = [np.asarray(v, dtype=float) for v in strata.values()]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every stratum needs at least one value")
    rng = np.random.default_rng(seed)
    point = statistic(np.concatenate(groups))
    draws = np.empty(resamples)
    for i in range(resamples):
        draws[i] = statistic(np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups]))
    alpha = (1.0 - level) / 2.0
    return point, float(np.quantile(draws, alpha)), float(np.quantile(draws, 1.0 - alpha))


def paired_difference(
    a: Mapping[object, Sequence[float]],
    b: Mapping[object, Sequence[float]],
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of a - b over paired units with its interval: a[k][i] and b[k][i] are the same unit (e.g. seed
    k, prompt i). Differences are resampled within each key (stratified by seed)."""
    if a.keys() != b.keys():
        raise ValueError(f"paired samples need the same keys; got {sorted(a)} and {sorted(b)}")
    diffs = {}
    for key in a:
        x, y = np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"{key}: {x.size} values against {y.size}; a paired difference needs the same units")
        diffs[key] = x - y
    return stratified_bootstrap(diffs, mean, resamples, level, seed)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value), the paper's "mean ± std"."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
