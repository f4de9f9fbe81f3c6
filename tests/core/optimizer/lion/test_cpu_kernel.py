"""The C kernel's Python side: the scalars it is called with."""

from __future__ import annotations

import math
import random

import pytest
import torch

from noether.core.optimizer.lion.cpu_kernel import _rounded


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_rounded_scalars_are_torchs_rounding(dtype: torch.dtype) -> None:
    """Every value rounds as ``torch.tensor(value, dtype=float64).to(dtype)``: ties, subnormals, the range's ends."""
    rng = random.Random(0)
    f32 = torch.finfo(torch.float32)
    values = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-45, 38) for _ in range(2000)]
    values += [1 + 2.0**-24, 1 + 3 * 2.0**-24, -(1 + 2.0**-24)]  # exact ties: to even
    values += [f32.smallest_normal * 0.3, 2.0**-149 * 0.5, 2.0**-149 * 0.75, 2.0**-160]  # subnormal, ties, underflow
    values += [f32.max, f32.max * (1 + 2.0**-25), f32.max * (1 + 2.0**-23), 1e39, -1e300]  # to max, to inf
    values += [0.0, -0.0, math.inf, -math.inf]
    for value in values:
        want = float(torch.tensor(value, dtype=torch.float64).to(dtype).item())
        got = _rounded(value, dtype)
        assert math.copysign(1, got) == math.copysign(1, want) and got == want, (value, got, want)
    assert math.isnan(_rounded(math.nan, dtype))
