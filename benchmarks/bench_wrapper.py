"""Overhead of OptimizerWrapper over a bare torch optimizer.

Per update, the wrapper runs ``schedule_step()`` (lr from a schedule) and ``step()`` (norm computation,
non-finite check, norm clipping, optimizer step). The baseline is what a hand-written loop does:
``torch.nn.utils.clip_grad_norm_`` then ``optimizer.step()``. Both use AdamW with the same settings on a model of
about 300 parameter tensors. Two baselines: torch's default (per-tensor norms on CPU) and ``foreach=True``.
Timings are interleaved and the medians compared against the faster baseline; the target is a ratio <= 1.05.

Run: ``python benchmarks/bench_wrapper.py [--dim 128] [--repeats 30] [--steps 20]`` (an installed package, or the
checkout's ``src/``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

try:  # an installed package, or PYTHONPATH=src; else the checkout's src/
    import noether  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from noether.core.optimizer import OptimizerWrapper
from noether.core.schemas import OptimizerConfig
from noether.core.utils.training import TrainingIteration, UpdateCounter


def make_model(dim: int, blocks: int = 50) -> torch.nn.Module:
    # 6 tensors per block (2 linears with bias, 1 layer norm): 300 tensors.
    layers = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(dim, dim), torch.nn.LayerNorm(dim), torch.nn.Linear(dim, dim)]
    return torch.nn.Sequential(*layers)


def fill_grads(model: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(0)
    for param in model.parameters():
        param.grad = torch.randn(param.shape, generator=generator)


def time_it(fn: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def build_wrapper(model: torch.nn.Module) -> OptimizerWrapper:
    config = OptimizerConfig.model_validate(
        {
            "clip_grad_norm": 1.0,
            "schedule_config": {
                "kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule",
                "warmup_percent": 0.1,
            },
        }
    )
    start = TrainingIteration(epoch=0, update=0, sample=0)
    # The run is long enough that the counter never reaches the end while timing.
    counter = UpdateCounter(start, TrainingIteration(update=10**9), updates_per_epoch=1000, effective_batch_size=1)
    wrapper = OptimizerWrapper(
        model, functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05), config, update_counter=counter
    )
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)

    base_model = make_model(args.dim)
    wrapped_model = make_model(args.dim)
    wrapped_model.load_state_dict(base_model.state_dict())
    fill_grads(base_model)
    fill_grads(wrapped_model)
    n_tensors = sum(1 for _ in base_model.parameters())
    n_elements = sum(p.numel() for p in base_model.parameters())

    optimizer = torch.optim.AdamW(base_model.parameters(), lr=1e-3, weight_decay=0.05)
    wrapper = build_wrapper(wrapped_model)
    params = list(base_model.parameters())

    def bare() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    def bare_foreach() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()

    def wrapped() -> None:
        wrapper.schedule_step()
        wrapper.step()
        assert wrapper.update_counter is not None
        wrapper.update_counter.next_update()

    variants = {
        "bare: clip_grad_norm_ + optimizer.step()": bare,
        "bare: clip_grad_norm_(foreach=True) + optimizer.step()": bare_foreach,
        "OptimizerWrapper: schedule_step() + step()": wrapped,
    }
    for fn in variants.values():  # warm-up: state allocation, first-call costs
        time_it(fn, 3)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(time_it(fn, args.steps))
    medians = {name: statistics.median(values) for name, values in times.items()}
    bare_median = min(m for name, m in medians.items() if name.startswith("bare"))
    wrapped_median = medians["OptimizerWrapper: schedule_step() + step()"]
    print(
        f"model: {n_tensors} tensors, {n_elements:,} elements; AdamW, clip_grad_norm=1.0; wrapper with LWCD lr schedule"
    )
    print(f"{args.repeats} interleaved repeats x {args.steps} steps, 1 thread")
    print()
    print(f"| {'variant':<56} | {'median ms/step':>14} | {'vs fastest bare':>15} |")
    print(f"|{'-' * 58}|{'-' * 16}|{'-' * 17}|")
    for name, median in medians.items():
        print(f"| {name:<56} | {median * 1e3:>14.3f} | {median / bare_median:>15.3f} |")
    print()
    print(f"overhead vs the fastest bare loop: {100 * (wrapped_median / bare_median - 1):+.1f}% (target <= +5%)")


if __name__ == "__main__":
    main()
