from __future__ import annotations

import pytest

from noether.core.schedules import (
    DecreasingProgressSchedule,
    IncreasingProgressSchedule,
    LinearDecreasingSchedule,
    ProgressSchedule,
    ScheduleBase,
    SequentialPercentSchedule,
    SequentialPercentScheduleConfig,
    SequentialStepSchedule,
    SequentialStepScheduleConfig,
)
from noether.core.schedules.base import percent_to_step
from noether.core.schemas import (
    DecreasingProgressScheduleConfig,
    IncreasingProgressScheduleConfig,
    ProgressScheduleConfig,
)
from noether.core.schemas.schedules import LinearDecreasingScheduleConfig


class _Recorder(ScheduleBase):
    """Returns the (step, total_steps) it was asked for, encoded as a float."""

    def __init__(self, **kwargs: float | int | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.calls: list[tuple[int, int]] = []

    def _get_value(self, step: int, total_steps: int) -> float:
        self.calls.append((step, total_steps))
        return step * 1000 + total_steps


class _Table(ScheduleBase):
    """step 0 -> 0.1, step >= 1 -> 0.2 (the sub-schedule of the original's sequential-schedule tests)."""

    def _get_value(self, step: int, total_steps: int) -> float:
        return 0.1 if step == 0 else 0.2


class _Lengths(ScheduleBase):
    """Returns the run length each call sees."""

    def _get_value(self, step: int, total_steps: int) -> float:
        return float(total_steps)


# ---- ScheduleBase ---------------------------------------------------------------------------------------------


def test_overhangs_stretch_the_run() -> None:
    assert _Recorder(overhang_percent=0.25).get_value(3, 11) == 3 * 1000 + 11 + 2
    assert _Recorder(overhang_steps=5).get_value(3, 11) == 3 * 1000 + 16
    assert _Recorder().get_value(11, 11) == 11 * 1000 + 11  # step == total_steps is allowed


def test_both_overhangs_raise_naming_both() -> None:
    with pytest.raises(ValueError, match=r"overhang_percent.*overhang_steps"):
        _Recorder(overhang_percent=0.1, overhang_steps=2)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"overhang_percent": -0.1}, "overhang_percent"), ({"overhang_steps": -1}, "overhang_steps")]
)
def test_negative_overhang_raises(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _Recorder(**kwargs)


@pytest.mark.parametrize(("step", "total_steps", "field"), [(-1, 10, "step"), (11, 10, "step"), (0, 0, "total_steps")])
def test_get_value_rejects_positions_outside_the_run(step: int, total_steps: int, field: str) -> None:
    schedule = _Recorder()
    with pytest.raises(ValueError, match=rf"{field} must be") as info:
        schedule.get_value(step, total_steps)
    assert str(step if field == "step" else total_steps) in str(info.value)
    assert schedule.calls == []


def test_overriding_get_value_is_refused_at_construction() -> None:
    class Bad(ScheduleBase):
        def get_value(self, step: int, total_steps: int) -> float:
            return 0.0

    with pytest.raises(NotImplementedError, match="_get_value"):
        Bad()


def test_str_is_the_class_name() -> None:
    assert str(_Recorder()) == "_Recorder"


# ---- Progress schedules ---------------------------------------------------------------------------------------


def test_progress_schedule_without_progress_function_raises_not_implemented() -> None:
    schedule = ProgressSchedule(ProgressScheduleConfig(), start_value=1.0, delta=-1.0)
    with pytest.raises(NotImplementedError, match="progress function"):
        schedule.get_value(0, 10)
    with pytest.raises(NotImplementedError):
        DecreasingProgressSchedule(DecreasingProgressScheduleConfig(max_value=1.0)).get_value(0, 10)
    with pytest.raises(NotImplementedError):
        IncreasingProgressSchedule(IncreasingProgressScheduleConfig(max_value=1.0)).get_value(0, 10)


def test_progress_schedule_str() -> None:
    schedule = LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=2.0, end_value=0.5, exclude_last=True))
    assert str(schedule) == "LinearDecreasingSchedule(start=2.0, end=0.5, excl_first=False, excl_last=True)"


def test_decreasing_and_increasing_need_max_value_when_used_standalone() -> None:
    with pytest.raises(ValueError, match="max_value is not set"):
        DecreasingProgressSchedule(DecreasingProgressScheduleConfig())
    with pytest.raises(ValueError, match="max_value is not set"):
        IncreasingProgressSchedule(IncreasingProgressScheduleConfig())


def test_decreasing_end_above_max_and_increasing_start_above_max_raise() -> None:
    # The configs reject this too; a config built with model_construct skips validation, the schedule does not.
    bad_decreasing = DecreasingProgressScheduleConfig.model_construct(max_value=0.5, end_value=0.6)
    with pytest.raises(ValueError, match=r"end_value \(0.6\).*max_value \(0.5\)"):
        DecreasingProgressSchedule(bad_decreasing)
    bad_increasing = IncreasingProgressScheduleConfig.model_construct(max_value=0.5, start_value=0.6)
    with pytest.raises(ValueError, match=r"start_value \(0.6\).*max_value \(0.5\)"):
        IncreasingProgressSchedule(bad_increasing)


# ---- percent boundaries tolerate float error ----------------------------------------------------------------------


def test_percent_boundaries_tolerate_float_error() -> None:
    assert int(0.29 * 100) == 28  # the original's floor
    assert percent_to_step(0.29, 101) == 29
    assert percent_to_step(0.1, 10) == 0  # floor(0.9): a true fraction still floors
    assert percent_to_step(0.2, 10) == 1
    assert percent_to_step(0.57, 101) == 57  # 0.57 * 100 == 56.99999999999999
    assert percent_to_step(1.0, 11) == 10
    assert percent_to_step(0.0, 11) == 0


# ---- sequential composition -----------------------------------------------------------------------------------------


def test_percent_selection_example() -> None:
    schedule = SequentialPercentSchedule(
        [
            SequentialPercentScheduleConfig(_Recorder(), start_percent=0.05),
            SequentialPercentScheduleConfig(_Recorder(), start_percent=0.1),
            SequentialPercentScheduleConfig(_Recorder(), start_percent=0.15),
        ]
    )
    expected = {**dict.fromkeys(range(5)), **dict.fromkeys(range(5, 10), 0), **dict.fromkeys(range(10, 15), 1)}
    for step in range(101):
        index = expected.get(step, 2 if step >= 15 else None)
        selected = schedule.get_sequential_schedule_config(step, 101)
        assert selected is (None if index is None else schedule.schedule_configs[index]), step


def test_step_selection_is_public_and_returns_the_config_objects() -> None:
    configs = [
        SequentialStepScheduleConfig(_Recorder(), start_step=2, end_step=4),
        SequentialStepScheduleConfig(_Recorder(), start_step=6),
    ]
    schedule = SequentialStepSchedule(configs)
    selected = [schedule.get_sequential_schedule_config(step) for step in range(9)]
    # None before the first segment; a segment stays selected in the gap after its end (steps 4, 5).
    assert selected == [None, None, configs[0], configs[0], configs[0], configs[0], configs[1], configs[1], configs[1]]
    assert all(a is b for a, b in zip(selected[2:], [configs[0]] * 4 + [configs[1]] * 3, strict=True))


def test_percent_selection_is_the_config_whose_segment_get_value_uses() -> None:
    warmup, decay = _Recorder(), _Recorder()
    schedule = SequentialPercentSchedule(
        [SequentialPercentScheduleConfig(warmup, end_percent=0.3), SequentialPercentScheduleConfig(decay)]
    )
    for step in range(11):
        config = schedule.get_sequential_schedule_config(step, 11)
        assert config is not None
        before = (len(warmup.calls), len(decay.calls))
        schedule.get_value(step, 11)
        assert (len(warmup.calls) - before[0], len(decay.calls) - before[1]) == (
            (1, 0) if config.schedule is warmup else (0, 1)
        )
        assert (config.schedule is warmup) == (step < 3)


def test_single_config_examples_step_and_percent_agree() -> None:
    percent = SequentialPercentSchedule([SequentialPercentScheduleConfig(_Table(), 0.3, 0.5)])
    step = SequentialStepSchedule([SequentialStepScheduleConfig(_Table(), 3, 5)])
    expected = [0.1] * 4 + [0.2] * 7
    assert [percent.get_value(s, 11) for s in range(11)] == expected
    assert [step.get_value(s, 11) for s in range(11)] == expected


def test_zero_length_first_config_selects_the_next_one() -> None:
    first, second = _Recorder(), _Recorder()
    schedule = SequentialStepSchedule(
        [SequentialStepScheduleConfig(first, end_step=0), SequentialStepScheduleConfig(second)]
    )
    assert schedule.get_value(0, 10) == 0 * 1000 + 10
    assert first.calls == [] and second.calls == [(0, 10)]


def test_end_step_zero_is_zero_length_not_open() -> None:
    # The original's `end or T` made a lone end_step=0 segment span the whole run.
    schedule = SequentialStepSchedule([SequentialStepScheduleConfig(_Lengths(), start_step=0, end_step=0)])
    assert schedule.get_value(5, 10) == 1.0  # zero-length segment: evaluated as a 1-step run


def test_propagation_fills_boundaries_in_place() -> None:
    configs = [
        SequentialStepScheduleConfig(_Lengths(), end_step=3),
        SequentialStepScheduleConfig(_Lengths(), end_step=7),
        SequentialStepScheduleConfig(_Lengths()),
    ]
    schedule = SequentialStepSchedule(configs)
    assert [(c.start_step, c.end_step) for c in configs] == [(0, 3), (3, 7), (7, None)]
    assert [schedule.get_value(s, 10) for s in (0, 3, 7, 10)] == [3.0, 4.0, 3.0, 3.0]
    percent_configs = [
        SequentialPercentScheduleConfig(_Lengths(), end_percent=0.5),
        SequentialPercentScheduleConfig(_Lengths()),
    ]
    SequentialPercentSchedule(percent_configs)
    assert [(c.start_percent, c.end_percent) for c in percent_configs] == [(0, 0.5), (0.5, 1.0)]


def test_gap_holds_the_previous_final_value_and_past_the_end_holds_the_last() -> None:
    schedule = SequentialStepSchedule(
        [
            SequentialStepScheduleConfig(_Recorder(), start_step=0, end_step=2),
            SequentialStepScheduleConfig(_Recorder(), start_step=5, end_step=8),
        ]
    )
    assert schedule.get_value(3, 10) == 1 * 1000 + 2  # the first segment's last step
    assert schedule.get_value(9, 10) == 2 * 1000 + 3  # the last segment holds its last step
    assert schedule.get_value(10, 10) == 2 * 1000 + 3


def test_before_the_first_segment_uses_its_initial_value() -> None:
    schedule = SequentialStepSchedule([SequentialStepScheduleConfig(_Recorder(), start_step=4, end_step=6)])
    assert schedule.get_value(1, 10) == 0 * 1000 + 2


@pytest.mark.parametrize(
    ("configs", "match"),
    [
        ([], "at least one"),
        ([SequentialStepScheduleConfig(_Table(), start_step=-1, end_step=2)], "start_step must be >= 0"),
        (
            [SequentialStepScheduleConfig(_Table(), start_step=5, end_step=2)],
            r"start_step \(5\) must be <= end_step \(2\)",
        ),
        (
            [SequentialStepScheduleConfig(_Table(), 0, 5), SequentialStepScheduleConfig(_Table(), 3, None)],
            r"end_step \(5\) must be <= the next config's start_step \(3\)",
        ),
    ],
)
def test_step_validation_errors(configs: list[SequentialStepScheduleConfig], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SequentialStepSchedule(configs)


@pytest.mark.parametrize(
    ("configs", "match"),
    [
        ([], "at least one"),
        ([SequentialPercentScheduleConfig(_Table(), 0.5, 1.5)], "must be <= 1"),
        ([SequentialPercentScheduleConfig(_Table(), 0.6, 0.5)], r"start_percent \(0.6\) must be <= end_percent"),
        (
            [
                SequentialPercentScheduleConfig(_Table(), 0.0),
                SequentialPercentScheduleConfig(_Table()),
                SequentialPercentScheduleConfig(_Table(), 0.5),
            ],
            "config 1 has no start_percent",
        ),
    ],
)
def test_percent_validation_errors(configs: list[SequentialPercentScheduleConfig], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SequentialPercentSchedule(configs)


def test_sequential_str_and_overhang() -> None:
    schedule = SequentialStepSchedule(
        [SequentialStepScheduleConfig(_Lengths(), 0, 4), SequentialStepScheduleConfig(_Lengths())], overhang_steps=2
    )
    # The original's rendering: the class name alone on the first line, no opening parenthesis.
    assert str(schedule) == "SequentialStepSchedule\n  (0): 0 - 4 _Lengths\n  (1): 4 - None _Lengths\n)"
    assert repr(schedule) == str(schedule)
    assert repr(schedule.schedule_configs[0]) == "0 - 4 _Lengths"
    assert schedule.get_value(5, 10) == 12 - 4  # the overhang stretches the open last segment
