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
    two_level_bootstrap  an interval for the mean over (seed, prompt) values that resamples the seeds
                         (with replacement) and then the prompts within each chosen seed, so the
                         interval holds the seed-to-seed variance as well as the prompts'
    paired_two_level     the same for mean(a - b) when a and b share seeds and prompts: one resample
                         of seeds and prompts serves both, the statistic is the difference
    stratified_two_level the two levels within strata (task x loss cell): runs resampled within each
                         stratum, prompts within each chosen run, a statistic (IQM...) of the run rates
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
    k, prompt i). Differences are resampled within each key (stratified by seed): the seeds are fixed, so the
    interval leaves out the seed-to-seed variance; paired_two_level resamples the seeds too."""
    return stratified_bootstrap(_differences(a, b), mean, resamples, level, seed)


def mean_std(values: Sequence[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard deviation: the sample std by default (ddof = 1; 0 for a single value), the
    population std with ddof = 0 (numpy's default, the papers' "mean ± std"; see population_std)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=ddof)) if v.size > ddof else 0.0


def population_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof = 0): the form of the papers' "mean ± std"."""
    return mean_std(values, ddof=0)


def _groups(values: Mapping[object, Sequence[float]]) -> list[np.ndarray]:
    groups = [np.asarray(v, dtype=float) for v in values.values()]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every seed needs at least one value")
    return groups


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(the seeds' stream, the prompts' stream). The prompts' stream is default_rng(seed), drawn in the
    order stratified_bootstrap draws it, so with identical seeds the two-level interval equals the
    prompt-only one exactly; the seeds' stream is a separate one."""
    return np.random.default_rng(np.random.SeedSequence([seed, 1])), np.random.default_rng(seed)


def _resample_two_levels(
    groups: Sequence[np.ndarray], seeds_rng: np.random.Generator, prompts_rng: np.random.Generator
) -> list[np.ndarray]:
    """One resample: len(groups) seeds drawn with replacement, then each chosen seed's prompts with
    replacement (as many as it has)."""
    chosen = seeds_rng.integers(0, len(groups), len(groups))
    return [groups[k][prompts_rng.integers(0, groups[k].size, groups[k].size)] for k in chosen]


def two_level_draws(values: Mapping[object, Sequence[float]], resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """The bootstrap distribution of the mean over (seed, prompt) values: values[seed] holds one value per
    prompt; each resample draws the seeds with replacement, then the prompts within each chosen seed, and
    takes the mean of all the drawn values."""
    groups = _groups(values)
    seeds_rng, prompts_rng = _rngs(seed)
    return np.array(
        [np.concatenate(_resample_two_levels(groups, seeds_rng, prompts_rng)).mean() for _ in range(resamples)]
    )


def _percentile(point: float, draws: np.ndarray, level: float) -> tuple[float, float, float]:
    alpha = (1.0 - level) / 2.0
    return float(point), float(np.quantile(draws, alpha)), float(np.quantile(draws, 1.0 - alpha))


def two_level_bootstrap(
    values: Mapping[object, Sequence[float]], resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean over all (seed, prompt) values, low, high): the percentile interval of two_level_draws."""
    point = np.concatenate(_groups(values)).mean()
    return _percentile(point, two_level_draws(values, resamples, seed), level)


def paired_two_level(
    a: Mapping[object, Sequence[float]],
    b: Mapping[object, Sequence[float]],
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """mean(a - b) with its two-level interval, a[k][i] and b[k][i] being the same seed k and prompt i:
    each resample draws the same seeds and prompts for both methods, so the statistic is the mean of the
    drawn differences (the two-level bootstrap of a - b)."""
    return two_level_bootstrap(_differences(a, b), resamples, level, seed)


def _differences(a: Mapping[object, Sequence[float]], b: Mapping[object, Sequence[float]]) -> dict:
    if a.keys() != b.keys():
        raise ValueError(f"paired samples need the same keys; got {sorted(a)} and {sorted(b)}")
    diffs = {}
    for key in a:
        x, y = np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"{key}: {x.size} values against {y.size}; a paired difference needs the same units")
        diffs[key] = x - y
    return diffs


def stratified_two_level(
    strata: Mapping[object, Mapping[object, Sequence[float]]],
    statistic: Statistic = mean,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic of the runs' mean values, low, high): strata[cell][run] holds one run's per-prompt values.
    Each resample draws, within every stratum, its runs with replacement and then each chosen run's prompts,
    takes each drawn run's mean, pools the means of all strata and applies the statistic (IQM, median...)."""
    cells = [_groups(runs) for runs in strata.values()]
    if not cells:
        raise ValueError("no strata")
    seeds_rng, prompts_rng = _rngs(seed)
    point = statistic(np.array([g.mean() for groups in cells for g in groups]))
    draws = np.empty(resamples)
    for i in range(resamples):
        draws[i] = statistic(
            np.array([g.mean() for groups in cells for g in _resample_two_levels(groups, seeds_rng, prompts_rng)])
        )
    return _percentile(point, draws, level)
