"""Polynomial increasing and decreasing schedules."""

from __future__ import annotations

from noether.core.schedules.base import DecreasingProgressSchedule, IncreasingProgressSchedule
from noether.core.schedules.functional import polynomial
from noether.core.schemas.schedules import PolynomialDecreasingScheduleConfig, PolynomialIncreasingScheduleConfig

__all__ = ["PolynomialDecreasingSchedule"]


class PolynomialIncreasingSchedule(IncreasingProgressSchedule):
    """``start + (max - start) * (1 - (1 - s / d)^power)`` with ``d = max(1, T - 1)``."""

    def __init__(self, config: PolynomialIncreasingScheduleConfig) -> None:
        super().__init__(config)
        self.power = config.power

    def _get_progress(self, step: int, total_steps: int) -> float:
        return polynomial(step, total_steps, self.power)


class PolynomialDecreasingSchedule(DecreasingProgressSchedule):
    """``max + (end - max) * (1 - (1 - s / d)^power)`` with ``d = max(1, T - 1)``."""

    def __init__(self, config: PolynomialDecreasingScheduleConfig) -> None:
        super().__init__(config)
        self.power = config.power

    def _get_progress(self, step: int, total_steps: int) -> float:
        return polynomial(step, total_steps, self.power)
