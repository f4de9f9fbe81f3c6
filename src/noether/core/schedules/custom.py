"""A schedule given as an explicit list of values."""

from __future__ import annotations

from noether.core.schedules.base import ScheduleBase
from noether.core.schemas.schedules import CustomScheduleConfig

__all__ = ["CustomSchedule", "CustomScheduleConfig"]


class CustomSchedule(ScheduleBase):
    """Returns ``values[s]``; past the end of the list it holds the last value.

    Raises:
        ValueError: If ``values`` is empty.
    """

    def __init__(self, config: CustomScheduleConfig) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        if len(config.values) == 0:
            raise ValueError("CustomSchedule: values must hold at least one value")
        self.values = list(config.values)

    def _get_value(self, step: int, total_steps: int) -> float:
        # The original raised IndexError here; holding the last value lets a short list cover a longer run.
        return self.values[min(step, len(self.values) - 1)]
