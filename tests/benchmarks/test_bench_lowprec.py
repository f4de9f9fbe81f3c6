"""Smoke test of benchmarks/bench_lowprec.py: its memory table and a short training run; keeps the script working."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from tests.benchmarks.script import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_lowprec")


def test_memory_table_measures_the_documented_bytes_per_param(bench: ModuleType) -> None:
    rows = "\n".join(bench.memory_table())
    for mode, value in (("fp32", "8.00"), ("bf16", "4.00"), ("bf16+kahan", "6.00"), ("fp32+bf16m", "6.00")):
        assert f"| Lion {mode} | {value} |" in rows
    assert "| AdamW fp32 (fused) | 12.00 |" in rows


def test_short_training_run_gives_a_curve_per_mode(bench: ModuleType) -> None:
    curve = bench.train_mode("bf16+kahan", steps=20)
    assert curve[0][0] == 0 and curve[-1][0] == 20
    assert curve[-1][1] < curve[0][1]  # it learns


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view({2: torch.int16, 4: torch.int32}[t.element_size()])


@pytest.mark.parametrize("mode", ["fp32", "bf16", "bf16+kahan", "fp32+bf16m"])
def test_kernel_alone_does_the_work_of_a_step(bench: ModuleType, mode: str) -> None:
    """The split times the very update a step makes: the kernel's call alone leaves the bits a full step leaves."""
    shapes = bench.workloads(quick=True)["many"]
    stepped, stepped_params = bench.make_optimizer(shapes, mode, None)
    alone, alone_params = bench.make_optimizer(shapes, mode, None)
    run = bench.kernel_alone(alone)
    if run is None:
        pytest.skip("the C kernel cannot be built here")
    before = [p.detach().clone() for p in alone_params]
    stepped.step()
    run()
    assert any(not torch.equal(p, b) for p, b in zip(alone_params, before, strict=True))  # it did update
    for p, q in zip(stepped_params, alone_params, strict=True):
        assert torch.equal(_bits(p), _bits(q))
        for key, value in stepped.state[p].items():
            assert torch.equal(_bits(value), _bits(alone.state[q][key])), key


def test_speed_table_splits_the_default_path(bench: ModuleType) -> None:
    lines = bench.speed_table(quick=True, repeats=2, split=True)
    rows = [line for line in lines if line.startswith(("| big |", "| many |"))]
    split = [line for line in rows if line.count(" / ") == 3]  # the rest of each mode's step, fp32 / ... / fp32+bf16m
    assert len(rows) == 6  # two workloads x (default, fused) + two split rows
    assert [line.split(" | ")[0] for line in split] == ["| big", "| many"]
