"""What the tests of Lion's compiled code need: the C kernel, the compiled step check, and a count of the steps that
ran on the compiled check."""

from __future__ import annotations

import os
from typing import Any

import pytest

from noether.core.optimizer.lion import cpu_build, dispatch, step_check


def require_c_kernel() -> None:
    """Skip the calling test where the C kernel cannot be built here."""
    try:
        cpu_build._library()
    except cpu_build.CpuKernelBuildError as exc:
        pytest.skip(f"no C kernel here: {exc}")


def require_step_check() -> None:
    """Skip the calling test where the compiled step check cannot be built here; in CI, fail it instead."""
    if step_check.load() is None:
        if os.environ.get("CI"):  # CI has a C++ compiler and torch's headers: a failed build there is a bug
            pytest.fail(f"the compiled step check did not build: {step_check._FAILED}")
        pytest.skip(f"the compiled step check cannot be built here: {step_check._FAILED}")


def count_kept_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry per group that a step runs on the compiled check (``KeptStep.run``), from now on."""
    runs: list[int] = []
    real = dispatch.KeptStep.run

    def counting(self: dispatch.KeptStep, hyper: dict[str, Any]) -> None:
        runs.append(1)
        real(self, hyper)

    monkeypatch.setattr(dispatch.KeptStep, "run", counting)
    return runs
