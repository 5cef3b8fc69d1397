"""Plots of run logs: one panel per key against the iteration (matplotlib, no display).

Several logs (e.g. seeds of one config) are drawn as their mean with a band of +-1 std over the
runs, up to the shortest run's length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from morel.core.atomic import atomic_path, check_writable_path  # noqa: E402
from morel.core.errors import MorelError  # noqa: E402

SCORE_KEYS = ("stoc_pol_mean", "eval_score", "train_score", "running_score")
Log = dict[str, Sequence[float]]


def check_png_output(output: Path, flag: str) -> None:
    """A plot goes to a .png path (given by `flag`) that is free or holds a PNG (a plot of an
    earlier call): any other existing file is never replaced."""
    check_writable_path(output)
    if output.suffix.lower() != ".png":
        raise MorelError(f"{output}: {flag} must be a .png file")
    if output.exists() and (not output.is_file()
                            or output.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n"):
        raise MorelError(f"{output}: exists and is not a PNG image; it is not replaced (choose "
                         f"another {flag})")


def log_values(log: Log, key: str) -> np.ndarray:
    """A log key's values [iterations] as floats, NaN where a value is missing or not finite."""
    return np.array([float(v) if _finite(v) else math.nan for v in log.get(key, [])])


def series_keys(log: Log) -> list[str]:
    """Keys logged at every iteration (as long as the longest list) with a finite value."""
    longest = max((len(v) for v in log.values()), default=0)
    return [k for k, v in log.items() if len(v) == longest > 1 and any(_finite(x) for x in v)]


def plot_logs(logs: Sequence[Log], keys: Sequence[str], path: str | Path,
              title: str = "") -> list[str]:
    """Plot `keys` (those with a finite value in every log) into one PNG, written atomically.
    Returns the keys plotted."""
    present = [k for k in keys if all(np.isfinite(log_values(log, k)).any() for log in logs)]
    if not present:
        return []
    cols = min(len(present), 3)
    rows = math.ceil(len(present) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, present):
        runs = [log_values(log, key) for log in logs]
        length = min(len(r) for r in runs)
        stack = np.stack([r[:length] for r in runs])
        mean = stack.mean(0)
        ax.plot(np.arange(length), mean, lw=1.2)
        if len(logs) > 1:
            std = stack.std(0)
            ax.fill_between(np.arange(length), mean - std, mean + std, alpha=0.25, lw=0)
        ax.set_title(key if len(logs) == 1 else f"{key} (mean ± std, {len(logs)} runs)",
                     fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    _save_panels(fig, axes, len(present), title, path)
    return present


def plot_log(log: Log, keys: Sequence[str], path: str | Path, title: str = "") -> list[str]:
    """One run's `keys` into one PNG (see plot_logs)."""
    return plot_logs([log], keys, path, title)


def _save_panels(fig: Any, axes: np.ndarray, used: int, title: str, path: str | Path,
                 dpi: int = 100) -> None:
    """Blank the panels after the first `used`, add the title, write the PNG atomically."""
    for ax in list(axes.flat)[used:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def plot_learning_curves(curves: dict[str, dict[str, list[np.ndarray]]],
                         levels: dict[str, dict[str, float]], path: str | Path) -> None:
    """One panel per dataset: each algo's eval-score curves ([iterations] per seed) as mean ±
    std over seeds, and horizontal `levels` (e.g. behaviour return, BC score) as dashed lines."""
    names = list(dict.fromkeys([*curves, *levels]))
    cols = min(len(names), 4)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for algo, runs in curves.get(name, {}).items():
            length = min(len(r) for r in runs)
            stack = np.stack([r[:length] for r in runs])
            mean, std = stack.mean(0), stack.std(0)
            line, = ax.plot(np.arange(length), mean, lw=1.2, label=f"{algo} ({len(runs)})")
            ax.fill_between(np.arange(length), mean - std, mean + std, alpha=0.2, lw=0,
                            color=line.get_color())
        for (label, value), style in zip(levels.get(name, {}).items(), ("--", ":", "-.")):
            ax.axhline(value, ls=style, lw=1.0, color="0.3" if style == "--" else "C3",
                       label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save_panels(fig, axes, len(names), "eval_score: mean ± std over seeds (seeds in brackets)",
                 path, dpi=90)


def plot_model_check(episodes: Sequence[tuple[np.ndarray, np.ndarray]],
                     truncate_lim: float | None, path: str | Path, title: str = "") -> None:
    """One panel per real episode: the members' mean one-step error [T] and their
    disagreement [T] per step, and the halting threshold as a dashed line."""
    cols = min(len(episodes), 2)
    rows = math.ceil(len(episodes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.0 * rows), squeeze=False)
    for k, (ax, (error, disagreement)) in enumerate(zip(axes.flat, episodes)):
        steps = np.arange(len(error))
        ax.plot(steps, error, lw=1.0, label="one-step error (mean over members)")
        ax.plot(steps, disagreement, lw=1.0, label="disagreement")
        if truncate_lim is not None:
            ax.axhline(truncate_lim, ls="--", lw=1.0, color="0.3", label="truncate_lim")
        ax.set_yscale("log")
        ax.set_title(f"episode {k} ({len(error)} steps)", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save_panels(fig, axes, len(episodes), title, path)


def plot_survival(curves: dict[str, np.ndarray], path: str | Path, title: str = "") -> None:
    """Survival curves (share of paths still running [T + 1] per step) in one panel: the first
    entry (the dataset's episodes) in black, the others (model members) in colour."""
    fig, axes = plt.subplots(1, 1, figsize=(6.5, 3.8), squeeze=False)
    ax = axes[0, 0]
    for k, (label, share) in enumerate(curves.items()):
        style = {"color": "black", "lw": 2.0} if k == 0 else {"lw": 1.0}
        ax.plot(np.arange(len(share)), share, label=label, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("share of paths still running")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save_panels(fig, axes, 1, title, path)
