import math

import pytest

from noether.core import schedules
from noether.core.schedules.functional import cosine, linear, polynomial


def _reference_fraction(step: int, total_steps: int) -> float:
    denominator = total_steps - 1 if total_steps > 1 else 1
    return min(1.0, step / denominator)


@pytest.mark.parametrize("total_steps", [1, 2, 5, 11])
def test_progress_functions_follow_their_formulas(total_steps: int) -> None:
    for step in range(total_steps + 1):
        x = _reference_fraction(step, total_steps)
        assert linear(step, total_steps) == pytest.approx(x)
        assert cosine(step, total_steps) == pytest.approx(0.5 - 0.5 * math.cos(math.pi * x))
        assert polynomial(step, total_steps, 3.0) == pytest.approx(1 - (1 - x) ** 3)


def test_progress_is_one_at_the_last_step_and_clamped_at_total_steps() -> None:
    # Progress is clamped to [0, 1]: the original extrapolated at s == T (linear 10/9, cosine past its minimum).
    for function in (linear, cosine, lambda s, t: polynomial(s, t, 2.0)):
        assert function(9, 10) == pytest.approx(1.0)
        assert function(10, 10) == 1.0
        assert function(0, 10) == 0.0


def test_package_exports_the_functions_under_the_original_names() -> None:
    assert schedules.cosine is cosine
    assert schedules.linear is linear
    assert schedules.polynomial is polynomial
