"""Linear warmup followed by cosine decay, the most common learning-rate schedule."""

from __future__ import annotations

from noether.core.schedules.base import (
    ScheduleBase,
    SequentialPercentSchedule,
    SequentialPercentScheduleConfig,
    SequentialStepSchedule,
    SequentialStepScheduleConfig,
    require_max_value,
)
from noether.core.schedules.cosine import CosineDecreasingSchedule
from noether.core.schedules.linear import LinearIncreasingSchedule
from noether.core.schemas.schedules import (
    CosineDecreasingScheduleConfig,
    LinearIncreasingScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
)

__all__ = ["LinearWarmupCosineDecaySchedule"]


class LinearWarmupCosineDecaySchedule(ScheduleBase):
    """Linear warmup from ``start_value`` to ``max_value`` over ``W`` steps, then cosine decay to ``end_value``.

    With ``D = T - W`` decay steps:

    * ``s < W``: ``start + (s + 1) / (W + 1) * (max - start)`` if ``start == 0`` (so the first value is not 0),
      otherwise ``start + s / W * (max - start)``;
    * ``s >= W``: ``end + (max - end) * (1 + cos(pi * min(s - W, D - 1) / max(1, D - 1))) / 2``.

    ``W`` is ``warmup_steps``, or ``floor((T - 1) * warmup_percent)`` (with a tolerance for float error).

    Raises:
        ValueError: If both or neither warmup fields are set, ``max_value`` is unset, ``start_value`` or ``end_value``
            exceed ``max_value``; at :meth:`get_value`, if ``warmup_steps`` is not shorter than the run.
    """

    def __init__(self, config: LinearWarmupCosineDecayScheduleConfig) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        if (config.warmup_steps is None) == (config.warmup_percent is None):
            raise ValueError(
                "LinearWarmupCosineDecaySchedule: define exactly one of warmup_steps or warmup_percent, got "
                f"warmup_steps={config.warmup_steps} and warmup_percent={config.warmup_percent}"
            )
        max_value = require_max_value(config.max_value, type(self).__name__)
        for name, value in (("start_value", config.start_value), ("end_value", config.end_value)):
            if value > max_value:
                raise ValueError(
                    f"LinearWarmupCosineDecaySchedule: {name} ({value}) must not be larger than max_value ({max_value})"
                )
        self.warmup_steps = config.warmup_steps
        self.warmup_percent = config.warmup_percent
        warmup = LinearIncreasingSchedule(
            LinearIncreasingScheduleConfig(
                start_value=config.start_value,
                max_value=max_value,
                exclude_first=config.start_value == 0,
                exclude_last=True,
            )
        )
        decay_config = CosineDecreasingScheduleConfig(max_value=max_value, end_value=config.end_value)
        decay = CosineDecreasingSchedule(decay_config)
        self.schedule: SequentialStepSchedule | SequentialPercentSchedule
        if config.warmup_steps is not None:
            self.schedule = SequentialStepSchedule(
                [
                    SequentialStepScheduleConfig(warmup, start_step=0, end_step=config.warmup_steps),
                    SequentialStepScheduleConfig(decay, start_step=config.warmup_steps),
                ]
            )
        else:
            assert config.warmup_percent is not None
            self.schedule = SequentialPercentSchedule(
                [
                    SequentialPercentScheduleConfig(warmup, end_percent=config.warmup_percent),
                    SequentialPercentScheduleConfig(decay, start_percent=config.warmup_percent),
                ]
            )

    def _get_value(self, step: int, total_steps: int) -> float:
        if self.warmup_steps is not None and self.warmup_steps >= total_steps:
            raise ValueError(
                f"LinearWarmupCosineDecaySchedule: warmup_steps ({self.warmup_steps}) must be smaller than the run's "
                f"total_steps ({total_steps}), or the schedule never decays"
            )
        return self.schedule.get_value(step, total_steps)

    def __str__(self) -> str:
        if self.warmup_percent is not None:
            return f"{type(self).__name__}(warmup_percent={self.warmup_percent})"
        return f"{type(self).__name__}(warmup_steps={self.warmup_steps})"
