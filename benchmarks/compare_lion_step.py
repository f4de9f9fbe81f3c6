"""Time ``Lion``'s default step of two source trees against each other, in one run, on one workload.

Each round runs one fresh process per tree, back to back (the order alternates between rounds), so both see the same
machine load; a process times ``--steps`` steps after two warm-up steps (and, in a tree that has one, after loading
the compiled step check, which steps otherwise load in the background) and reports their median. The summary is the
median over rounds per tree and the ratio of the second to the first.

Usage::

    python benchmarks/compare_lion_step.py --before /path/to/old/src --after src --workload many-small
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "many-small": ([(256,)] * 5000, "float32"),
    "many": (None, "float32"),  # the transformer shapes of bench_lion.py
}

_CHILD = r"""
import json, statistics, sys, time
import torch
from noether.core.optimizer.lion import Lion

shapes, dtype, steps, caution, threads = json.loads(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
params = [torch.nn.Parameter(torch.randn(s, dtype=getattr(torch, dtype))) for s in shapes]
for p in params:
    p.grad = torch.randn_like(p)
opt = Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1, caution=caution)
opt.step()
try:  # a tree with the compiled step check: time the steady state, not the steps before its background load
    from noether.core.optimizer.lion import step_check
    step_check.load()
except ImportError:
    pass
opt.step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    opt.step()
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times) * 1e3))
"""


def _transformer_shapes(d: int = 128, layers: int = 24, vocab: int = 2048, ctx: int = 256) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [*shapes, (d,), (d,)]


def _run(src: str, payload: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    out = subprocess.run([sys.executable, "-c", _CHILD, payload], env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="source folder of the baseline (holds noether/)")
    parser.add_argument("--after", required=True, help="source folder to compare (holds noether/)")
    parser.add_argument("--workload", default="many-small", choices=sorted(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--caution", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in the children (0: torch's default); 1 keeps the "
        "comparison about the per-step bookkeeping, which runs on one thread either way",
    )
    args = parser.parse_args(argv)
    shapes, dtype = WORKLOADS[args.workload]
    payload = json.dumps([shapes or _transformer_shapes(), dtype, args.steps, args.caution, args.threads])
    results: dict[str, list[float]] = {"before": [], "after": []}
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for name in order:
            results[name].append(_run(getattr(args, name), payload))
    before, after = (statistics.median(results[k]) for k in ("before", "after"))
    print(
        f"# Lion default step, workload {args.workload}, caution={args.caution}, "
        f"torch threads {args.threads or 'default'}"
    )
    print(f"before ({args.before}): median {before:.2f} ms  rounds {[round(x, 2) for x in results['before']]}")
    print(f"after  ({args.after}): median {after:.2f} ms  rounds {[round(x, 2) for x in results['after']]}")
    print(f"after / before = {after / before:.2f}   ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
