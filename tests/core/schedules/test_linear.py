import pytest

from noether.core.schedules import LinearDecreasingSchedule, LinearIncreasingSchedule
from noether.core.schemas.schedules import LinearDecreasingScheduleConfig, LinearIncreasingScheduleConfig


@pytest.mark.parametrize("total_steps", [1, 2, 7])
def test_linear_increasing_matches_formula(total_steps: int) -> None:
    schedule = LinearIncreasingSchedule(LinearIncreasingScheduleConfig(start_value=0.2, max_value=1.2))
    d = max(1, total_steps - 1)
    for step in range(total_steps):
        assert schedule.get_value(step, total_steps) == pytest.approx(0.2 + step / d)


def test_linear_decreasing_through_sanity_points() -> None:
    schedule = LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=1.0, end_value=0.0))
    assert [schedule.get_value(s, 5) for s in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_step_equal_to_total_steps_returns_the_end_value() -> None:
    # Progress is clamped: the original extrapolated to -0.1111 here.
    decreasing = LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=1.0))
    assert decreasing.get_value(10, 10) == 0.0
    increasing = LinearIncreasingSchedule(LinearIncreasingScheduleConfig(max_value=1.0))
    assert increasing.get_value(10, 10) == 1.0


def test_exclude_last_reaches_the_end_value_only_at_total_steps() -> None:
    schedule = LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=1.0, exclude_last=True))
    assert schedule.get_value(9, 10) == pytest.approx(0.1)
    assert schedule.get_value(10, 10) == pytest.approx(0.0)
