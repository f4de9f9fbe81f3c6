"""Smoke test of benchmarks/bench_lowprec.py: its memory table and a short training run; keeps the script working."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_lowprec.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_lowprec", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_lowprec"] = module
    spec.loader.exec_module(module)
    return module


def test_memory_table_measures_the_documented_bytes_per_param(bench: ModuleType) -> None:
    rows = "\n".join(bench.memory_table())
    for mode, value in (("fp32", "8.00"), ("bf16", "4.00"), ("bf16+kahan", "6.00"), ("fp32+bf16m", "6.00")):
        assert f"| Lion {mode} | {value} |" in rows
    assert "| AdamW fp32 (fused) | 12.00 |" in rows


def test_short_training_run_gives_a_curve_per_mode(bench: ModuleType) -> None:
    curve = bench.train_mode("bf16+kahan", steps=20)
    assert curve[0][0] == 0 and curve[-1][0] == 20
    assert curve[-1][1] < curve[0][1]  # it learns
