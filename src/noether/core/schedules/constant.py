"""The constant schedule."""

from __future__ import annotations

from noether.core.schedules.base import ScheduleBase
from noether.core.schemas.schedules import ConstantScheduleConfig

__all__ = ["ConstantSchedule", "ConstantScheduleConfig"]


class ConstantSchedule(ScheduleBase):
    """Returns ``config.value`` at every step."""

    def __init__(self, config: ConstantScheduleConfig) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        self.value = config.value

    def _get_value(self, step: int, total_steps: int) -> float:
        return self.value

    def __str__(self) -> str:
        return f"{type(self).__name__}(value={self.value})"
