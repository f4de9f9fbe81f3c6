"""Lion on one CUDA GPU: every CUDA path checked against the reference, then timed against torch's fused AdamW.

One command, a few minutes (under 4 on one GPU)::

    pip install --no-deps -e .          # the GPU machine keeps its own torch and triton
    python benchmarks/bench_lion_gpu.py                 # prints the table, writes bench_lion_gpu.json
    python benchmarks/bench_lion_gpu.py --quick         # small shapes: a smoke run of the script itself

What it does, in one process:

1. Correctness: on ragged small tensors (sizes across the Triton kernel's block boundaries, 0-size and 1-element
   ones) in float32, bfloat16 and float16, and in the low-precision modes (bfloat16 parameters with Kahan
   compensation, float32 parameters with a bfloat16 momentum: :data:`MODES`), with and without caution, maximize and
   weight decay, a float and a tensor lr, each CUDA path (``foreach=False``, ``foreach=True``, the default,
   ``fused=True`` with the Triton kernel and with the inductor kernel) takes one step, compared with the reference
   kernel run on the CPU on the same values. The bound, from the dtype: ``exp_avg`` within one rounding of the
   momentum update in its dtype, ``eps * (|m| + |g|)``; parameters and compensations bit-equal, except where the
   direction is within a few float32 roundings of zero (then by at most ``2 * step``).
2. Bandwidth: a device-to-device copy of 1 GiB, timed the same way (8 bytes per float32 element moved).
3. Timing: the ``many``, ``big``, ``many-bf16`` and ``big-bf16`` workloads of ``bench_lion.py``, for ``Lion
   foreach=True``, ``Lion fused`` (Triton), ``Lion fused (inductor)``, torch's ``AdamW fused`` and the timm-style
   foreach Lion of ``bench_lion.py`` (plus the caution variants of the two Lion kernels, and the low-precision modes:
   Kahan compensation on the bfloat16 workloads, a bfloat16 momentum on the float32 ones): the median time of a step
   (wall clock around the step and a device synchronisation, so launch overhead counts), its ratio to AdamW fused
   and to Lion foreach (both in the workload's dtype, Lion without compensation), and the effective bandwidth (the
   bytes the update must move: 5 tensor passes for Lion, 7 with Kahan compensation or for AdamW, 16 bytes per element
   for float32 parameters with a bfloat16 momentum) as a share of the measured copy bandwidth.

The targets: the Triton kernel at most 0.75x the time of torch's fused AdamW on ``big``, and at least 80% of the copy
bandwidth there. The table ends with whether they are met.

Exit status: 0 when every path agrees with the reference (whatever the timings); 1 when a path exceeds the bound;
2 when there is no CUDA device (with a message on stderr; nothing is measured); 3 when Triton is not installed.
Needs torch, triton, numpy and pydantic only (and the project, e.g. installed with ``pip install --no-deps``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

try:  # an installed package, or PYTHONPATH=src; else the checkout's src/
    import noether  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lion import BETAS, LR, WEIGHT_DECAY, TimmStyleLion, Workload, make_params, workloads
from noether.core.optimizer.lion import Lion, dispatch, triton_kernel
from noether.core.optimizer.lion.reference import _single_tensor_lion

EXIT_OK, EXIT_MISMATCH, EXIT_NO_CUDA, EXIT_NO_TRITON = 0, 1, 2, 3
EPS32 = torch.finfo(torch.float32).eps
CHECK_SHAPES = [(0,), (1,), (15,), (4095,), (4096,), (4097,), (3, 1000), (9000,), (2, 3, 5, 7)]
"""Sizes around the Triton kernel's block (4096 elements) and vector width, and a 4-d tensor."""

# ---------------------------------------------------------------------------------------------------------------------
# correctness


def _with_cuda_kernel(backend: str, fn: Callable[[], object]) -> object:
    """Run ``fn`` with ``fused=True`` on CUDA served by ``backend`` (``"triton"`` or ``"inductor"``)."""
    saved, dispatch._CUDA_KERNEL = dispatch._CUDA_KERNEL, backend
    try:
        return fn()
    finally:
        dispatch._CUDA_KERNEL = saved


PATHS: dict[str, dict[str, Any]] = {
    "foreach=False": {"foreach": False},
    "foreach=True": {"foreach": True},
    "default": {},
    "fused (Triton)": {"fused": True, "_backend": "triton"},
    "fused (inductor)": {"fused": True, "_backend": "inductor"},
}


def _step(
    path: str,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    hyper: dict[str, Any],
    comps: list[Tensor] | None = None,
) -> None:
    options = dict(PATHS[path])
    backend = options.pop("_backend", "triton")
    _with_cuda_kernel(
        backend,
        lambda: dispatch.lion(params, grads, exp_avgs, **hyper, **options, kahan_comps=comps),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Mode:
    """Parameter dtype, momentum dtype and Kahan compensation of one correctness check."""

    dtype: torch.dtype
    momentum_dtype: torch.dtype
    kahan: bool = False

    @property
    def name(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        if self.momentum_dtype is not self.dtype:
            name += f" (momentum {str(self.momentum_dtype).removeprefix('torch.')})"
        return name + (" +Kahan" if self.kahan else "")


MODES = [
    Mode(torch.float32, torch.float32),
    Mode(torch.bfloat16, torch.bfloat16),
    Mode(torch.float16, torch.float16),
    Mode(torch.bfloat16, torch.bfloat16, kahan=True),
    Mode(torch.float32, torch.bfloat16),
]


def check_path(
    path: str, device: str, dtype: torch.dtype | Mode, hyper: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    """One step of ``path`` on ``device`` against the CPU reference; returns the deviations and whether they pass.

    ``dtype``: the parameters' dtype (momentum alike, no compensation), or a :class:`Mode`.
    """
    mode = dtype if isinstance(dtype, Mode) else Mode(dtype, dtype)
    gen = torch.Generator().manual_seed(seed)
    ps, gs = ([torch.randn(s, generator=gen).to(mode.dtype) for s in CHECK_SHAPES] for _ in range(2))
    ms = [torch.randn(s, generator=gen).to(mode.momentum_dtype) for s in CHECK_SHAPES]
    cs: list[Tensor] | None = None
    if mode.kahan:
        # Compensations as a run leaves them: the rounding error of a float32 weight near p (at most half an ulp).
        xs = [p.float() * (1 + torch.randn(p.shape, generator=gen) * torch.finfo(mode.dtype).eps) for p in ps]
        ps = [x.to(mode.dtype) for x in xs]
        cs = [(x - p.float()).to(mode.dtype) for x, p in zip(xs, ps, strict=True)]
    ref_p, ref_m = [p.clone() for p in ps], [m.clone() for m in ms]
    ref_c = None if cs is None else [c.clone() for c in cs]
    cpu_hyper = {**hyper, "lr": hyper["lr"].cpu() if isinstance(hyper["lr"], Tensor) else hyper["lr"]}
    _single_tensor_lion(ref_p, gs, ref_m, **cpu_hyper, kahan_comps=ref_c)
    dev_p, dev_g, dev_m = ([t.to(device) for t in ts] for ts in (ps, gs, ms))
    dev_c = None if cs is None else [c.to(device) for c in cs]
    _step(path, dev_p, dev_g, dev_m, hyper, dev_c)
    eps = torch.finfo(mode.momentum_dtype).eps
    w1 = torch.tensor(1.0 - hyper["beta1"], dtype=torch.float32).double()
    p_mismatch = m_excess = ties = 0
    max_p_diff = max_m_ratio = 0.0
    # Compensations are compared like parameters: bit-equal wherever the direction is not a near tie.
    ref_pc = ref_p if ref_c is None else [p.double() + c.double() for p, c in zip(ref_p, ref_c, strict=True)]
    dev_pc = dev_p if dev_c is None else [p.double() + c.double() for p, c in zip(dev_p, dev_c, strict=True)]
    c_pairs = [] if ref_c is None or dev_c is None else list(zip(ref_c, dev_c, strict=True))
    for i, (g, m0, rp, rm, dp, dm) in enumerate(zip(gs, ms, ref_pc, ref_m, dev_pc, dev_m, strict=True)):
        g64 = -g.double() if hyper["maximize"] else g.double()
        d = m0.double() + w1 * (g64 - m0.double())
        tie = (d.abs() <= 4 * EPS32 * (m0.double().abs() + g64.abs())) & (d != 0)
        ties += int(tie.sum())
        p_diff = (dp.cpu().double() - rp.double()).abs().nan_to_num()
        if c_pairs:  # the split between p and c must match too, not only their sum
            rc, dc = c_pairs[i]
            p_diff = torch.maximum(p_diff, (dc.cpu().double() - rc.double()).abs().nan_to_num())
        step_bound = 2 * float(hyper["lr"]) / 1e-3 if hyper["caution"] else 2 * float(hyper["lr"])
        bad_p = (p_diff > 0) & ~tie
        if hyper["caution"] and tie.any():
            bad_p = p_diff > step_bound  # the tensor's count, hence every element's step, may move
        p_mismatch += int((bad_p | (p_diff > step_bound)).sum())
        max_p_diff = max(max_p_diff, float(p_diff.max()) if p_diff.numel() else 0.0)
        tol = eps * (m0.double().abs() + g.double().abs())
        m_diff = (dm.cpu().double() - rm.double()).abs().nan_to_num()
        m_excess += int((m_diff > tol).sum())
        if m_diff.numel():
            max_m_ratio = max(max_m_ratio, float((m_diff / tol.clamp_min(1e-45)).max()))
    return {
        "path": path,
        "dtype": mode.name,
        "options": {k: (float(v) if isinstance(v, Tensor) else v) for k, v in hyper.items()},
        "tensor_lr": isinstance(hyper["lr"], Tensor),
        "param_mismatches": p_mismatch,
        "max_param_diff": max_p_diff,
        "exp_avg_beyond_bound": m_excess,
        "max_exp_avg_diff_in_bounds": max_m_ratio,
        "near_zero_directions": ties,
        "ok": p_mismatch == 0 and m_excess == 0,
    }


def check_correctness(device: str, paths: Sequence[str]) -> list[dict[str, Any]]:
    """Every path in every mode and option combination (see the module docstring)."""
    results = []
    for mode in MODES:
        for caution in (False, True):
            for maximize, weight_decay in ((False, 0.1), (True, 0.0)):
                for tensor_lr in (False, True):
                    lr: float | Tensor = torch.tensor(0.01, device=device) if tensor_lr else 0.01
                    hyper = {
                        "beta1": 0.9,
                        "beta2": 0.99,
                        "lr": lr,
                        "weight_decay": weight_decay,
                        "caution": caution,
                        "maximize": maximize,
                    }
                    results.extend(check_path(path, device, mode, hyper) for path in paths)
    return results


# ---------------------------------------------------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Impl:
    name: str
    make: Callable[[list[torch.nn.Parameter]], Callable[[], object]]
    passes: float  # reads + writes the update needs at minimum, in units of the workload's element size
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)  # workloads it runs on


def _lion(backend: str = "triton", **kwargs: Any) -> Callable[[list[torch.nn.Parameter]], Callable[[], object]]:
    """Lion with ``kwargs``; without compensation unless ``kahan_sum=True`` (its default is on for 16-bit weights)."""
    kwargs.setdefault("kahan_sum", False)

    def make(params: list[torch.nn.Parameter]) -> Callable[[], object]:
        opt = Lion(params, lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, **kwargs)
        return lambda: _with_cuda_kernel(backend, opt.step)

    return make


IMPLS = [
    Impl("AdamW fused", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=WEIGHT_DECAY, fused=True).step, 7),
    Impl("timm-style Lion", lambda ps: TimmStyleLion(ps).step, 5),
    Impl("Lion foreach=True", _lion(foreach=True), 5),
    Impl("Lion fused (Triton)", _lion(fused=True), 5),
    Impl("Lion fused (inductor)", _lion("inductor", fused=True), 5),
    Impl("Lion foreach=True +caution", _lion(foreach=True, caution=True), 5),
    Impl("Lion fused (Triton) +caution", _lion(fused=True, caution=True), 5),
    # Low-precision modes: bfloat16 weights with Kahan compensation (14 bytes per element), float32 weights with a
    # bfloat16 momentum (16 bytes per element: 4 passes of float32).
    Impl("Lion foreach=True +Kahan", _lion(foreach=True, kahan_sum=True), 7, (torch.bfloat16, torch.float16)),
    Impl("Lion fused (Triton) +Kahan", _lion(fused=True, kahan_sum=True), 7, (torch.bfloat16, torch.float16)),
    Impl("Lion foreach=True momentum bf16", _lion(foreach=True, momentum_dtype=torch.bfloat16), 4, (torch.float32,)),
    Impl("Lion fused (Triton) momentum bf16", _lion(fused=True, momentum_dtype=torch.bfloat16), 4, (torch.float32,)),
]


def copy_bandwidth(device: str, numel: int) -> float:
    """GB/s of a device-to-device copy of ``numel`` float32 elements (read + write: 8 bytes per element)."""
    a = torch.rand(numel, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    seconds = median_seconds(lambda: b.copy_(a), 15)
    return 8 * numel / seconds / 1e9


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_workload(workload: Workload, impls: Sequence[Impl], device: str, rounds: int, steps: int) -> dict[str, Any]:
    """Per implementation: first step (compile included) and the median step over interleaved rounds."""
    params = make_params(workload, device=device)
    runs: dict[str, Callable[[], object]] = {}
    first: dict[str, float] = {}
    for impl in impls:
        step = impl.make(params)
        first[impl.name] = median_seconds(step, 1)
        for _ in range(2):
            step()
        runs[impl.name] = step
    samples: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for _ in range(rounds):
        for impl in impls:
            samples[impl.name].append(median_seconds(runs[impl.name], steps))
    del params
    torch.cuda.empty_cache()
    return {name: {"median_ms": statistics.median(s) * 1e3, "first_step_s": first[name]} for name, s in samples.items()}


def table(
    name: str, workload: Workload, impls: Sequence[Impl], timings: dict[str, Any], copy_gbs: float
) -> list[dict[str, Any]]:
    elem = torch.empty((), dtype=workload.dtype).element_size()
    adamw = timings["AdamW fused"]["median_ms"]
    foreach = timings["Lion foreach=True"]["median_ms"]
    rows = []
    for impl in impls:
        ms = timings[impl.name]["median_ms"]
        gbs = impl.passes * elem * workload.numel / (ms / 1e3) / 1e9
        rows.append(
            {
                "workload": name,
                "implementation": impl.name,
                "median_ms": ms,
                "vs_adamw_fused": ms / adamw,
                "vs_lion_foreach": ms / foreach,
                "gb_per_s": gbs,
                "pct_of_copy": 100 * gbs / copy_gbs,
                "first_step_s": timings[impl.name]["first_step_s"],
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes and few repeats (a smoke run)")
    parser.add_argument("--workloads", default="many,big,many-bf16,big-bf16", help="comma-separated workload names")
    parser.add_argument("--device", default="cuda", help="the CUDA device (default cuda)")
    parser.add_argument("--json", default="bench_lion_gpu.json", help="where to write the results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(
            f"bench_lion_gpu: no CUDA device (torch {torch.__version__}, built with CUDA {torch.version.cuda}): this "
            f"benchmark measures Lion's CUDA kernels and needs a GPU; nothing was measured (exit {EXIT_NO_CUDA})",
            file=sys.stderr,
        )
        return EXIT_NO_CUDA
    if not triton_kernel.TRITON_AVAILABLE:
        print(
            f"bench_lion_gpu: the 'triton' package is not installed (pip install triton, the version your torch "
            f"pins); nothing was measured (exit {EXIT_NO_TRITON})",
            file=sys.stderr,
        )
        return EXIT_NO_TRITON
    start = time.perf_counter()
    device = args.device
    all_workloads = workloads(args.quick)
    selected = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = sorted(set(selected) - set(all_workloads))
    if bad:
        raise SystemExit(f"unknown workload(s) {bad}; choose from {sorted(all_workloads)}")
    name = torch.cuda.get_device_name(device)
    print(f"# Lion on the GPU: {name}")
    triton_version = importlib.metadata.version("triton")
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton_version}, {platform.node()}")

    checks = check_correctness(device, list(PATHS))
    failed = [c for c in checks if not c["ok"]]
    print(f"\ncorrectness: {len(checks) - len(failed)}/{len(checks)} path/dtype/option combinations within the bound")
    for c in failed:
        print(
            f"  FAILED {c['path']} {c['dtype']} {c['options']}: {c['param_mismatches']} params, "
            f"{c['exp_avg_beyond_bound']} exp_avg entries beyond the bound"
        )

    copy_gbs = copy_bandwidth(device, 1 << 24 if args.quick else 1 << 28)
    print(f"device copy bandwidth: {copy_gbs:.0f} GB/s\n")
    rounds, steps = (2, 3) if args.quick else (5, 10)
    rows: list[dict[str, Any]] = []
    print(
        "| workload | implementation | median ms | vs AdamW fused | vs Lion foreach | GB/s | % of copy | first step s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for wname in selected:
        workload = all_workloads[wname]
        impls = [impl for impl in IMPLS if workload.dtype in impl.dtypes]
        timings = time_workload(workload, impls, device, rounds, steps)
        for row in table(wname, workload, impls, timings, copy_gbs):
            rows.append(row)
            print(
                f"| {wname} | {row['implementation']} | {row['median_ms']:.3f} | {row['vs_adamw_fused']:.2f} "
                f"| {row['vs_lion_foreach']:.2f} | {row['gb_per_s']:.0f} | {row['pct_of_copy']:.0f} "
                f"| {row['first_step_s']:.2f} |",
                flush=True,
            )
    targets: dict[str, Any] = {}
    big = {r["implementation"]: r for r in rows if r["workload"] == "big"}
    if "Lion fused (Triton)" in big:
        triton_row = big["Lion fused (Triton)"]
        targets = {
            "triton_vs_adamw_fused_big": triton_row["vs_adamw_fused"],
            "triton_pct_of_copy_big": triton_row["pct_of_copy"],
            "met": triton_row["vs_adamw_fused"] <= 0.75 and triton_row["pct_of_copy"] >= 80,
        }
        print(
            f"\ntargets on big (Triton <= 0.75x AdamW fused, >= 80% of copy): {triton_row['vs_adamw_fused']:.2f}x, "
            f"{triton_row['pct_of_copy']:.0f}% -> {'met' if targets['met'] else 'MISSED'}"
        )
    elapsed = time.perf_counter() - start
    print(f"total {elapsed:.0f} s")
    result = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton_version,
        "quick": args.quick,
        "copy_gb_per_s": copy_gbs,
        "correctness": checks,
        "rows": rows,
        "targets": targets,
        "seconds": elapsed,
    }
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return EXIT_MISMATCH if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
