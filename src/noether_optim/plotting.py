"""PNG plots for the command line: demo training curves and schedule curves (matplotlib, an optional extra).

The functions take plain data (a run's recorded curves, a schedule's values), not the objects that produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from noether_optim.demo.history import RunHistory
from noether_optim.errors import MissingDependencyError

__all__ = ["plot_curves", "plot_runs", "require_matplotlib"]


def require_matplotlib(hint: str = "") -> Any:
    """Import matplotlib with a headless backend, or raise :class:`MissingDependencyError` saying how to install it.

    Args:
        hint: Appended to the message, e.g. how to run the command without a plot.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(f"plotting needs matplotlib: pip install 'noether-optim[demo]'{hint}") from None
    return plt


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if len(array) < window or window <= 1:
        return array
    kernel = np.ones(window) / window
    # 'valid' would shift the curve; pad with the edge values so it lines up with the update index.
    padded = np.concatenate([np.full(window // 2, array[0]), array, np.full(window - 1 - window // 2, array[-1])])
    return np.convolve(padded, kernel, mode="valid")


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_runs(runs: Sequence[RunHistory], path: str | Path, outcome: str = "") -> Path:
    """Loss (train, smoothed, and validation), learning rate and weight decay of each run, side by side.

    Args:
        runs: The recorded curves of each run.
        path: The PNG file to write.
        outcome: A line under the title saying how the runs compare.
    """
    plt = require_matplotlib()
    fig, (ax_loss, ax_lr, ax_wd) = plt.subplots(1, 3, figsize=(15, 4.2))
    for run in runs:
        updates = np.arange(1, len(run.train_loss) + 1)
        (line,) = ax_loss.plot(updates, _smooth(run.train_loss, 25), lw=1.2, label=f"{run.name} train")
        if run.val_error:
            per_epoch = len(run.train_loss) // len(run.val_error)
            epochs_end = per_epoch * np.arange(1, len(run.val_error) + 1)
            ax_loss.plot(epochs_end, run.val_error, "o--", ms=3, color=line.get_color(), label=f"{run.name} val")
        ax_lr.plot(updates, run.lr, color=line.get_color(), label=run.name)
        ax_wd.plot(updates, run.weight_decay, color=line.get_color(), label=run.name)
    ax_loss.set(yscale="log", xlabel="update", ylabel="relative L2 error", title="Loss")
    ax_lr.set(xlabel="update", ylabel="lr (largest group)", title="Learning rate", yscale="log")
    all_positive = all(value > 0 for run in runs for value in run.weight_decay)
    # Optimizers differ in weight decay by 10-100x; a log axis shows both curves (zero cannot go on one).
    ax_wd.set(xlabel="update", ylabel="weight decay (largest group)", title="Weight decay")
    ax_wd.set_yscale("log" if all_positive else "linear")
    for ax in (ax_loss, ax_lr, ax_wd):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    title = "noether-optim demo: neural surrogate of Burgers' equation"
    fig.suptitle(f"{title}\n{outcome}" if outcome else title)
    return _save(plt, fig, path)


def plot_curves(curves: Sequence[tuple[str, np.ndarray]], path: str | Path, title: str) -> Path:
    """Schedule curves (value per step), one panel each, in one PNG."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 3.6), squeeze=False)
    for ax, (label, values) in zip(axes[0], curves, strict=True):
        ax.plot(np.arange(len(values)), values)
        ax.set(xlabel="step", ylabel=label, title=label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(plt, fig, path)
