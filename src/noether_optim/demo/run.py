"""``noether-optim demo``: train a neural surrogate of Burgers' equation with Lion and with AdamW, then plot.

Both runs use the same model, data, epochs and batch size; only the optimizer config differs
(``examples/configs/burgers_{lion,adamw}.yaml``: bias/norm exclusion, a per-name modifier, warmup-cosine lr, a
weight-decay schedule and clipping). Each run checkpoints after every epoch and continues from there with
``--resume``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from noether.core.schemas.optimizers import OptimizerConfig
from noether_optim.config_io import check_modifier_names, load_optimizer_config, require_yaml
from noether_optim.demo.burgers import make_burgers_data
from noether_optim.demo.history import RunHistory
from noether_optim.demo.model import BurgersSurrogate
from noether_optim.demo.training import checkpoint_epochs, train_surrogate
from noether_optim.errors import UsageError
from noether_optim.plotting import plot_runs, require_matplotlib

__all__ = ["NUM_TRAIN", "run_demo"]

NUM_TRAIN = 1024
"""Training fields the demo generates (and 256 for validation)."""


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


@dataclass(frozen=True)
class _Run:
    label: str
    config_path: Path
    config: OptimizerConfig
    checkpoint: Path
    epochs_done: int


def _check_needs(args: Any) -> None:
    """Every optional package the options need, before anything else happens."""
    require_yaml(extra="demo")
    if not args.no_plot:
        require_matplotlib(" (or run with --no-plot)")


def _plan(args: Any, num_train: int) -> list[_Run]:
    """Check every input of the demo (options, both configs, checkpoints) before anything is trained.

    Raises:
        UsageError: Options that cannot work together.
        ConfigError: A config that cannot be read or does not validate.
        MismatchError: A config that does not fit the demo's model.
    """
    if args.batch_size > num_train:
        raise UsageError(f"--batch-size {args.batch_size} is larger than the {num_train} training samples")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    labelled = [("Lion", "--lion-config", Path(args.lion_config))]
    if not args.no_adamw:
        labelled.append(("AdamW", "--adamw-config", Path(args.adamw_config)))
    runs = []
    for label, flag, config_path in labelled:
        config = load_optimizer_config(config_path)
        check_modifier_names(config, BurgersSurrogate(), f"{config_path} ({flag})")
        checkpoint = out / f"{label.lower()}.pt"
        epochs_done = 0
        if args.resume and checkpoint.exists():
            try:
                epochs_done = checkpoint_epochs(checkpoint)
            except ValueError as error:
                raise UsageError(f"--resume: {error}; remove it or choose another --out") from None
            if epochs_done > args.epochs:
                raise UsageError(
                    f"--resume: the {label} run in {checkpoint} has already trained {epochs_done} epochs, more than "
                    f"--epochs {args.epochs}; pass --epochs {epochs_done} or more to continue it, or leave out "
                    "--resume (or choose another --out) to start over"
                )
        runs.append(_Run(label, config_path, config, checkpoint, epochs_done))
    return runs


def _verdict(histories: list[RunHistory]) -> str:
    """One line on how Lion did against AdamW (empty with one run)."""
    if len(histories) != 2:
        return ""
    lion, adamw = histories
    if lion.final_val_error < adamw.final_val_error:
        return (
            f"Lion beat AdamW on the same budget: validation error {lion.final_val_error:.4f} vs "
            f"{adamw.final_val_error:.4f} ({adamw.final_val_error / lion.final_val_error:.2f}x lower)."
        )
    return (
        f"Lion did NOT beat AdamW on this budget: validation error {lion.final_val_error:.4f} vs "
        f"{adamw.final_val_error:.4f}."
    )


def run_demo(args: Any) -> int:
    """The ``demo`` command: both runs, the group table, the PNG and the verdict. Returns the exit code.

    Raises:
        MissingDependencyError, UsageError, ConfigError, MismatchError: Before anything is trained (see
            :func:`_plan`).
    """
    _check_needs(args)
    runs = _plan(args, NUM_TRAIN)
    threads = torch.get_num_threads()
    # The surrogate's ops are small: one thread is faster than two that synchronise every op, and it cannot stall
    # behind other processes the way spinning OpenMP threads do on a busy machine.
    torch.set_num_threads(1)
    try:
        return _run_demo(args, runs)
    finally:
        torch.set_num_threads(threads)


def _run_demo(args: Any, runs: list[_Run]) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_burgers_data(num_train=NUM_TRAIN, seed=args.seed)
    print(
        f"Burgers' equation data: {len(data.train_inputs)} train / {len(data.val_inputs)} validation fields on a "
        f"{data.train_inputs.shape[1]}-point grid ({time.perf_counter() - started:.1f} s)"
    )
    histories = []
    for run in runs:
        finished = run.epochs_done == args.epochs
        callback, close = _progress(run.label, args.quiet or finished)
        try:
            history, _ = train_surrogate(
                run.config,
                data,
                name=run.label,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                checkpoint_path=run.checkpoint,
                resume=args.resume,
                on_update=callback,
                on_start=functools.partial(_print_groups, f"{run.label} param groups ({run.config_path.name})"),
            )
        finally:
            close()
        if finished:
            print(
                f"{run.label}: {run.checkpoint} already holds all {args.epochs} epochs, nothing left to train "
                f"(pass a larger --epochs to train on); validation relative L2 error {history.final_val_error:.4f} "
                f"(trained earlier in {history.seconds:.1f} s)"
            )
        else:
            print(f"{run.label}: validation relative L2 error {history.final_val_error:.4f} ({history.seconds:.1f} s)")
        histories.append(history)
    verdict = _verdict(histories)
    if not args.no_plot:
        print(f"wrote {plot_runs(histories, out / 'demo.png', outcome=verdict).resolve()}")
    if verdict:
        print(verdict)
    print(f"done in {time.perf_counter() - started:.1f} s; checkpoints in {out.resolve()} (continue with --resume)")
    return 0
