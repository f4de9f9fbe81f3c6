"""Property tests over random valid configs and run lengths."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noether.core.schedules import (
    CustomSchedule,
    LinearWarmupCosineDecaySchedule,
    PeriodicBoolSchedule,
    ScheduleBase,
    StepDecreasingSchedule,
    StepFixedSchedule,
    StepIntervalSchedule,
)
from noether.core.schedules.base import percent_to_step
from noether.core.schedules.cosine import CosineDecreasingSchedule, CosineIncreasingSchedule
from noether.core.schedules.linear import LinearDecreasingSchedule, LinearIncreasingSchedule
from noether.core.schedules.polynomial import PolynomialDecreasingSchedule, PolynomialIncreasingSchedule
from noether.core.schemas import (
    CustomScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
    PeriodicBoolScheduleConfig,
    PolynomialDecreasingScheduleConfig,
    PolynomialIncreasingScheduleConfig,
    StepDecreasingScheduleConfig,
    StepFixedScheduleConfig,
    StepIntervalScheduleConfig,
)
from noether.core.schemas.schedules import (
    CosineDecreasingScheduleConfig,
    CosineIncreasingScheduleConfig,
    LinearDecreasingScheduleConfig,
    LinearIncreasingScheduleConfig,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS = 1e-12

values = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
lengths = st.integers(min_value=1, max_value=300)
overhangs = st.one_of(
    st.just({}),
    st.builds(lambda p: {"overhang_percent": p}, st.floats(min_value=0.0, max_value=1.0)),
    st.builds(lambda n: {"overhang_steps": n}, st.integers(min_value=0, max_value=50)),
)

INCREASING = [
    (LinearIncreasingSchedule, LinearIncreasingScheduleConfig),
    (CosineIncreasingSchedule, CosineIncreasingScheduleConfig),
    (PolynomialIncreasingSchedule, PolynomialIncreasingScheduleConfig),
]
DECREASING = [
    (LinearDecreasingSchedule, LinearDecreasingScheduleConfig),
    (CosineDecreasingSchedule, CosineDecreasingScheduleConfig),
    (PolynomialDecreasingSchedule, PolynomialDecreasingScheduleConfig),
]


def _curve(schedule: ScheduleBase, total_steps: int) -> list[float]:
    return [schedule.get_value(step, total_steps) for step in range(total_steps + 1)]


def _assert_monotone_between(curve: list[float], low: float, high: float, increasing: bool) -> None:
    assert all(low - EPS <= v <= high + EPS for v in curve), (low, high, curve)
    pairs = list(itertools.pairwise(curve))
    if increasing:
        assert all(b >= a - EPS for a, b in pairs)
    else:
        assert all(b <= a + EPS for a, b in pairs)


def _assert_resume_safe(schedule_factory: Any, total_steps: int, curve: list[float]) -> None:
    # A fresh instance asked in reverse order (as after a resume, with no history) gives the same values.
    fresh = schedule_factory()
    assert [fresh.get_value(step, total_steps) for step in reversed(range(total_steps + 1))] == curve[::-1]


@FAST
@given(
    kind=st.sampled_from(range(3)),
    increasing=st.booleans(),
    a=values,
    b=values,
    total_steps=lengths,
    excl=st.tuples(st.booleans(), st.booleans()),
    power=st.floats(min_value=0.1, max_value=5.0),
    overhang=overhangs,
)
def test_progress_kinds_are_monotone_between_their_ends(
    kind: int,
    increasing: bool,
    a: float,
    b: float,
    total_steps: int,
    excl: tuple[bool, bool],
    power: float,
    overhang: Any,
) -> None:
    schedule_class, config_class = (INCREASING if increasing else DECREASING)[kind]
    low, peak = min(a, b), max(a, b)
    fields: dict[str, Any] = {"max_value": peak, "exclude_first": excl[0], "exclude_last": excl[1], **overhang}
    fields["start_value" if increasing else "end_value"] = low
    if config_class in (PolynomialIncreasingScheduleConfig, PolynomialDecreasingScheduleConfig):
        fields["power"] = power
    config = config_class(**fields)
    curve = _curve(schedule_class(config), total_steps)
    _assert_monotone_between(curve, low, peak, increasing=increasing)
    if not any(overhang.values()):
        # Progress is clamped: step T gives the end value.
        assert abs(curve[-1] - (peak if increasing else low)) < 1e-9
    _assert_resume_safe(lambda: schedule_class(config), total_steps, curve)


@st.composite
def lwcd_cases(draw: st.DrawFn) -> tuple[LinearWarmupCosineDecayScheduleConfig, int]:
    total_steps = draw(st.integers(min_value=2, max_value=300))
    peak = draw(st.floats(min_value=1e-6, max_value=10.0))
    start = draw(st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=peak)))
    end = draw(st.floats(min_value=0.0, max_value=peak))
    if draw(st.booleans()):
        warmup: dict[str, Any] = {"warmup_steps": draw(st.integers(min_value=0, max_value=total_steps - 1))}
    else:
        warmup = {"warmup_percent": draw(st.floats(min_value=0.0, max_value=1.0))}
    config = LinearWarmupCosineDecayScheduleConfig(start_value=start, end_value=end, max_value=peak, **warmup)
    return config, total_steps


@FAST
@given(case=lwcd_cases())
def test_warmup_cosine_stays_in_range_and_is_continuous_at_the_warmup_boundary(
    case: tuple[LinearWarmupCosineDecayScheduleConfig, int],
) -> None:
    config, total_steps = case
    assert config.max_value is not None
    curve = _curve(LinearWarmupCosineDecaySchedule(config), total_steps)
    low = min(config.start_value, config.end_value)
    assert all(low - EPS <= v <= config.max_value + EPS for v in curve)
    warmup = config.warmup_steps
    if warmup is None:
        assert config.warmup_percent is not None
        warmup = percent_to_step(config.warmup_percent, total_steps)
    if warmup > 0:
        warmup_curve, decay_curve = curve[:warmup], curve[warmup:]
        _assert_monotone_between(warmup_curve, config.start_value, config.max_value, increasing=True)
        _assert_monotone_between(decay_curve, config.end_value, config.max_value, increasing=False)
        one_step = (config.max_value - config.start_value) / warmup
        assert abs(curve[warmup] - curve[warmup - 1]) <= one_step + 1e-9
    assert abs(curve[-1] - config.end_value) < 1e-9 or warmup == total_steps - 1
    _assert_resume_safe(lambda: LinearWarmupCosineDecaySchedule(config), total_steps, curve)


@FAST
@given(
    total_steps=lengths,
    factor=st.floats(min_value=0.0, max_value=1.0),
    interval=st.floats(min_value=0.01, max_value=0.99),
    a=values,
    b=values,
    steps=st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=1, max_size=5),
)
def test_step_kinds_with_factor_at_most_one_never_increase(
    total_steps: int, factor: float, interval: float, a: float, b: float, steps: list[float]
) -> None:
    end, peak = min(a, b), max(a, b)
    decreasing = StepDecreasingSchedule(
        StepDecreasingScheduleConfig(max_value=peak, end_value=end, factor=factor, decreases_interval=interval)
    )
    _assert_monotone_between(_curve(decreasing, total_steps), end, peak, increasing=False)
    fixed = StepFixedSchedule(StepFixedScheduleConfig(start_value=peak, factor=factor, steps=steps))
    _assert_monotone_between(_curve(fixed, total_steps), 0.0, peak, increasing=False)
    by_interval = StepIntervalSchedule(
        StepIntervalScheduleConfig(start_value=peak, factor=factor, update_interval=interval)
    )
    _assert_monotone_between(_curve(by_interval, total_steps), 0.0, peak, increasing=False)


@FAST
@given(
    entries=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=20),
    total_steps=lengths,
)
def test_custom_holds_its_last_value(entries: list[float], total_steps: int) -> None:
    curve = _curve(CustomSchedule(CustomScheduleConfig(values=entries)), total_steps)
    assert curve == [entries[min(step, len(entries) - 1)] for step in range(total_steps + 1)]


@FAST
@given(
    initial_state=st.booleans(),
    on=st.integers(min_value=0, max_value=5),
    off=st.integers(min_value=1, max_value=5),
    invert=st.booleans(),
    total_steps=lengths,
)
def test_periodic_bool_is_periodic_with_the_right_duty_cycle(
    initial_state: bool, on: int, off: int, invert: bool, total_steps: int
) -> None:
    config = PeriodicBoolScheduleConfig(
        initial_state=initial_state, on_duration=on, off_duration=off, invert=invert, on_value=2.0, off_value=0.5
    )
    curve = _curve(PeriodicBoolSchedule(config), total_steps)
    period = on + off
    assert all(curve[i] == curve[i + period] for i in range(len(curve) - period))
    if len(curve) >= period:
        state_on_value = 0.5 if invert else 2.0
        assert curve[:period].count(state_on_value) == on
        assert (curve[0] == state_on_value) == (initial_state and on > 0)


@FAST
@given(total_steps=st.integers(min_value=2, max_value=10_000), data=st.data())
def test_percent_of_an_exact_step_gives_that_step(total_steps: int, data: st.DataObject) -> None:
    # A percent that is exactly step n of the run maps to n, whatever float error n / (T - 1) carries.
    step = data.draw(st.integers(min_value=0, max_value=total_steps - 1))
    assert percent_to_step(step / (total_steps - 1), total_steps) == step
