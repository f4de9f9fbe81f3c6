"""The check a scheduled hyperparameter passes before the optimizer wrapper applies it."""

from __future__ import annotations

import math

from noether.core.utils.training.schedule_wrapper import ScheduleWrapper

__all__ = ["checked_schedule_value"]


def checked_schedule_value(schedule: ScheduleWrapper, hyperparameter: str) -> float:
    """The schedule's current value as a float, refused if it is not finite or is negative.

    Validated configs cannot produce such a value, but a user-defined schedule can; applied, a NaN learning rate
    turns every parameter into NaN without any error.

    Args:
        schedule: The schedule of ``hyperparameter``.
        hyperparameter: The param-group key the value is for (``"lr"`` or ``"weight_decay"``), named in the error.

    Raises:
        ValueError: If the value is NaN, infinite or negative; nothing has been applied.
    """
    value = float(schedule.get_value())
    if not (math.isfinite(value) and value >= 0.0):
        counter = schedule.update_counter
        where = "" if counter is None else f" at update {counter.cur_iteration.update}"
        raise ValueError(
            f"the {hyperparameter} schedule {schedule.schedule} gave {value!r}{where}; a scheduled {hyperparameter} "
            "must be a finite number >= 0, so it was not applied"
        )
    return value
