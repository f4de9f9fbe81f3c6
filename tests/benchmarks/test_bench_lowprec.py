"""Smoke test of benchmarks/bench_lowprec.py: its memory table and a short training run; keeps the script working."""

from __future__ import annotations

from types import ModuleType

import pytest

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
