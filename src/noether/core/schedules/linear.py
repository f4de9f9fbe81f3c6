"""Linear increasing and decreasing schedules."""

from __future__ import annotations

from noether.core.schedules.base import DecreasingProgressSchedule, IncreasingProgressSchedule
from noether.core.schedules.functional import linear
from noether.core.schemas.schedules import LinearDecreasingScheduleConfig, LinearIncreasingScheduleConfig

__all__ = ["LinearDecreasingSchedule", "LinearIncreasingSchedule"]


class LinearIncreasingSchedule(IncreasingProgressSchedule):
    """``start + (max - start) * s / d`` with ``d = max(1, T - 1)``."""

    def __init__(self, config: LinearIncreasingScheduleConfig) -> None:
        super().__init__(config)

    def _get_progress(self, step: int, total_steps: int) -> float:
        return linear(step, total_steps)


class LinearDecreasingSchedule(DecreasingProgressSchedule):
    """``max + (end - max) * s / d`` with ``d = max(1, T - 1)``."""

    def __init__(self, config: LinearDecreasingScheduleConfig) -> None:
        super().__init__(config)

    def _get_progress(self, step: int, total_steps: int) -> float:
        return linear(step, total_steps)
