import pytest

from noether.core.schedules import StepDecreasingSchedule, StepFixedSchedule, StepIntervalSchedule
from noether.core.schemas import StepDecreasingScheduleConfig, StepFixedScheduleConfig, StepIntervalScheduleConfig


def test_step_decreasing_formula_divides_by_total_steps() -> None:
    schedule = StepDecreasingSchedule(
        StepDecreasingScheduleConfig(max_value=1.0, end_value=0.1, factor=0.5, decreases_interval=0.25)
    )
    for step in range(9):
        k = int(step / 8 / 0.25 + 1e-9)
        assert schedule.get_value(step, 8) == pytest.approx(0.1 + 0.9 * 0.5**k)
    assert schedule.get_value(8, 8) == pytest.approx(0.15625)  # s/T = 1 is within the run's progress


def test_step_interval_absorbs_float_error_in_division() -> None:
    # 0.6 / 0.2 == 2.9999999999999996: the third step must already count.
    schedule = StepIntervalSchedule(StepIntervalScheduleConfig(factor=0.5, update_interval=0.2))
    assert schedule.get_value(6, 10) == 0.125


def test_step_fixed_boundaries_tolerate_float_error() -> None:
    schedule = StepFixedSchedule(StepFixedScheduleConfig(factor=0.1, steps=[0.29, 0.57]))
    assert schedule.get_value(28, 100) == 1.0
    assert schedule.get_value(29, 100) == pytest.approx(0.1)
    assert schedule.get_value(57, 100) == pytest.approx(0.01)


def test_str() -> None:
    fixed = StepFixedSchedule(StepFixedScheduleConfig(factor=0.5, steps=[0.5, 0.2]))
    assert str(fixed) == "StepFixedSchedule(start_value=1.0, factor=0.5, steps=[0.2, 0.5])"
    interval = StepIntervalSchedule(StepIntervalScheduleConfig(factor=0.5, update_interval=0.2))
    assert str(interval) == "StepIntervalSchedule(start_value=1.0, factor=0.5, interval=0.2)"


def test_empty_steps_are_rejected_by_the_schedule_too() -> None:
    with pytest.raises(ValueError, match="steps"):
        StepFixedSchedule(StepFixedScheduleConfig.model_construct(factor=0.5, steps=[], start_value=1.0))
