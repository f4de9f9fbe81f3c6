"""Smoke test of benchmarks/bench_lion.py: tiny shapes, no compile, a few seconds; keeps the script from rotting."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from noether.core.optimizer.lion import Lion
from tests.benchmarks.script import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_lion")


def test_quick_run_prints_a_row_per_implementation_and_workload(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    impls = ["AdamW fused", "SGD momentum foreach", "timm-style Lion", "lucidrains-style Lion", "Lion default"]
    argv = ["--quick", "--no-memory", "--workloads", "many,big-bf16", "--impls", ",".join(impls), "--steps", "1"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "streaming bandwidth: copy" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| many") or line.startswith("| big")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [(w, i) for w in ("many", "big-bf16") for i in impls]
    for row in rows:
        median_ms, vs_adamw, vs_timm = (float(row[k]) for k in (2, 3, 4))
        assert median_ms > 0
        # timing-independent checks only (a loaded machine may make any one sample slow)
        assert vs_adamw == 1.0 if row[1].strip() == "AdamW fused" else vs_adamw >= 0
        assert vs_timm == 1.0 if row[1].strip() == "timm-style Lion" else vs_timm >= 0


def test_unknown_names_are_refused(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="unknown implementation"):
        bench.main(["--quick", "--impls", "Lion turbo"])
    with pytest.raises(SystemExit, match="unknown workload"):
        bench.main(["--quick", "--no-memory", "--impls", "Lion default", "--workloads", "huge"])


@pytest.mark.parametrize("style", ["timm", "lucidrains"])
def test_the_baselines_compute_lion(bench: ModuleType, style: str) -> None:
    # The baselines compute m * beta1 + g * (1 - beta1) where noether lerps, so they agree up to rounding, and exactly
    # in the sign for data without near-ties.
    workload = bench.Workload("t", [(64,), (8, 16)], torch.float32)
    ours, theirs = bench.make_params(workload, seed=1), bench.make_params(workload, seed=1)
    opt = Lion(ours, lr=bench.LR, betas=bench.BETAS, weight_decay=bench.WEIGHT_DECAY, foreach=False)
    baseline = bench.TimmStyleLion(theirs) if style == "timm" else bench.LucidrainsStyleLion(theirs)
    for _ in range(3):
        opt.step()
        baseline.step()
    for a, b, m in zip(ours, theirs, baseline.exp_avgs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(opt.state[a]["exp_avg"], m, rtol=1e-5, atol=1e-7)


def test_caution_cost_table_divides_each_path_by_itself(bench: ModuleType) -> None:
    medians = {
        "many": {"Lion default": 4.0, "Lion default +caution": 6.0, "Lion fused": 2.0, "Lion fused +caution": 3.5},
        "big": {"Lion default": 10.0, "Lion default +caution": 25.0},
    }
    lines = bench.caution_report(medians)
    assert lines[1] == "| workload | default | fused |"  # timm-style has no pair here: no column
    assert lines[3:] == ["| many | 1.50 | 1.75 |", "| big | 2.50 | - |"]
    assert bench.caution_report({"many": {"Lion default": 4.0}}) == []
