"""Low-precision Lion: speed, memory and training quality of its modes, in one run.

Modes: ``fp32`` (float32 weights and momentum, the baseline), ``bf16`` (bfloat16 weights and momentum, no
compensation), ``bf16+kahan`` (bfloat16 weights and momentum, Kahan-compensated; the default for bfloat16 weights) and
``fp32+bf16m`` (float32 weights, bfloat16 momentum).

* speed: the median step time of each mode on the ``big`` (few large tensors) and ``many`` (~290 transformer-like
  tensors) workloads, on the default path and with ``fused=True``, as a ratio to the fp32 step on the same number of
  elements, measured interleaved in one process;
* where a step's time goes (``--split``): on the default path, the C kernel's call alone on the same tensors (pointer
  arrays prepared once), interleaved with the full steps, so that each step splits into the kernel and the fixed cost
  of the step around it (reading ``.grad``, the checks that guard the kernel's pointers, torch's step wrapper);
* memory: bytes per parameter of weights + optimizer state, summed over the tensors each optimizer actually allocated
  after one step, beside AdamW (foreach and fused) and the published figures of other libraries;
* training quality (``--train``): a small MLP fitted to a fixed random teacher on synthetic data, same seed and
  budget per mode; a table of the validation loss and a plot (``--plot PATH``).

Usage::

    python benchmarks/bench_lowprec.py                       # speed + memory
    python benchmarks/bench_lowprec.py --train --plot docs/images/lowprec_training.png
    python benchmarks/bench_lowprec.py --split --repeats 100 # the steps split into kernel and fixed cost
    python benchmarks/bench_lowprec.py --quick               # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from noether.core.optimizer import Lion
from noether.core.optimizer.lion.cpu_kernel import pointers, sizes_array
from noether.core.optimizer.lion.dispatch import _native_kernel
from noether.core.optimizer.lion.reference import _group_hyperparameters

MODES: dict[str, tuple[torch.dtype, dict[str, Any]]] = {
    "fp32": (torch.float32, {}),
    "bf16": (torch.bfloat16, {"kahan_sum": False}),
    "bf16+kahan": (torch.bfloat16, {"kahan_sum": True}),
    "fp32+bf16m": (torch.float32, {"momentum_dtype": torch.bfloat16}),
}


def transformer_shapes(d: int = 128, layers: int = 24, vocab: int = 2048, ctx: int = 256) -> list[tuple[int, ...]]:
    """The tensors of a small transformer (as in bench_lion.py's ``many`` workload)."""
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [*shapes, (d,), (d,)]


def workloads(quick: bool) -> dict[str, list[tuple[int, ...]]]:
    return {
        "big": [(500, 1000)] * 4 if quick else [(5000, 1000)] * 4,
        "many": transformer_shapes(d=32, layers=4) if quick else transformer_shapes(),
    }


def make_optimizer(shapes: list[tuple[int, ...]], mode: str, fused: bool | None) -> tuple[Lion, list[Tensor]]:
    dtype, options = MODES[mode]
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(dtype)
    opt = Lion(params, lr=1e-4, weight_decay=0.1, fused=fused, **options)
    opt.step()  # state, and any kernel build, before timing
    return opt, params


def kernel_alone(opt: Lion) -> Callable[[], None] | None:
    """The C kernel's call on ``opt``'s one group, arrays prepared once: its step without the fixed cost around it.

    None where the C kernel cannot be built (then the default path runs the foreach kernel, which has no such split).
    """
    (group,) = opt.param_groups
    params: list[Tensor] = group["params"]
    states = [opt.state[p] for p in params]
    comps = [s["kahan_comp"] for s in states] if "kahan_comp" in states[0] else None
    dtype, m_dtype = params[0].dtype, states[0]["exp_avg"].dtype
    kernel = _native_kernel(dtype, group["caution"], m_dtype, comps is not None)
    if kernel is None:
        return None
    scalars = kernel.scalars(_group_hyperparameters(group), dtype, params[0].device)
    grads = [p.grad for p in params]
    ps, gs, ms = pointers(params), pointers(grads), pointers([s["exp_avg"] for s in states])  # type: ignore[arg-type]
    cs = pointers(comps) if comps is not None else None
    numels = sizes_array([p.numel() for p in params])

    def run() -> None:
        # The pointers are raw: the closure holds the optimizer, so that its tensors outlive every call.
        kernel.call_arrays(len(opt.param_groups[0]["params"]), ps, gs, ms, numels, scalars, cs)

    return run


def time_modes(
    shapes: list[tuple[int, ...]], fused: bool | None, repeats: int, split: bool = False
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of each mode, the modes interleaved so that load changes hit them alike.

    With ``split``, also the median seconds of each mode's C kernel call alone (:func:`kernel_alone`), interleaved
    with the steps (the second dict; empty without ``split`` or where the C kernel is unavailable).
    """
    opts = {mode: make_optimizer(shapes, mode, fused)[0] for mode in MODES}
    runs: dict[str, Callable[[], Any]] = {mode: opt.step for mode, opt in opts.items()}
    if split:
        for mode, opt in opts.items():
            alone = kernel_alone(opt)
            if alone is not None:
                runs[f"kernel {mode}"] = alone
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    steps = {mode: medians[mode] for mode in MODES}
    alone_medians = {mode: medians[f"kernel {mode}"] for mode in MODES if f"kernel {mode}" in medians}
    return steps, alone_medians


def bytes_per_param(make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], dtype: torch.dtype) -> float:
    """Weights + optimizer state (every tensor in ``state``), per parameter, after one step of a 1M-element model."""
    params = [torch.nn.Parameter(torch.zeros(1000, 1000, dtype=dtype))]
    params[0].grad = torch.zeros_like(params[0])
    opt = make(params)
    opt.step()
    total = sum(p.nbytes for p in params)
    for state in opt.state.values():
        total += sum(t.nbytes for t in state.values() if isinstance(t, Tensor))
    return total / sum(p.numel() for p in params)


def memory_table() -> list[str]:
    rows = []
    for mode, (dtype, options) in MODES.items():
        value = bytes_per_param(lambda ps, o=options: Lion(ps, lr=1e-4, **o), dtype)  # type: ignore[misc]
        rows.append(f"| Lion {mode} | {value:.2f} | measured |")
    adamw = bytes_per_param(lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True), torch.float32)
    fused = bytes_per_param(lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True), torch.float32)
    rows += [
        f"| AdamW fp32 (foreach) | {adamw:.2f} | measured |",
        f"| AdamW fp32 (fused) | {fused:.2f} | measured |",
        "| optimi AdamW, bf16 + Kahan | 8 | published: 2 weights + 2 + 2 moments + 2 compensation |",
        "| bitsandbytes AdamW 8-bit | ~6 | published: 4 weights + 1 + 1 moments (+ block scales) |",
        "| bitsandbytes Lion 8-bit | ~5 | published: 4 weights + 1 momentum (+ block scales) |",
    ]
    return ["| optimizer | bytes / param (weights + state) | source |", "|---|---|---|", *rows]


def speed_table(quick: bool, repeats: int, split: bool = False) -> list[str]:
    lines = [
        "| workload | path | fp32 ms | bf16 | bf16+kahan | fp32+bf16m |",
        "|---|---|---|---|---|---|",
    ]
    split_lines = [
        "| workload | kernel alone: fp32 ms | bf16 | bf16+kahan | fp32+bf16m | rest of the step, ms: fp32 / bf16 /"
        " bf16+kahan / fp32+bf16m |",
        "|---|---|---|---|---|---|",
    ]
    others = ("bf16", "bf16+kahan", "fp32+bf16m")
    for name, shapes in workloads(quick).items():
        for path, fused in (("default", None), ("fused", True)):
            medians, alone = time_modes(shapes, fused, repeats, split=split and fused is None)
            base = medians["fp32"]
            ratios = " | ".join(f"{medians[m] / base:.2f}x" for m in others)
            lines.append(f"| {name} | {path} | {base * 1e3:.2f} | {ratios} |")
            if len(alone) == len(MODES):
                kernel_ratios = " | ".join(f"{alone[m] / alone['fp32']:.2f}x" for m in others)
                rest = " / ".join(f"{(medians[m] - alone[m]) * 1e3:.2f}" for m in MODES)
                split_lines.append(f"| {name} | {alone['fp32'] * 1e3:.2f} | {kernel_ratios} | {rest} |")
    if len(split_lines) > 2:
        lines += [
            "",
            "Default path, split: the C kernel's call alone (ratios to fp32's), and the rest of each step",
            "",
        ]
        lines += split_lines
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# training quality


def train_mode(mode: str, steps: int, seed: int = 0) -> list[tuple[int, float]]:
    """Fit an MLP to a fixed random teacher; return (step, validation loss) pairs, the loss computed in float32."""
    dtype, options = MODES[mode]
    torch.manual_seed(seed)
    teacher = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    student = torch.nn.Sequential(
        torch.nn.Linear(32, 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 1)
    )
    gen = torch.Generator().manual_seed(seed + 1)
    x_val = torch.randn(2048, 32, generator=gen)
    with torch.no_grad():
        y_val = teacher(x_val)
    model = student.to(dtype)
    opt = Lion(model.parameters(), lr=1e-4, weight_decay=0.1, **options)
    curve = []
    for step in range(steps + 1):
        if step % max(steps // 40, 1) == 0:
            with torch.no_grad():
                pred = torch.func.functional_call(model, {n: p.float() for n, p in model.named_parameters()}, (x_val,))
                curve.append((step, float(torch.nn.functional.mse_loss(pred, y_val))))
        if step == steps:
            break
        x = torch.randn(128, 32, generator=gen)
        with torch.no_grad():
            y = teacher(x)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x.to(dtype)).float(), y).backward()
        opt.step()
    return curve


def training_report(steps: int, plot: str | None) -> list[str]:
    curves = {mode: train_mode(mode, steps) for mode in MODES}
    base = curves["fp32"][-1][1]
    lines = ["| mode | final validation loss | vs fp32 |", "|---|---|---|"]
    for mode, curve in curves.items():
        final = curve[-1][1]
        lines.append(f"| {mode} | {final:.5f} | {100 * (final / base - 1):+.1f}% |")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for mode, curve in curves.items():
            ax.plot([s for s, _ in curve], [v for _, v in curve], label=mode)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("validation MSE")
        ax.set_title(f"Lion lr=1e-4, MLP on a random teacher, {steps} steps")
        ax.legend()
        fig.tight_layout()
        os.makedirs(os.path.dirname(plot) or ".", exist_ok=True)
        fig.savefig(plot, dpi=110)
        lines.append(f"\n(plot written to {plot})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per mode (median)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--split", action="store_true", help="also time the C kernel's call alone (default path)")
    parser.add_argument("--train", action="store_true", help="run the training-quality comparison")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per mode")
    parser.add_argument("--plot", default=None, help="write the validation-loss plot (PNG) here")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    print("\n## Memory\n")
    print("\n".join(memory_table()))
    if not args.no_speed:
        print("\n## Speed (median step; ratios to the fp32 step on the same elements)\n")
        print("\n".join(speed_table(args.quick, 3 if args.quick else args.repeats, args.split)))
    if args.train:
        print("\n## Training quality\n")
        print("\n".join(training_report(100 if args.quick else args.steps, args.plot)))
    print(f"\nload at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
