"""Staircase schedules: the value is multiplied by a factor at fixed points of the run."""

from __future__ import annotations

import bisect

from noether.core.schedules.base import DecreasingProgressSchedule, ScheduleBase
from noether.core.schemas.schedules import (
    StepDecreasingScheduleConfig,
    StepFixedScheduleConfig,
    StepIntervalScheduleConfig,
)

__all__ = ["StepDecreasingSchedule", "StepFixedSchedule", "StepIntervalSchedule"]

_FLOAT_TOLERANCE = 1e-9


def _steps_taken(progress: float, interval: float) -> int:
    # round(..., 10) absorbs float error such as 0.6 / 0.2 == 2.9999999999999996.
    return int(round(progress / interval, 10))


class StepDecreasingSchedule(DecreasingProgressSchedule):
    """``end + (max - end) * factor^k`` with ``k = floor((s / T) / decreases_interval)``.

    Unlike the progress schedules this divides by ``T``, not ``T - 1``, and with ``end != 0`` the values are not
    ``max * factor^k``.
    """

    def __init__(self, config: StepDecreasingScheduleConfig) -> None:
        super().__init__(config)
        self.factor = config.factor
        self.decreases_interval = config.decreases_interval

    def _get_progress(self, step: int, total_steps: int) -> float:
        return 1.0 - self.factor ** _steps_taken(step / total_steps, self.decreases_interval)


class StepFixedSchedule(ScheduleBase):
    """``start_value * factor^k``, where ``k`` is the number of entries of ``steps`` at or below ``s / T``."""

    def __init__(self, config: StepFixedScheduleConfig) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        if len(config.steps) == 0:
            raise ValueError("StepFixedSchedule: steps must hold at least one entry")
        self.start_value = config.start_value
        self.factor = config.factor
        self.steps = sorted(config.steps)

    def _get_value(self, step: int, total_steps: int) -> float:
        k = bisect.bisect_right(self.steps, step / total_steps + _FLOAT_TOLERANCE)
        return self.start_value * self.factor**k

    def __str__(self) -> str:
        return f"{type(self).__name__}(start_value={self.start_value}, factor={self.factor}, steps={self.steps})"


class StepIntervalSchedule(ScheduleBase):
    """``start_value * factor^k`` with ``k = floor((s / T) / update_interval)``."""

    def __init__(self, config: StepIntervalScheduleConfig) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        self.start_value = config.start_value
        self.factor = config.factor
        self.update_interval = config.update_interval

    def _get_value(self, step: int, total_steps: int) -> float:
        return self.start_value * self.factor ** _steps_taken(step / total_steps, self.update_interval)

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}(start_value={self.start_value}, factor={self.factor}, "
            f"interval={self.update_interval})"
        )
