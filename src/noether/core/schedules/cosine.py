"""Half-cosine increasing and decreasing schedules."""

from __future__ import annotations

from noether.core.schedules.base import DecreasingProgressSchedule, IncreasingProgressSchedule
from noether.core.schedules.functional import cosine
from noether.core.schemas.schedules import CosineDecreasingScheduleConfig, CosineIncreasingScheduleConfig

__all__ = ["CosineDecreasingSchedule", "CosineIncreasingSchedule"]


class CosineIncreasingSchedule(IncreasingProgressSchedule):
    """``start + (max - start) * (1 - cos(pi * s / d)) / 2`` with ``d = max(1, T - 1)``."""

    def __init__(self, config: CosineIncreasingScheduleConfig) -> None:
        super().__init__(config)

    def _get_progress(self, step: int, total_steps: int) -> float:
        return cosine(step, total_steps)


class CosineDecreasingSchedule(DecreasingProgressSchedule):
    """``end + (max - end) * (1 + cos(pi * s / d)) / 2`` with ``d = max(1, T - 1)``."""

    def __init__(self, config: CosineDecreasingScheduleConfig) -> None:
        super().__init__(config)

    def _get_progress(self, step: int, total_steps: int) -> float:
        return cosine(step, total_steps)
