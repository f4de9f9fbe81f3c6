"""PNG plots for the command line: demo training curves and schedule curves (matplotlib, an optional extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from noether_optim.demo.history import RunHistory

__all__ = ["plot_runs", "plot_values", "require_matplotlib"]


def require_matplotlib() -> Any:
    """Import matplotlib with a headless backend, or explain how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError("plotting needs matplotlib: pip install 'noether-optim[demo]'") from error
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


def plot_runs(runs: Sequence[RunHistory], path: str | Path) -> Path:
    """Loss (train, smoothed, and validation), learning rate and weight decay of each run, side by side."""
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
    fig.suptitle("noether-optim demo: neural surrogate of Burgers' equation")
    return _save(plt, fig, path)


def plot_values(values: np.ndarray, path: str | Path, title: str) -> Path:
    """A single schedule curve (value per step)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(np.arange(len(values)), values)
    ax.set(xlabel="step", ylabel="value", title=title)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)
