"""A schedule that alternates between two values."""

from __future__ import annotations

from noether.core.schedules.base import ScheduleBase
from noether.core.schemas.schedules import PeriodicBoolScheduleConfig

__all__ = ["PeriodicBoolSchedule"]


class PeriodicBoolSchedule(ScheduleBase):
    """Alternates between ``on_value`` and ``off_value`` with a period of ``on_duration + off_duration`` steps.

    A period starts in the on state when ``initial_state`` is true (on for ``on_duration`` steps, then off), and in
    the off state otherwise. ``invert`` swaps the values returned for the two states. Useful to switch something
    (a loss term, a weight decay) on and off periodically.
    """

    def __init__(self, config: PeriodicBoolScheduleConfig) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        if config.on_duration + config.off_duration < 1:
            raise ValueError("PeriodicBoolSchedule: on_duration + off_duration must be at least 1")
        self.initial_state = config.initial_state
        self.on_value = config.on_value
        self.off_value = config.off_value
        self.on_duration = config.on_duration
        self.off_duration = config.off_duration
        self.invert = config.invert

    def is_on(self, step: int) -> bool:
        """The state at ``step``, before ``invert`` is applied."""
        phase = step % (self.on_duration + self.off_duration)
        if self.initial_state:
            return phase < self.on_duration
        return phase >= self.off_duration

    def _get_value(self, step: int, total_steps: int) -> float:
        return self.on_value if self.is_on(step) != self.invert else self.off_value

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}(initial_state={self.initial_state}, off_duration={self.off_duration}, "
            f"on_duration={self.on_duration}, invert={self.invert}, off_value={self.off_value}, "
            f"on_value={self.on_value})"
        )
