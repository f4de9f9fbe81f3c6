"""One training run of the demo: the Burgers' surrogate trained with the optimizer a YAML config describes.

Each run checkpoints after every epoch (model, the wrapper's name-keyed optimizer state and the history) and
continues from there with ``resume=True``, exactly as an uninterrupted run would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from noether.core.factory import OptimizerFactory
from noether.core.schemas.optimizers import OptimizerConfig
from noether.core.utils.training import TrainingIteration, UpdateCounter
from noether_optim.config_io import load_optimizer_config
from noether_optim.demo.burgers import BurgersData
from noether_optim.demo.history import RunHistory
from noether_optim.demo.model import BurgersSurrogate

__all__ = ["checkpoint_epochs", "relative_l2", "train_surrogate"]


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ``||prediction - target|| / ||target||``."""
    error: torch.Tensor = ((prediction - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-12)).mean()
    return error


def _save_atomically(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind


def checkpoint_epochs(path: Path) -> int:
    """How many epochs the demo checkpoint at ``path`` holds.

    Raises:
        ValueError: If the file is not a checkpoint the demo wrote.
    """
    try:
        saved = torch.load(path, weights_only=True)
        return int(saved["epoch"])
    except Exception as error:  # a truncated or foreign file fails in many ways; all mean the same here
        raise ValueError(f"{path} is not a checkpoint of the demo ({type(error).__name__}: {error})") from None


def train_surrogate(
    config: str | Path | OptimizerConfig,
    data: BurgersData,
    *,
    name: str,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    on_update: Callable[[RunHistory, int, int], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
) -> tuple[RunHistory, Any]:
    """Train :class:`BurgersSurrogate` on ``data`` with the optimizer described by a YAML config.

    Args:
        config: An ``OptimizerConfig``, or the YAML file of one.
        data: Train and validation fields.
        name: Label of the run (plots, checkpoint).
        epochs: Number of epochs.
        batch_size: Samples per update; the last incomplete batch of an epoch is dropped.
        seed: Seeds the model initialisation and the per-epoch shuffles.
        checkpoint_path: Where to save model, optimizer (by parameter name) and history after every epoch.
        resume: Continue from ``checkpoint_path`` if it exists (a checkpoint of ``epochs`` epochs or more trains
            nothing more; more than ``epochs`` is an error).
        on_update: Called after every update with ``(history, update, total_updates)`` (progress display).
        on_start: Called with the ``OptimizerWrapper`` once it is built (and restored), before the first update.

    Returns:
        The history and the ``OptimizerWrapper`` (to inspect its param groups).
    """
    torch.manual_seed(seed)
    model = BurgersSurrogate(grid_size=data.train_inputs.shape[1])
    inputs, targets = torch.from_numpy(data.train_inputs), torch.from_numpy(data.train_targets)
    val_inputs, val_targets = torch.from_numpy(data.val_inputs), torch.from_numpy(data.val_targets)
    updates_per_epoch = len(inputs) // batch_size
    if updates_per_epoch < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {len(inputs)} training samples")

    history = RunHistory(name=name)
    start_epoch = 0
    saved: dict[str, Any] | None = None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        saved = torch.load(checkpoint_path, weights_only=True)
        start_epoch = int(saved["epoch"])
        if start_epoch > epochs:
            raise ValueError(
                f"{checkpoint_path} holds {start_epoch} epochs, more than the {epochs} epochs asked for; ask for "
                f"{start_epoch} or more to continue it"
            )
        history = RunHistory(**saved["history"])
        model.load_state_dict(saved["model"])
    start = TrainingIteration(
        epoch=start_epoch, update=start_epoch * updates_per_epoch, sample=start_epoch * updates_per_epoch * batch_size
    )
    counter = UpdateCounter(
        start_iteration=start,
        end_iteration=TrainingIteration(epoch=epochs),
        updates_per_epoch=updates_per_epoch,
        effective_batch_size=batch_size,
    )
    if not isinstance(config, OptimizerConfig):
        config = load_optimizer_config(config)
    optimizer = OptimizerFactory().create(config)(model, update_counter=counter)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
    if on_start is not None:
        on_start(optimizer)
    groups = optimizer.torch_optim.param_groups
    # Record the lr and wd of the group holding most of the weights (the one the schedules matter for).
    tracked = max(groups, key=lambda group: sum(p.numel() for p in group["params"]))

    started = time.perf_counter() - history.seconds
    total_updates = epochs * updates_per_epoch
    for epoch in range(start_epoch, epochs):
        # Seeded per epoch, so a resumed run sees exactly the batches an uninterrupted one would.
        order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        model.train()
        for batch in range(updates_per_epoch):
            index = order[batch * batch_size : (batch + 1) * batch_size]
            optimizer.schedule_step()
            loss = relative_l2(model(inputs[index]), targets[index])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            optimizer.zero_grad()
            counter.next_update()
            counter.add_samples(batch_size)
            history.train_loss.append(loss.item())
            history.lr.append(float(tracked["lr"]))
            history.weight_decay.append(float(tracked["weight_decay"]))
            if on_update is not None:
                on_update(history, counter.update, total_updates)
        counter.next_epoch()
        model.eval()
        with torch.no_grad():
            history.val_error.append(relative_l2(model(val_inputs), val_targets).item())
        history.seconds = time.perf_counter() - started
        if checkpoint_path is not None:
            _save_atomically(
                {
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": asdict(history),
                },
                checkpoint_path,
            )
    return history, optimizer
