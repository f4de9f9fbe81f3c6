"""Pydantic configs for optimizers and schedules."""

from noether.core.schemas.optimizers import OptimizerConfig, ParamGroupModifierConfig

__all__ = ["OptimizerConfig", "ParamGroupModifierConfig"]
