"""The original's schedule values, row by row, to 1e-4 (checked against its tests and a plain-Python calculator)."""

from __future__ import annotations

import pytest

from noether.core.schedules import (
    CosineDecreasingSchedule,
    CosineIncreasingSchedule,
    LinearDecreasingSchedule,
    LinearIncreasingSchedule,
    LinearWarmupCosineDecaySchedule,
    PolynomialDecreasingSchedule,
    ScheduleBase,
    StepDecreasingSchedule,
    StepFixedSchedule,
    StepIntervalSchedule,
)
from noether.core.schemas import (
    LinearWarmupCosineDecayScheduleConfig,
    PolynomialDecreasingScheduleConfig,
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

COSINE_DECREASING = [1.0, 0.97553, 0.90451, 0.79389, 0.65451, 0.5, 0.34549, 0.20611, 0.09549, 0.02447, 0.0]
COSINE_DECREASING_OVERHANG = [1.0, 0.98296, 0.93301, 0.85355, 0.75, 0.62941, 0.5, 0.37059, 0.25, 0.14645, 0.06699]
LWCD_11 = [0.33333, 0.66667, 1.0, 0.96194, 0.85355, 0.69134, 0.5000005, 0.30866, 0.14645, 0.038061, 1e-6]

ROWS: list[tuple[str, ScheduleBase, int, list[float]]] = [
    (
        "cosine decreasing",
        CosineDecreasingSchedule(CosineDecreasingScheduleConfig(max_value=1.0, end_value=0.0)),
        11,
        COSINE_DECREASING,
    ),
    (
        "cosine decreasing, overhang_percent .25",
        CosineDecreasingSchedule(CosineDecreasingScheduleConfig(max_value=1.0, overhang_percent=0.25)),
        11,
        COSINE_DECREASING_OVERHANG,
    ),
    (
        "cosine decreasing, overhang_steps 2",
        CosineDecreasingSchedule(CosineDecreasingScheduleConfig(max_value=1.0, overhang_steps=2)),
        11,
        COSINE_DECREASING_OVERHANG,
    ),
    (
        "cosine increasing 1e-5 -> 1",
        CosineIncreasingSchedule(CosineIncreasingScheduleConfig(start_value=1e-5, max_value=1.0)),
        11,
        [1e-5, 0.024481, 0.095501, 0.206115, 0.345498, 0.500005, 0.654512, 0.793895, 0.904509, 0.975529, 1.0],
    ),
    (
        "linear decreasing, exclude_last",
        LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=1.0, exclude_last=True)),
        11,
        [1 - s / 11 for s in range(11)],
    ),
    (
        "linear increasing, exclude_first",
        LinearIncreasingSchedule(LinearIncreasingScheduleConfig(max_value=1.0, exclude_first=True)),
        11,
        [(s + 1) / 11 for s in range(11)],
    ),
    (
        "linear increasing, both exclusions",
        LinearIncreasingSchedule(LinearIncreasingScheduleConfig(max_value=1.0, exclude_first=True, exclude_last=True)),
        11,
        [(s + 1) / 12 for s in range(11)],
    ),
    (
        "polynomial decreasing, power 2",
        PolynomialDecreasingSchedule(PolynomialDecreasingScheduleConfig(max_value=1.0, power=2.0)),
        5,
        [1.0, 0.5625, 0.25, 0.0625, 0.0],
    ),
    (
        "step fixed, factor .5",
        StepFixedSchedule(StepFixedScheduleConfig(factor=0.5, steps=[0.2, 0.5, 0.8])),
        10,
        [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125],
    ),
    (
        "step fixed, factor 1.5, unsorted steps",
        StepFixedSchedule(StepFixedScheduleConfig(factor=1.5, steps=[0.8, 0.2, 0.5])),
        10,
        [1, 1, 1.5, 1.5, 1.5, 2.25, 2.25, 2.25, 3.375, 3.375],
    ),
    (
        "step interval, factor .5, interval .2",
        StepIntervalSchedule(StepIntervalScheduleConfig(factor=0.5, update_interval=0.2)),
        10,
        [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625],
    ),
    (
        "step decreasing, max 1, end .1, factor .5, interval .25",
        StepDecreasingSchedule(
            StepDecreasingScheduleConfig(max_value=1.0, end_value=0.1, factor=0.5, decreases_interval=0.25)
        ),
        8,
        [1, 1, 0.55, 0.55, 0.325, 0.325, 0.2125, 0.2125],
    ),
    (
        "LWCD warmup_percent .2",
        LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.2, max_value=1.0)),
        11,
        LWCD_11,
    ),
    (
        "LWCD warmup_steps 2",
        LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, max_value=1.0)),
        11,
        LWCD_11,
    ),
    (
        "LWCD warmup_percent .2, max 1e-3 (W = 1)",
        LinearWarmupCosineDecaySchedule(LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.2, max_value=1e-3)),
        10,
        [5e-4, 1e-3, 9.6198e-4, 8.5370e-4, 6.9165e-4, 5.005e-4, 3.0935e-4, 1.4730e-4, 3.9022e-5, 1e-6],
    ),
    (
        "LWCD warmup_steps 2, start 1e-4, max 1e-3",
        LinearWarmupCosineDecaySchedule(
            LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, start_value=1e-4, max_value=1e-3)
        ),
        10,
        [1e-4, 5.5e-4, 1e-3, 9.5053e-4, 8.1193e-4, 6.1165e-4, 3.8935e-4, 1.8907e-4, 5.0466e-5, 1e-6],
    ),
]


@pytest.mark.parametrize(("name", "schedule", "total_steps", "expected"), ROWS, ids=[row[0] for row in ROWS])
def test_reference_row(name: str, schedule: ScheduleBase, total_steps: int, expected: list[float]) -> None:
    assert len(expected) == total_steps
    values = [schedule.get_value(step, total_steps) for step in range(total_steps)]
    assert values == pytest.approx(expected, abs=1e-4)


def test_small_lwcd_rows_to_relative_precision() -> None:
    # Values of 1e-4 and below would pass an absolute 1e-4 check trivially: check those rows relatively too.
    for name, schedule, total_steps, expected in ROWS:
        if name.startswith("LWCD") and "1e-3" in name:
            values = [schedule.get_value(step, total_steps) for step in range(total_steps)]
            assert values == pytest.approx(expected, rel=1e-3), name
