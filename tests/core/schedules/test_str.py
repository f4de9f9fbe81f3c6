"""``str()`` of every schedule, written out as the original framework renders it (logs are read by people and scripts).

The expected strings are spelled out literally from the original's ``__str__`` methods, not computed from this
package's code. Schedules this package adds (``PeriodicBoolSchedule``) are covered in their own tests.
"""

from __future__ import annotations

import pytest

from noether.core.schedules import (
    ConstantSchedule,
    CosineDecreasingSchedule,
    CosineIncreasingSchedule,
    CustomSchedule,
    LinearDecreasingSchedule,
    LinearIncreasingSchedule,
    LinearWarmupCosineDecaySchedule,
    PolynomialDecreasingSchedule,
    PolynomialIncreasingSchedule,
    ScheduleBase,
    SequentialPercentSchedule,
    SequentialPercentScheduleConfig,
    SequentialStepSchedule,
    SequentialStepScheduleConfig,
    StepDecreasingSchedule,
    StepFixedSchedule,
    StepIntervalSchedule,
)
from noether.core.schemas import (
    ConstantScheduleConfig,
    CustomScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
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


def _cases() -> list[tuple[ScheduleBase, str]]:
    linear_down = LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=1.0, end_value=0.0))
    return [
        (linear_down, "LinearDecreasingSchedule(start=1.0, end=0.0, excl_first=False, excl_last=False)"),
        (
            LinearIncreasingSchedule(LinearIncreasingScheduleConfig(max_value=2.0, exclude_first=True)),
            "LinearIncreasingSchedule(start=0.0, end=2.0, excl_first=True, excl_last=False)",
        ),
        (
            CosineDecreasingSchedule(CosineDecreasingScheduleConfig(max_value=1.0, end_value=0.25, exclude_last=True)),
            "CosineDecreasingSchedule(start=1.0, end=0.25, excl_first=False, excl_last=True)",
        ),
        (
            CosineIncreasingSchedule(CosineIncreasingScheduleConfig(start_value=0.5, max_value=1.5)),
            "CosineIncreasingSchedule(start=0.5, end=1.5, excl_first=False, excl_last=False)",
        ),
        (
            PolynomialDecreasingSchedule(PolynomialDecreasingScheduleConfig(max_value=1.0, power=2.0)),
            "PolynomialDecreasingSchedule(start=1.0, end=0.0, excl_first=False, excl_last=False)",
        ),
        (
            PolynomialIncreasingSchedule(PolynomialIncreasingScheduleConfig(max_value=4.0)),
            "PolynomialIncreasingSchedule(start=0.0, end=4.0, excl_first=False, excl_last=False)",
        ),
        (
            # end = start + delta in floating point: 1.0 + (1e-6 - 1.0), as the original computes it
            StepDecreasingSchedule(
                StepDecreasingScheduleConfig(max_value=1.0, end_value=1e-6, factor=0.5, decreases_interval=0.25)
            ),
            f"StepDecreasingSchedule(start=1.0, end={1.0 + (1e-6 - 1.0)}, excl_first=False, excl_last=False)",
        ),
        (
            StepFixedSchedule(StepFixedScheduleConfig(factor=0.5, steps=[0.5, 0.2])),
            "StepFixedSchedule(start_value=1.0, factor=0.5, steps=[0.2, 0.5])",
        ),
        (
            StepIntervalSchedule(StepIntervalScheduleConfig(factor=0.5, update_interval=0.2)),
            "StepIntervalSchedule(start_value=1.0, factor=0.5, interval=0.2)",
        ),
        (ConstantSchedule(ConstantScheduleConfig(value=0.5)), "ConstantSchedule(value=0.5)"),
        (CustomSchedule(CustomScheduleConfig(values=[1.0, 2.0])), "CustomSchedule"),
        (
            LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.1, max_value=1.0)),
            "LinearWarmupCosineDecaySchedule(warmup_percent=0.1)",
        ),
        (
            LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_steps=5, max_value=1.0)),
            "LinearWarmupCosineDecaySchedule(warmup_steps=5)",
        ),
        (
            SequentialStepSchedule(
                [
                    SequentialStepScheduleConfig(ConstantSchedule(ConstantScheduleConfig(value=0.5)), end_step=3),
                    SequentialStepScheduleConfig(linear_down),
                ]
            ),
            "SequentialStepSchedule\n"
            "  (0): 0 - 3 ConstantSchedule(value=0.5)\n"
            "  (1): 3 - None LinearDecreasingSchedule(start=1.0, end=0.0, excl_first=False, excl_last=False)\n"
            ")",
        ),
        (
            SequentialPercentSchedule(
                [
                    SequentialPercentScheduleConfig(CustomSchedule(CustomScheduleConfig(values=[1.0])), 0.1, 0.4),
                    SequentialPercentScheduleConfig(ConstantSchedule(ConstantScheduleConfig(value=2.0))),
                ]
            ),
            "SequentialPercentSchedule\n"
            "  (0): 0.1 - 0.4 CustomSchedule\n"
            "  (1): 0.4 - 1.0 ConstantSchedule(value=2.0)\n"
            ")",
        ),
    ]


@pytest.mark.parametrize(("schedule", "expected"), _cases())
def test_str_and_repr_render_as_the_original(schedule: ScheduleBase, expected: str) -> None:
    assert str(schedule) == expected
    assert repr(schedule) == expected  # the original's repr is its str
