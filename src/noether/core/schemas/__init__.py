"""Pydantic configs for optimizers and schedules."""

__all__: list[str] = []
