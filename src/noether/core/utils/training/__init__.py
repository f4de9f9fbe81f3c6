"""Training progress: ``TrainingIteration``, ``UpdateCounter`` and ``ScheduleWrapper``."""

__all__: list[str] = []
