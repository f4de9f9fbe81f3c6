"""The schedule factory (its code lives in :mod:`noether.core.builders.schedule`; this is its public path)."""

from noether.core.builders.schedule import ScheduleFactory

__all__ = ["ScheduleFactory"]
