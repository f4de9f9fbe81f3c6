import math

import pytest

from noether.core.schedules import CosineDecreasingSchedule, CosineIncreasingSchedule
from noether.core.schemas.schedules import CosineDecreasingScheduleConfig, CosineIncreasingScheduleConfig


@pytest.mark.parametrize("total_steps", [1, 3, 12])
def test_cosine_decreasing_matches_formula(total_steps: int) -> None:
    schedule = CosineDecreasingSchedule(CosineDecreasingScheduleConfig(max_value=2.0, end_value=0.5))
    d = max(1, total_steps - 1)
    for step in range(total_steps):
        assert schedule.get_value(step, total_steps) == pytest.approx(
            0.5 + 1.5 * (1 + math.cos(math.pi * step / d)) / 2
        )


def test_cosine_increasing_matches_formula_with_exclude_first() -> None:
    schedule = CosineIncreasingSchedule(CosineIncreasingScheduleConfig(max_value=1.0, exclude_first=True))
    for step in range(8):
        assert schedule.get_value(step, 8) == pytest.approx((1 - math.cos(math.pi * (step + 1) / 8)) / 2)


def test_step_equal_to_total_steps_returns_the_end_value() -> None:
    # Progress is clamped: the original gave 0.03015 here (past the minimum of the cosine).
    schedule = CosineDecreasingSchedule(CosineDecreasingScheduleConfig(max_value=1.0, end_value=0.0))
    assert schedule.get_value(10, 10) == pytest.approx(0.0)
