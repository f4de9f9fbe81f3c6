import pytest

from noether.core.schedules import PeriodicBoolSchedule
from noether.core.schemas import PeriodicBoolScheduleConfig


def _values(**kwargs: object) -> list[float]:
    schedule = PeriodicBoolSchedule(PeriodicBoolScheduleConfig(**kwargs))  # type: ignore[arg-type]
    return [schedule.get_value(step, 10) for step in range(10)]


def test_starts_on_then_alternates() -> None:
    assert _values(initial_state=True, on_duration=2, off_duration=3) == [1, 1, 0, 0, 0, 1, 1, 0, 0, 0]


def test_starts_off_with_custom_values() -> None:
    assert _values(initial_state=False, on_duration=1, off_duration=2, on_value=5.0, off_value=0.5) == [
        0.5,
        0.5,
        5,
        0.5,
        0.5,
        5,
        0.5,
        0.5,
        5,
        0.5,
    ]


def test_invert_swaps_the_values() -> None:
    assert _values(initial_state=True, invert=True) == [0, 1] * 5


def test_zero_length_period_is_rejected() -> None:
    with pytest.raises(ValueError, match="on_duration"):
        PeriodicBoolSchedule(
            PeriodicBoolScheduleConfig.model_construct(initial_state=True, on_duration=0, off_duration=0)
        )
