"""``noether-optim demo``: train a neural surrogate of Burgers' equation with Lion and with AdamW, then plot.

Both runs use the same model, data, epochs and batch size; only the optimizer config differs
(``examples/configs/burgers_{lion,adamw}.yaml``: bias/norm exclusion, a per-name modifier, warmup-cosine lr, a
weight-decay schedule and clipping). Each run checkpoints after every epoch and continues from there with
``--resume``.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from noether.core.optimizer.cli.burgers import BurgersData, make_burgers_data
from noether.core.optimizer.cli.config_io import load_optimizer_config
from noether.core.optimizer.cli.model import BurgersSurrogate

__all__ = ["RunHistory", "relative_l2", "run_demo", "train_surrogate"]


@dataclass
class RunHistory:
    """What one training run recorded: per-update train loss, lr and wd; per-epoch validation error."""

    name: str
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    weight_decay: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    skipped_steps: int = 0
    seconds: float = 0.0

    @property
    def final_val_error(self) -> float:
        """Relative L2 validation error after the last epoch (``nan`` before the first)."""
        return self.val_error[-1] if self.val_error else math.nan


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ``||prediction - target|| / ||target||``."""
    error: torch.Tensor = ((prediction - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-12)).mean()
    return error


def _save_atomically(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind


def train_surrogate(
    config_path: str | Path,
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
        config_path: An ``OptimizerConfig`` YAML file.
        data: Train and validation fields.
        name: Label of the run (plots, checkpoint).
        epochs: Number of epochs.
        batch_size: Samples per update; the last incomplete batch of an epoch is dropped.
        seed: Seeds the model initialisation and the per-epoch shuffles.
        checkpoint_path: Where to save model, optimizer (by parameter name) and history after every epoch.
        resume: Continue from ``checkpoint_path`` if it exists.
        on_update: Called after every update with ``(history, update, total_updates)`` (progress display).
        on_start: Called with the ``OptimizerWrapper`` once it is built (and restored), before the first update.

    Returns:
        The history and the ``OptimizerWrapper`` (to inspect its param groups).
    """
    from noether.core.factory import OptimizerFactory
    from noether.core.utils.training import TrainingIteration, UpdateCounter

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
    optimizer = OptimizerFactory().create(load_optimizer_config(config_path))(model, update_counter=counter)
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


def _progress(label: str, quiet: bool) -> tuple[Callable[[RunHistory, int, int], None] | None, Callable[[], None]]:
    """A tqdm bar showing loss and lr (plain lines once per 10% when tqdm is missing); returns (callback, close)."""
    if quiet:
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:
        last_shown = [-1]

        def report(history: RunHistory, update: int, total: int) -> None:
            decile = 10 * update // total
            if decile != last_shown[0]:
                last_shown[0] = decile
                print(f"{label}: update {update}/{total} loss {history.train_loss[-1]:.4f} lr {history.lr[-1]:.2e}")

        return report, lambda: None
    bar: Any = None

    def update_bar(history: RunHistory, update: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=update - 1, desc=label, unit="upd", dynamic_ncols=True, mininterval=0.25)
        bar.update(1)
        if update % 10 == 0 or update == total:
            bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", lr=f"{history.lr[-1]:.2e}")

    def close() -> None:
        if bar is not None:
            bar.close()

    return update_bar, close


def _print_groups(header: str, wrapper: Any) -> None:
    print(f"\n{header}:\n{wrapper.format_param_group_table()}")


def run_demo(args: Any) -> int:
    """The ``demo`` command: both runs, the group table, the PNG and the verdict. Returns the exit code."""
    threads = torch.get_num_threads()
    # The surrogate's ops are small: one thread is faster than two that synchronise every op, and it cannot stall
    # behind other processes the way spinning OpenMP threads do on a busy machine.
    torch.set_num_threads(1)
    try:
        return _run_demo(args)
    finally:
        torch.set_num_threads(threads)


def _run_demo(args: Any) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_burgers_data(seed=args.seed)
    print(
        f"Burgers' equation data: {len(data.train_inputs)} train / {len(data.val_inputs)} validation fields on a "
        f"{data.train_inputs.shape[1]}-point grid ({time.perf_counter() - started:.1f} s)"
    )
    runs = [("Lion", Path(args.lion_config))]
    if not args.no_adamw:
        runs.append(("AdamW", Path(args.adamw_config)))
    histories = []
    for label, config_path in runs:
        callback, close = _progress(label, args.quiet)
        try:
            history, _ = train_surrogate(
                config_path,
                data,
                name=label,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                checkpoint_path=out / f"{label.lower()}.pt",
                resume=args.resume,
                on_update=callback,
                on_start=functools.partial(_print_groups, f"{label} param groups ({config_path.name})"),
            )
        finally:
            close()
        print(f"{label}: validation relative L2 error {history.final_val_error:.4f} ({history.seconds:.1f} s)")
        histories.append(history)
    if not args.no_plot:
        from noether.core.optimizer.cli.plotting import plot_runs

        print(f"wrote {plot_runs(histories, out / 'demo.png').resolve()}")
    if len(histories) == 2:
        lion, adamw = histories
        if lion.final_val_error < adamw.final_val_error:
            print(
                f"Lion beat AdamW on the same budget: validation error {lion.final_val_error:.4f} vs "
                f"{adamw.final_val_error:.4f} ({adamw.final_val_error / lion.final_val_error:.2f}x lower)."
            )
        else:
            print(
                f"Lion did NOT beat AdamW on this budget: validation error {lion.final_val_error:.4f} vs "
                f"{adamw.final_val_error:.4f}."
            )
    print(f"done in {time.perf_counter() - started:.1f} s; checkpoints in {out.resolve()} (continue with --resume)")
    return 0
