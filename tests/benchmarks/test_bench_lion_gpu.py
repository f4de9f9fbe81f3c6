"""benchmarks/bench_lion_gpu.py on a machine without CUDA: the clear refusal, and its correctness checker on CPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_lion_gpu.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_lion_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_lion_gpu"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_exits_2_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "no CUDA device" in result.stderr and "needs a GPU" in result.stderr
    assert result.stdout == "" and not out.exists()


HYPER: dict[str, Any] = {
    "beta1": 0.9,
    "beta2": 0.99,
    "lr": 0.01,
    "weight_decay": 0.1,
    "caution": True,
    "maximize": False,
}


Alteration = Callable[[dict[str, Any], list[torch.Tensor] | None], tuple[dict[str, Any], list[torch.Tensor] | None]]


def _altered_step(bench: ModuleType, alter: Alteration) -> Callable[..., None]:
    """The script's ``_step`` with its hyperparameters and compensations passed through ``alter``: a broken kernel."""
    original = bench._step

    def step(
        path: str,
        ps: list[torch.Tensor],
        gs: list[torch.Tensor],
        ms: list[torch.Tensor],
        hyper: dict[str, Any],
        comps: list[torch.Tensor] | None = None,
    ) -> None:
        original(path, ps, gs, ms, *alter(hyper, comps))

    return step


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_checker_passes_a_correct_path(bench: ModuleType, dtype: torch.dtype) -> None:
    result = bench.check_path("foreach=True", "cpu", dtype, HYPER)
    assert result["ok"] and result["param_mismatches"] == 0 and result["exp_avg_beyond_bound"] == 0


def test_checker_covers_the_low_precision_modes(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 + Kahan and fp32 + bf16 momentum are checked; a path that drops the compensation fails."""
    names = {mode.name for mode in bench.MODES}
    assert {"bfloat16 +Kahan", "float32 (momentum bfloat16)"} <= names
    for mode in bench.MODES:
        result = bench.check_path("foreach=True", "cpu", mode, HYPER)
        assert result["ok"] and result["dtype"] == mode.name, result

    monkeypatch.setattr(bench, "_step", _altered_step(bench, lambda hyper, comps: (hyper, None)))  # no Kahan
    kahan = next(mode for mode in bench.MODES if mode.kahan)
    result = bench.check_path("foreach=True", "cpu", kahan, HYPER)
    assert not result["ok"] and result["param_mismatches"] > 0


def test_checker_catches_a_wrong_path(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel with a wrong beta2 (momentum off far beyond one rounding) and one with a wrong lr both fail."""

    def stepping_with(**wrong: float) -> Any:
        return _altered_step(bench, lambda hyper, comps: ({**hyper, **wrong}, comps))

    monkeypatch.setattr(bench, "_step", stepping_with(beta2=0.98))
    result = bench.check_path("foreach=True", "cpu", torch.float32, HYPER)
    assert not result["ok"] and result["exp_avg_beyond_bound"] > 0

    monkeypatch.setattr(bench, "_step", stepping_with(lr=0.0101))
    result = bench.check_path("foreach=True", "cpu", torch.float32, HYPER)
    assert not result["ok"] and result["param_mismatches"] > 0
