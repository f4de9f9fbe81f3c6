import math

import pytest

from noether.core.schedules import LinearWarmupCosineDecaySchedule
from noether.core.schemas import LinearWarmupCosineDecayScheduleConfig


def _closed_form(step: int, total: int, warmup: int, start: float, peak: float, end: float) -> float:
    """The warmup/decay closed form, written out independently of the sequential composition."""
    if step < warmup:
        if start == 0:
            return start + (step + 1) / (warmup + 1) * (peak - start)
        return start + step / warmup * (peak - start)
    decay = total - warmup
    x = min(step - warmup, decay - 1) / max(1, decay - 1)
    return end + (peak - end) * (1 + math.cos(math.pi * x)) / 2


@pytest.mark.parametrize("start", [0.0, 0.1])
@pytest.mark.parametrize(("total", "warmup"), [(10, 0), (10, 3), (25, 7), (5, 4)])
def test_warmup_steps_matches_closed_form(start: float, total: int, warmup: int) -> None:
    config = LinearWarmupCosineDecayScheduleConfig(
        warmup_steps=warmup, start_value=start, max_value=1.0, end_value=0.01
    )
    schedule = LinearWarmupCosineDecaySchedule(config)
    for step in range(total + 1):
        expected = _closed_form(step, total, warmup, start, 1.0, 0.01)
        assert schedule.get_value(step, total) == pytest.approx(expected), step


@pytest.mark.parametrize(("total", "percent"), [(11, 0.2), (101, 0.29), (10, 0.1), (37, 0.5)])
def test_warmup_percent_uses_tolerant_floor(total: int, percent: float) -> None:
    schedule = LinearWarmupCosineDecaySchedule(
        LinearWarmupCosineDecayScheduleConfig(warmup_percent=percent, max_value=1.0)
    )
    warmup = math.floor(round((total - 1) * percent, 9))
    for step in range(total + 1):
        assert schedule.get_value(step, total) == pytest.approx(_closed_form(step, total, warmup, 0.0, 1.0, 1e-6))


def test_warmup_of_0_29_of_101_steps_peaks_at_step_29() -> None:
    schedule = LinearWarmupCosineDecaySchedule(
        LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.29, max_value=1.0)
    )
    values = [schedule.get_value(step, 101) for step in range(101)]
    assert values.index(max(values)) == 29


def test_step_equal_to_total_steps_holds_the_end_value() -> None:
    schedule = LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, max_value=1.0))
    assert schedule.get_value(10, 10) == pytest.approx(1e-6)


def test_warmup_not_shorter_than_run_raises() -> None:
    schedule = LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_steps=10, max_value=1.0))
    schedule.get_value(0, 11)
    with pytest.raises(ValueError, match=r"warmup_steps \(10\).*total_steps \(10\)"):
        schedule.get_value(0, 10)


def test_both_or_neither_warmup_raise_in_schedule() -> None:
    for config in (
        LinearWarmupCosineDecayScheduleConfig.model_construct(warmup_steps=2, warmup_percent=0.1, max_value=1.0),
        LinearWarmupCosineDecayScheduleConfig.model_construct(max_value=1.0),
    ):
        with pytest.raises(ValueError, match="warmup_steps or warmup_percent"):
            LinearWarmupCosineDecaySchedule(config)


def test_unset_max_value_raises_when_used_standalone() -> None:
    with pytest.raises(ValueError, match="max_value is not set"):
        LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_steps=2))


def test_overhang_goes_to_the_base() -> None:
    plain = LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, max_value=1.0))
    stretched = LinearWarmupCosineDecaySchedule(
        LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, max_value=1.0, overhang_steps=4)
    )
    assert stretched.get_value(5, 10) == pytest.approx(plain.get_value(5, 14))


def test_str() -> None:
    by_percent = LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.1, max_value=1.0)
    assert str(LinearWarmupCosineDecaySchedule(by_percent)) == "LinearWarmupCosineDecaySchedule(warmup_percent=0.1)"
    by_steps = LinearWarmupCosineDecayScheduleConfig(warmup_steps=5, max_value=1.0)
    assert str(LinearWarmupCosineDecaySchedule(by_steps)) == "LinearWarmupCosineDecaySchedule(warmup_steps=5)"


def test_full_warmup_percent_warms_up_evenly() -> None:
    # The original stretched the warmup segment to T steps when warmup_percent was 1.0: 0.2, 0.4, 0.6, then 1.0.
    schedule = LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_percent=1.0, max_value=1.0))
    assert [schedule.get_value(step, 4) for step in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
