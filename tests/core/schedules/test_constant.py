from noether.core.schedules import ConstantSchedule, ConstantScheduleConfig


def test_constant_value_everywhere_and_str() -> None:
    schedule = ConstantSchedule(ConstantScheduleConfig(value=0.5))
    assert {schedule.get_value(step, 7) for step in range(8)} == {0.5}
    assert str(schedule) == "ConstantSchedule(value=0.5)"
