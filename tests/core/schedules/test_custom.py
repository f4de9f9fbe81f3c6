import pytest

from noether.core.schedules import CustomSchedule, CustomScheduleConfig


def test_custom_returns_its_values_and_holds_the_last() -> None:
    schedule = CustomSchedule(CustomScheduleConfig(values=[3.0, 2.0, 1.0]))
    assert [schedule.get_value(step, 6) for step in range(7)] == [3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert str(schedule) == "CustomSchedule"


def test_custom_empty_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="values"):
        CustomSchedule(CustomScheduleConfig.model_construct(values=[]))
