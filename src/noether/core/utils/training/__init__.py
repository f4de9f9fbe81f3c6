"""Training progress: ``TrainingIteration``, ``UpdateCounter`` and ``ScheduleWrapper``."""

from noether.core.utils.training.counter import UpdateCounter
from noether.core.utils.training.schedule_wrapper import ScheduleWrapper
from noether.core.utils.training.training_iteration import TrainingIteration

__all__ = ["ScheduleWrapper", "TrainingIteration", "UpdateCounter"]
