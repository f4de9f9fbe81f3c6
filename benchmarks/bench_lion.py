"""Time one optimizer step of noether's Lion against torch's AdamW/SGD and timm-/lucidrains-style Lion.

Every figure is measured in the same run on the same parameters and gradients (no backward pass: the step alone):

* workloads: ``many`` (~290 transformer-like fp32 tensors, ~5M elements), ``big`` (10 fp32 tensors of 5M elements),
  ``many-bf16`` (the ``many`` shapes in bfloat16), ``many-small`` (5,000 fp32 tensors of 256 elements, where the
  per-tensor bookkeeping of a step outweighs its arithmetic) and, on request, ``big-bf16``;
* implementations: noether ``Lion`` with ``foreach=False``, ``foreach=True``, the default (on CPU the C kernel where
  it builds) and ``fused=True`` (with and without caution); the timm-style foreach sequence and the lucidrains-style
  per-tensor loop, both written here; torch ``AdamW`` (foreach and fused) and ``SGD`` (momentum, foreach);
* columns: median ms per step, the ratio to torch's fused AdamW and to the timm-style sequence, the effective
  bandwidth (the bytes the update must move: 5 tensor passes for Lion and SGD, 7 for AdamW) against the machine's
  streaming bandwidth (copy and triad measured in this run), the peak transient memory of a step (RSS high-water
  mark above the resident set, measured in a child process with large allocations forced to mmap so a temporary
  shows up as it is allocated), and the first step's time (state creation, and for ``fused=True`` the compile);
* the fused kernel's first step on the ``many`` model, cold (empty inductor cache) and warm (cache filled), each in
  a fresh process.

Usage::

    python benchmarks/bench_lion.py                      # the full table (a few minutes on 2 cores)
    python benchmarks/bench_lion.py --quick              # small shapes, one round: a smoke run
    python benchmarks/bench_lion.py --workloads big --repeats 9 --impls "Lion fused,AdamW fused"
    python benchmarks/bench_lion.py --malloc-tuned       # re-run under MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_

glibc's default allocator maps and unmaps a model-sized temporary at every step (it doubles the timm-style time on
big tensors); ``--malloc-tuned`` re-executes the script with ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=68719476736`` so the baselines can be compared without that handicap.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

try:  # an installed package, or PYTHONPATH=src; else the checkout's src/
    import noether  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from noether.core.optimizer.lion import Lion, dispatch

MALLOC_TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
LR, WEIGHT_DECAY, BETAS = 1e-4, 0.1, (0.9, 0.99)

# ---------------------------------------------------------------------------------------------------------------------
# workloads


def transformer_shapes(d: int = 128, layers: int = 24, vocab: int = 2048, ctx: int = 256) -> list[tuple[int, ...]]:
    """Parameter shapes of a small pre-norm transformer: embeddings, per block 2 norms, qkv, proj, 2 MLP layers."""
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [*shapes, (d,), (d,)]


@dataclass(frozen=True)
class Workload:
    name: str
    shapes: list[tuple[int, ...]]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return sum(torch.Size(s).numel() for s in self.shapes)


def workloads(quick: bool) -> dict[str, Workload]:
    many = transformer_shapes(d=32, layers=4) if quick else transformer_shapes()
    big = [(200, 1000)] * 10 if quick else [(5000, 1000)] * 10
    small = [(256,)] * (500 if quick else 5000)
    return {
        "many": Workload("many", many, torch.float32),
        "big": Workload("big", big, torch.float32),
        "many-bf16": Workload("many-bf16", many, torch.bfloat16),
        "big-bf16": Workload("big-bf16", big, torch.bfloat16),
        "many-small": Workload("many-small", small, torch.float32),
    }


def make_params(workload: Workload, seed: int = 0, device: str = "cpu") -> list[torch.nn.Parameter]:
    """Parameters with fixed random gradients attached (every implementation steps the same tensors)."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in workload.shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=gen).to(device=device, dtype=workload.dtype))
        p.grad = torch.randn(shape, generator=gen).to(device=device, dtype=workload.dtype)
        params.append(p)
    return params


def _synchronizer(device: str) -> Callable[[], None]:
    """Waits for queued device work (timings of asynchronous devices must include it); a no-op on the CPU."""
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


# ---------------------------------------------------------------------------------------------------------------------
# baselines written here (what timm's and lucidrains' Lion compute, in their op sequence; no dependency)


class TimmStyleLion:
    """timm's multi-tensor Lion: a sequence of foreach ops over the whole list (each a pass over memory).

    The direction is computed as ``m * beta1 + g * (1 - beta1)`` into a model-sized temporary, the momentum as
    ``m * beta2 + g * (1 - beta2)``; caution divides a 0/1 mask by its float mean (floored at 1e-3).
    """

    def __init__(self, params: Sequence[Tensor], caution: bool = False) -> None:
        self.params = list(params)
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.caution = caution

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = BETAS
        grads = [p.grad for p in self.params if p.grad is not None]
        torch._foreach_mul_(self.params, 1 - LR * WEIGHT_DECAY)
        updates = torch._foreach_mul(self.exp_avgs, beta1)
        torch._foreach_add_(updates, grads, alpha=1 - beta1)
        torch._foreach_sign_(updates)
        if self.caution:
            masks = torch._foreach_mul(updates, grads)
            masks = [(m > 0).to(g.dtype) for m, g in zip(masks, grads, strict=True)]
            scales = [m.mean() for m in masks]
            torch._foreach_maximum_(scales, 1e-3)
            torch._foreach_div_(masks, scales)
            torch._foreach_mul_(updates, masks)
        torch._foreach_add_(self.params, updates, alpha=-LR)
        torch._foreach_mul_(self.exp_avgs, beta2)
        torch._foreach_add_(self.exp_avgs, grads, alpha=1 - beta2)


class LucidrainsStyleLion:
    """lucidrains' lion-pytorch: a Python loop over parameters; the direction from a clone of the momentum."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = BETAS
        for p, m in zip(self.params, self.exp_avgs, strict=True):
            g = p.grad
            if g is None:
                continue
            p.mul_(1 - LR * WEIGHT_DECAY)
            update = m.clone().mul_(beta1).add(g, alpha=1 - beta1).sign_()
            p.add_(update, alpha=-LR)
            m.mul_(beta2).add_(g, alpha=1 - beta2)


# ---------------------------------------------------------------------------------------------------------------------
# implementations


@dataclass(frozen=True)
class Impl:
    name: str
    make: Callable[[list[torch.nn.Parameter]], Callable[[], object]]
    passes: int  # tensor-sized reads + writes the update needs at minimum (for the effective bandwidth)


def _lion(**kwargs: object) -> Callable[[list[torch.nn.Parameter]], Callable[[], object]]:
    return lambda params: Lion(params, lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, **kwargs).step  # type: ignore[arg-type]


def _lion_inductor(**kwargs: object) -> Callable[[list[torch.nn.Parameter]], Callable[[], object]]:
    """``Lion(..., fused=True)`` with the inductor kernel on CPU too (``NOETHER_FUSED_LION_CPU=inductor``)."""

    def make(params: list[torch.nn.Parameter]) -> Callable[[], object]:
        step = Lion(params, lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, fused=True, **kwargs).step  # type: ignore[arg-type]

        def run() -> object:
            saved, dispatch._CPU_KERNEL = dispatch._CPU_KERNEL, "inductor"
            try:
                return step()
            finally:
                dispatch._CPU_KERNEL = saved

        return run

    return make


IMPLS: list[Impl] = [
    Impl("AdamW fused", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=WEIGHT_DECAY, fused=True).step, 7),
    Impl("AdamW foreach", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=WEIGHT_DECAY, foreach=True).step, 7),
    Impl("SGD momentum foreach", lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9, foreach=True).step, 5),
    Impl("timm-style Lion", lambda ps: TimmStyleLion(ps).step, 5),
    Impl("lucidrains-style Lion", lambda ps: LucidrainsStyleLion(ps).step, 5),
    Impl("Lion foreach=False", _lion(foreach=False), 5),
    Impl("Lion foreach=True", _lion(foreach=True), 5),
    Impl("Lion default", _lion(), 5),
    Impl("Lion fused", _lion(fused=True), 5),
    Impl("Lion fused (inductor)", _lion_inductor(), 5),
    Impl("timm-style Lion +caution", lambda ps: TimmStyleLion(ps, caution=True).step, 5),
    Impl("Lion foreach=True +caution", _lion(foreach=True, caution=True), 5),
    Impl("Lion default +caution", _lion(caution=True), 5),
    Impl("Lion fused +caution", _lion(fused=True, caution=True), 5),
    Impl("Lion fused (inductor) +caution", _lion_inductor(caution=True), 5),
]


# ---------------------------------------------------------------------------------------------------------------------
# measurements


def _median_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def stream_bandwidth(numel: int, device: str = "cpu") -> dict[str, float]:
    """Copy (8 bytes per fp32 element) and triad (12) bandwidth in GB/s over arrays far larger than the caches."""
    a, b, c = (torch.rand(numel, device=device) for _ in range(3))
    sync = _synchronizer(device)
    for _ in range(2):
        c.copy_(a)
        torch.add(a, b, alpha=3.0, out=c)
    sync()
    copy = _median_seconds(lambda: c.copy_(a), 9, sync)
    triad = _median_seconds(lambda: torch.add(a, b, alpha=3.0, out=c), 9, sync)
    return {"copy": 8 * numel / copy / 1e9, "triad": 12 * numel / triad / 1e9}


@dataclass
class Result:
    first_step_s: float
    samples: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1e3


def time_workload(
    workload: Workload, impls: list[Impl], rounds: int, steps_per_round: int, device: str = "cpu"
) -> dict[str, Result]:
    """Median step time of each implementation; rounds interleave them so load changes hit all alike."""
    params = make_params(workload, device=device)
    sync = _synchronizer(device)
    steps: dict[str, Callable[[], object]] = {}
    results: dict[str, Result] = {}
    for impl in impls:
        step = impl.make(params)
        sync()
        start = time.perf_counter()
        step()
        sync()
        results[impl.name] = Result(first_step_s=time.perf_counter() - start)
        step()
        steps[impl.name] = step
    for _ in range(rounds):
        for impl in impls:
            step = steps[impl.name]
            sync()
            for _ in range(steps_per_round):
                start = time.perf_counter()
                step()
                sync()
                results[impl.name].samples.append(time.perf_counter() - start)
    return results


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        match = re.search(key + r":\s+(\d+) kB", fh.read())
    return int(match.group(1)) * 1024 if match else 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def transient_memory(workload: Workload, impls: list[Impl]) -> dict[str, float]:
    """Peak RSS above the resident set during one (not the first) step, per implementation, in MB (Linux only).

    Meant for a child process: large allocations are forced to mmap and freed memory is returned at once, so the
    high-water mark sees each temporary.
    """
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 16)
    libc.mallopt(m_trim_threshold, 1 << 16)
    params = make_params(workload)
    out: dict[str, float] = {}
    for impl in impls:
        step = impl.make(params)
        step()
        step()
        if not _reset_peak_rss():
            return {}
        base = _status_bytes("VmRSS")
        step()
        out[impl.name] = max(0, _status_bytes("VmHWM") - base) / 1e6
    return out


def cuda_transient_memory(workload: Workload, impls: list[Impl], device: str) -> dict[str, float]:
    """Peak allocated device memory above the allocated set during one (not the first) step, in MB."""
    params = make_params(workload, device=device)
    out: dict[str, float] = {}
    for impl in impls:
        step = impl.make(params)
        step()
        step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        out[impl.name] = (torch.cuda.max_memory_allocated() - base) / 1e6
    return out


def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def first_step_child(workload: Workload, caution: bool) -> float:
    params = make_params(workload)
    opt = Lion(params, lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, caution=caution, fused=True)
    start = time.perf_counter()
    opt.step()
    return time.perf_counter() - start


def compile_times(quick: bool) -> dict[str, float]:
    """First fused step on the ``many`` model in fresh processes, per CPU kernel: empty caches, then filled ones."""
    out: dict[str, float] = {}
    for kernel in ("c", "inductor"):
        with tempfile.TemporaryDirectory(prefix="noether-bench-cache-") as cache:
            env = {
                **os.environ,
                "TORCHINDUCTOR_CACHE_DIR": str(Path(cache) / "inductor"),
                "NOETHER_CACHE_DIR": str(Path(cache) / "noether"),
                "NOETHER_FUSED_LION_CPU": kernel,
            }
            flags = ["--quick"] if quick else []
            for label in ("cold", "warm"):
                result = _child([*flags, "--_child", "first-step"], env)
                out[f"{kernel} {label}"] = float(result["seconds"])  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# report


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(
    workload: Workload, impls: list[Impl], results: dict[str, Result], stream: float, memory: dict[str, float]
) -> list[str]:
    base = results.get("AdamW fused")
    timm = results.get("timm-style Lion")
    itemsize = torch.empty((), dtype=workload.dtype).element_size()
    lines = []
    for impl in impls:
        r = results[impl.name]
        ms = r.median_ms
        gbs = impl.passes * itemsize * workload.numel / (ms / 1e3) / 1e9
        lines.append(
            f"| {workload.name} | {impl.name} | {ms:.2f} | {_fmt(base and ms / base.median_ms, '.2f')} "
            f"| {_fmt(timm and ms / timm.median_ms, '.2f')} | {gbs:.1f} | {100 * gbs / stream:.0f}% "
            f"| {_fmt(memory.get(impl.name), '.1f')} | {r.first_step_s:.2f} |"
        )
    return lines


CAUTION_PAIRS = [
    ("timm-style", "timm-style Lion", "timm-style Lion +caution"),
    ("foreach=True", "Lion foreach=True", "Lion foreach=True +caution"),
    ("default", "Lion default", "Lion default +caution"),
    ("fused", "Lion fused", "Lion fused +caution"),
    ("fused (inductor)", "Lion fused (inductor)", "Lion fused (inductor) +caution"),
]


def caution_report(medians: dict[str, dict[str, float]]) -> list[str]:
    """What caution costs on each path: median with caution / median without, per workload (the 1.5x target)."""
    paths = [p for p in CAUTION_PAIRS if any(p[1] in ms and p[2] in ms for ms in medians.values())]
    if not paths:
        return []
    lines = [
        "\ncaution cost (median with caution / without, same path; target <= 1.5):\n",
        "| workload | " + " | ".join(label for label, _, _ in paths) + " |",
        "|---|" + "---|" * len(paths),
    ]
    for workload, ms in medians.items():
        ratios = [_fmt(ms[on] / ms[off] if on in ms and off in ms else None, ".2f") for _, off, on in paths]
        lines.append(f"| {workload} | " + " | ".join(ratios) + " |")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, one round, no compile-time children")
    parser.add_argument(
        "--workloads", default="many,big,many-bf16,many-small", help="many,big,many-bf16,big-bf16,many-small"
    )
    parser.add_argument("--impls", default="", help="comma-separated implementation names (default: all)")
    parser.add_argument("--repeats", type=int, default=0, help="interleaved rounds (default 7, quick 1)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per round (default 3, quick 2)")
    parser.add_argument("--no-memory", action="store_true", help="skip the transient-memory child processes")
    parser.add_argument("--no-compile-time", action="store_true", help="skip the cold/warm compile measurement")
    parser.add_argument("--malloc-tuned", action="store_true", help="re-run under " + " ".join(MALLOC_TUNED_ENV))
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="where the parameters live, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--_child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--_workload", default="many", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.malloc_tuned and any(os.environ.get(k) != v for k, v in MALLOC_TUNED_ENV.items()):
        argv_rest = [a for a in (sys.argv[1:] if argv is None else list(argv)) if a != "--malloc-tuned"]
        env = {**os.environ, **MALLOC_TUNED_ENV}
        return subprocess.call([sys.executable, str(Path(__file__).resolve()), *argv_rest], env=env)
    if args.threads:
        torch.set_num_threads(args.threads)
    all_workloads = workloads(args.quick)
    names = [n.strip() for n in args.impls.split(",") if n.strip()]
    unknown = sorted(set(names) - {i.name for i in IMPLS})
    if unknown:
        raise SystemExit(f"unknown implementation(s) {unknown}; choose from {[i.name for i in IMPLS]}")
    impls = [i for i in IMPLS if not names or i.name in names]

    if args._child == "first-step":
        print(json.dumps({"seconds": first_step_child(all_workloads["many"], caution=False)}))
        return 0
    if args._child == "memory":
        print(json.dumps(transient_memory(all_workloads[args._workload], impls)))
        return 0

    selected = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = sorted(set(selected) - set(all_workloads))
    if bad:
        raise SystemExit(f"unknown workload(s) {bad}; choose from {sorted(all_workloads)}")
    rounds = args.repeats or (1 if args.quick else 7)
    steps = args.steps or (2 if args.quick else 3)
    malloc = " ".join(f"{k}={os.environ[k]}" for k in MALLOC_TUNED_ENV if k in os.environ) or "glibc defaults"
    print(f"# Lion step benchmark ({'quick' if args.quick else 'full'})")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"device: {args.device}, malloc: {malloc}, load average at start: {_load()}"
    )
    bandwidth = stream_bandwidth(1 << 20 if args.quick else 1 << 25, args.device)
    stream = max(bandwidth.values())
    print(f"streaming bandwidth: copy {bandwidth['copy']:.1f} GB/s, triad {bandwidth['triad']:.1f} GB/s")
    print(f"timing: median of {rounds} interleaved rounds x {steps} steps per implementation\n")
    print(
        "| workload | implementation | median ms | vs AdamW fused | vs timm-style | GB/s | % of stream "
        "| peak transient MB | first step s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    medians: dict[str, dict[str, float]] = {}
    for name in selected:
        workload = all_workloads[name]
        results = time_workload(workload, impls, rounds, steps, args.device)
        medians[name] = {impl: result.median_ms for impl, result in results.items()}
        memory: dict[str, float] = {}
        if args.device.startswith("cuda") and not args.no_memory:
            memory = cuda_transient_memory(workload, impls, args.device)
        elif not args.no_memory:
            flags = ["--quick"] if args.quick else []
            child_args = [*flags, "--_child", "memory", "--_workload", name, "--impls", ",".join(i.name for i in impls)]
            memory = {k: float(v) for k, v in _child(child_args).items()}  # type: ignore[arg-type]
        for line in report(workload, impls, results, stream, memory):
            print(line, flush=True)
    for line in caution_report(medians):
        print(line)
    wants_fused = any("fused" in i.name and "Lion" in i.name for i in impls)
    if not args.no_compile_time and not args.quick and args.device == "cpu" and wants_fused:
        times = compile_times(args.quick)
        n = len(all_workloads["many"].shapes)
        print(
            f"\nfused Lion first step on the {n}-tensor model (fresh processes): C kernel {times['c cold']:.1f} s "
            f"with empty caches, {times['c warm']:.1f} s with filled ones; inductor kernel "
            f"{times['inductor cold']:.1f} s and {times['inductor warm']:.1f} s"
        )
    print(f"load average at end: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
