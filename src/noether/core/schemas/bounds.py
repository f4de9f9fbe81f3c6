"""Ranges of the numeric config fields.

Every numeric field of the schedule and optimizer configs must be a finite number inside a fixed range. A config
that validates can then be built and stepped without overflowing (Python's ``OverflowError`` when a schedule is
evaluated, torch's "cannot be converted without overflow" when gradients are clipped), and a typo such as ``1e308``,
``nan`` or a negative learning rate is reported at validation, naming the field, the value and the allowed range,
instead of turning the parameters into NaN many steps later.

The upper limits are far above any value that trains (so no working config is refused) and far below the point
where arithmetic in float32 breaks down:

* :data:`MAX_LR` = 1e3 and :data:`MAX_WEIGHT_DECAY` = 1e3: learning rates and weight decays in practice stay below
  10 and 1;
* :data:`MAX_SCHEDULE_VALUE` = 1e6: a schedule may drive any hyperparameter, not only a learning rate;
* :data:`MAX_LR_SCALE` = 1e3: a per-parameter learning-rate multiplier;
* :data:`MAX_CLIP_GRAD_VALUE` = 65504, the largest float16 number: clamping a gradient of any floating dtype with it
  cannot overflow;
* :data:`MAX_CLIP_GRAD_NORM` = 1e9: a norm limit this high no longer clips anything;
* :data:`MAX_STEPS` = 1e12: step counts (warmups, overhangs, durations, ranges);
* :data:`MAX_OVERHANG_PERCENT` = 1e3: a run evaluated as if a thousand times longer;
* :data:`MAX_FACTOR` = 1e3: staircase multipliers (the staircase's highest value is checked as well);
* :data:`MAX_POWER` = 1e3: exponents of polynomial schedules;
* :data:`MIN_INTERVAL` = 1e-9: the shortest fraction of a run between two staircase steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

__all__ = [
    "MAX_CLIP_GRAD_NORM",
    "MAX_CLIP_GRAD_VALUE",
    "MAX_FACTOR",
    "MAX_LR",
    "MAX_LR_SCALE",
    "MAX_OVERHANG_PERCENT",
    "MAX_POWER",
    "MAX_SCHEDULE_VALUE",
    "MAX_STEPS",
    "MAX_WEIGHT_DECAY",
    "MIN_INTERVAL",
    "ClipGradNorm",
    "ClipGradValue",
    "Factor",
    "Fraction",
    "LearningRate",
    "LrScale",
    "OverhangPercent",
    "Power",
    "ScheduleValue",
    "StepCount",
    "WeightDecay",
    "bounded",
]

MAX_LR = 1e3
MAX_WEIGHT_DECAY = 1e3
MAX_SCHEDULE_VALUE = 1e6
MAX_LR_SCALE = 1e3
MAX_CLIP_GRAD_VALUE = 65504.0
MAX_CLIP_GRAD_NORM = 1e9
MAX_STEPS = 10**12
MAX_OVERHANG_PERCENT = 1e3
MAX_FACTOR = 1e3
MAX_POWER = 1e3
MIN_INTERVAL = 1e-9


def _interval_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def bounded(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable[[float, ValidationInfo], float]:
    """A pydantic after-validator: the value must be finite and in ``[low, high]`` (``(`` / ``)`` where open).

    The error names the field, the value and the range, e.g. ``lr must be a finite number in (0, 1000], got nan``.
    """
    allowed = _interval_text(low, high, low_open, high_open)

    def check(value: float, info: ValidationInfo) -> float:
        above_low = value > low if low_open else value >= low
        below_high = value < high if high_open else value <= high
        if not (math.isfinite(value) and above_low and below_high):
            raise ValueError(f"{info.field_name} must be a finite number in {allowed}, got {value!r}")
        return value

    return check


LearningRate = Annotated[float, AfterValidator(bounded(0.0, MAX_LR, low_open=True))]
"""A learning rate: finite, in (0, :data:`MAX_LR`]."""
WeightDecay = Annotated[float, AfterValidator(bounded(0.0, MAX_WEIGHT_DECAY))]
"""A weight decay: finite, in [0, :data:`MAX_WEIGHT_DECAY`]."""
LrScale = Annotated[float, AfterValidator(bounded(0.0, MAX_LR_SCALE))]
"""A learning-rate multiplier: finite, in [0, :data:`MAX_LR_SCALE`]."""
ClipGradValue = Annotated[float, AfterValidator(bounded(0.0, MAX_CLIP_GRAD_VALUE, low_open=True))]
"""A gradient clipping value: finite, in (0, :data:`MAX_CLIP_GRAD_VALUE`]."""
ClipGradNorm = Annotated[float, AfterValidator(bounded(0.0, MAX_CLIP_GRAD_NORM, low_open=True))]
"""A gradient norm limit: finite, in (0, :data:`MAX_CLIP_GRAD_NORM`]."""
ScheduleValue = Annotated[float, AfterValidator(bounded(0.0, MAX_SCHEDULE_VALUE))]
"""A value a schedule takes: finite, in [0, :data:`MAX_SCHEDULE_VALUE`]."""
Fraction = Annotated[float, AfterValidator(bounded(0.0, 1.0))]
"""A fraction of a run, in [0, 1]."""
StepCount = Annotated[int, AfterValidator(bounded(0, MAX_STEPS))]
"""A number of steps, in [0, :data:`MAX_STEPS`]."""
OverhangPercent = Annotated[float, AfterValidator(bounded(0.0, MAX_OVERHANG_PERCENT))]
"""A run's stretch as a fraction of its length, in [0, :data:`MAX_OVERHANG_PERCENT`]."""
Factor = Annotated[float, AfterValidator(bounded(0.0, MAX_FACTOR))]
"""A staircase multiplier, in [0, :data:`MAX_FACTOR`]."""
Power = Annotated[float, AfterValidator(bounded(0.0, MAX_POWER, low_open=True))]
"""An exponent of a polynomial schedule, in (0, :data:`MAX_POWER`]."""
