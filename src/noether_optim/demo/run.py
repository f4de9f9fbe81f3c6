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
from pathlib import Path
from typing import Any

import torch

from noether_optim.demo.burgers import make_burgers_data
from noether_optim.demo.history import RunHistory
from noether_optim.demo.training import train_surrogate
from noether_optim.plotting import plot_runs

__all__ = ["run_demo"]


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
