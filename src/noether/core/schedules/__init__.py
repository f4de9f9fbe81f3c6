"""Learning-rate and weight-decay schedules.

A schedule maps a step ``s`` of a run of ``T`` steps to a value: ``schedule.get_value(s, T)``. Build one from a config
(see :mod:`noether.core.schemas.schedules`) with ``noether.core.factory.ScheduleFactory``, or directly with the
config as the constructor's only argument.
"""

from noether.core.schedules import functional as _functional
from noether.core.schedules.base import (
    DecreasingProgressSchedule,
    IncreasingProgressSchedule,
    ProgressSchedule,
    ScheduleBase,
    SequentialPercentSchedule,
    SequentialPercentScheduleConfig,
    SequentialStepSchedule,
    SequentialStepScheduleConfig,
)
from noether.core.schedules.constant import ConstantSchedule, ConstantScheduleConfig
from noether.core.schedules.cosine import CosineDecreasingSchedule, CosineIncreasingSchedule
from noether.core.schedules.custom import CustomSchedule, CustomScheduleConfig
from noether.core.schedules.linear import LinearDecreasingSchedule, LinearIncreasingSchedule
from noether.core.schedules.linear_warmup_cosine_decay import LinearWarmupCosineDecaySchedule
from noether.core.schedules.periodic_bool import PeriodicBoolSchedule
from noether.core.schedules.polynomial import (
    PolynomialDecreasingSchedule,
    PolynomialIncreasingSchedule,  # noqa: F401 (importable, not in __all__)
)
from noether.core.schedules.step import StepDecreasingSchedule, StepFixedSchedule, StepIntervalSchedule

# Bound last on purpose: as in the original, the package attributes `cosine`, `linear` and `polynomial` are the
# progress functions, not the submodules of the same name (which stay importable by their full path).
cosine = _functional.cosine
linear = _functional.linear
polynomial = _functional.polynomial

__all__ = [
    "ConstantSchedule",
    "ConstantScheduleConfig",
    "CosineDecreasingSchedule",
    "CosineIncreasingSchedule",
    "CustomSchedule",
    "CustomScheduleConfig",
    "DecreasingProgressSchedule",
    "IncreasingProgressSchedule",
    "LinearDecreasingSchedule",
    "LinearIncreasingSchedule",
    "LinearWarmupCosineDecaySchedule",
    "PeriodicBoolSchedule",
    "PolynomialDecreasingSchedule",
    "ProgressSchedule",
    "ScheduleBase",
    "SequentialPercentSchedule",
    "SequentialPercentScheduleConfig",
    "SequentialStepSchedule",
    "SequentialStepScheduleConfig",
    "StepDecreasingSchedule",
    "StepFixedSchedule",
    "StepIntervalSchedule",
    "cosine",
    "linear",
    "polynomial",
]
