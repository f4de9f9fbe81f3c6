"""Learning-rate and weight-decay schedules."""

__all__: list[str] = []
