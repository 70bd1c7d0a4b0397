"""The plots of `bpo reproduce` (matplotlib, Agg backend: no display needed). Each takes numbers already
computed (bpo.experiments.stats, the runs' own files) and writes one PNG; none computes a statistic."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

Interval = tuple[float, float, float]  # (value, low, high)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def interval_rows(rows: Mapping[str, Mapping[str, Interval]], path: Path, title: str, xlabel: str) -> Path:
    """One panel per statistic, one row per method: the value with its interval as an error bar
    (Figure 3: median, IQM and mean with stratified bootstrap intervals)."""
    plt = pyplot()
    names = list(rows)
    stats = list(next(iter(rows.values())))
    fig, axes = plt.subplots(
        1, len(stats), figsize=(3.7 * len(stats), 0.5 * len(names) + 1.8), sharey=True, squeeze=False
    )
    for ax, stat in zip(axes[0], stats):
        for y, name in enumerate(names):
            value, low, high = rows[name][stat]
            ax.errorbar([value], [y], xerr=[[value - low], [high - value]], fmt="o", capsize=5)
        ax.set_yticks(range(len(names)), names)
        ax.set_title(stat)
        ax.set_xlabel(xlabel)
    fig.suptitle(title)
    return _save(fig, path)


def frequency(
    fs: Sequence[int],
    means: Sequence[float],
    stds: Sequence[float],
    lines: Mapping[str, float],
    path: Path,
    title: str,
    ylabel: str,
) -> Path:
    """Figure 4: BPO's win rate (mean +- std over seeds) against the annotation frequency F, baselines as lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(fs, means, yerr=stds, fmt="o-", capsize=4, label="BPO (DPO)")
    for (name, value), style in zip(lines.items(), ("--", ":", "-.")):
        ax.axhline(value, ls=style, color="k", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("annotation phases F (same budget N)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def bars(values: Mapping[str, Interval], path: Path, title: str, ylabel: str) -> Path:
    """One bar per policy with its interval (Figure 5)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(values) + 2, 4))
    names = list(values)
    mids = [values[n][0] for n in names]
    errors = [[values[n][0] - values[n][1] for n in names], [values[n][2] - values[n][0] for n in names]]
    ax.bar(range(len(names)), mids, yerr=errors, capsize=6, color="#2a7ab9")
    ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def win_tie_lose(rows: Mapping[str, tuple[float, float, float]], path: Path, title: str) -> Path:
    """Stacked horizontal bars of win / tie / lose rates, one per pairing (Table 2, the IOPO section)."""
    plt = pyplot()
    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.6))
    left = [0.0] * len(names)
    for k, (label, color) in enumerate((("win", "#2a9d4b"), ("tie", "#bbbbbb"), ("lose", "#c0392b"))):
        widths = [rows[n][k] for n in names]
        ax.barh(range(len(names)), widths, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlabel("share of held-out prompts (the judge compares the two policies' responses)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


Curve = tuple[Sequence[float], Sequence[float]]  # (x, y)


def curves(panels: Mapping[str, Mapping[str, Curve]], path: Path, title: str, xlabel: str = "training step") -> Path:
    """Training curves: one panel per quantity (win rate, reward margin, KL), one line per run group."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (quantity, lines) in zip(axes[0], panels.items()):
        for name, (x, y) in lines.items():
            if len(x):
                ax.plot(x, y, marker="o", ms=3, label=name)
        ax.set_xlabel(xlabel)
        ax.set_title(quantity, fontsize=10)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
