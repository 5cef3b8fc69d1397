"""Plots of a run's log: one panel per key against the iteration (matplotlib, no display)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from morel.atomic import atomic_path  # noqa: E402

SCORE_KEYS = ("stoc_pol_mean", "eval_score", "train_score", "running_score")


def plot_log(log: dict[str, Sequence[float]], keys: Sequence[str], path: str | Path,
             title: str = "") -> list[str]:
    """Plot `keys` of `log` (those present with at least one finite value) into one PNG,
    written atomically. Returns the keys plotted."""
    present = [k for k in keys if k in log and any(_finite(v) for v in log[k])]
    if not present:
        return []
    cols = min(len(present), 3)
    rows = math.ceil(len(present) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, present):
        values = [float(v) if _finite(v) else math.nan for v in log[key]]
        ax.plot(range(len(values)), values, lw=1.2)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return present


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
