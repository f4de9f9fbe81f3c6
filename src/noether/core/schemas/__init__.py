"""Pydantic configs for optimizers and schedules."""

from noether.core.schemas.optimizers import OptimizerConfig, ParamGroupModifierConfig
from noether.core.schemas.schedules import (
    AnyScheduleConfig,
    ConstantScheduleConfig,
    CustomScheduleConfig,
    DecreasingProgressScheduleConfig,
    IncreasingProgressScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
    PeriodicBoolScheduleConfig,
    PolynomialDecreasingScheduleConfig,
    PolynomialIncreasingScheduleConfig,
    ProgressScheduleConfig,
    ScheduleBaseConfig,
    SchedulerConfig,
    StepDecreasingScheduleConfig,
    StepFixedScheduleConfig,
    StepIntervalScheduleConfig,
)

__all__ = [
    "AnyScheduleConfig",
    "ConstantScheduleConfig",
    "CustomScheduleConfig",
    "DecreasingProgressScheduleConfig",
    "IncreasingProgressScheduleConfig",
    "LinearWarmupCosineDecayScheduleConfig",
    "OptimizerConfig",
    "ParamGroupModifierConfig",
    "PeriodicBoolScheduleConfig",
    "PolynomialDecreasingScheduleConfig",
    "PolynomialIncreasingScheduleConfig",
    "ProgressScheduleConfig",
    "ScheduleBaseConfig",
    "SchedulerConfig",
    "StepDecreasingScheduleConfig",
    "StepFixedScheduleConfig",
    "StepIntervalScheduleConfig",
]
