"""Preview a schedule: its values over a run, as a numpy array (for plots, sanity checks and tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from noether.core.builders.schedule import ScheduleFactory
from noether.core.schedules.base import ScheduleBase
from noether.core.schemas.schedules import ScheduleBaseConfig
from noether.core.utils.training.counter import UpdateCounter
from noether.core.utils.training.schedule_wrapper import ScheduleWrapper
from noether.core.utils.training.training_iteration import TrainingIteration

__all__ = ["schedule_values"]


def schedule_values(
    schedule: ScheduleBase | ScheduleBaseConfig | Mapping[str, Any],
    steps: int | UpdateCounter,
    max_value: float | None = None,
) -> npt.NDArray[np.float64]:
    """The values a schedule takes over a run.

    Examples:
        >>> from noether.core.schedules.preview import schedule_values
        >>> cfg = {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 2}
        >>> schedule_values(cfg, 5, max_value=1.0).round(4).tolist()
        [0.3333, 0.6667, 1.0, 0.5, 0.0]

    Args:
        schedule: A built schedule, a schedule config, or a mapping (e.g. parsed YAML) with a ``kind``.
        steps: The run length ``T`` (the values at steps ``0 .. T - 1``), or an :class:`UpdateCounter`: the values
            at each update from its start to its end, as the optimizer would see them (with the config's
            ``interval``, so ``"epoch"`` is constant within an epoch). The counter is not modified.
        max_value: The value an unset ``max_value`` in a config takes (as the optimizer's ``lr`` would).

    Returns:
        A float64 array with one value per step.

    Raises:
        ValueError: If ``steps`` is below 1 or the counter's run is empty, or ``max_value`` is given with an
            already built schedule.
    """
    interval = "update"
    if isinstance(schedule, ScheduleBase):
        if max_value is not None:
            raise ValueError("max_value only applies to a schedule config; this schedule is already built")
        built = schedule
    else:
        wrapper = ScheduleFactory().create(schedule, default_max_value=max_value)
        if wrapper is None:
            raise ValueError("schedule: got an empty config; give a schedule config with a 'kind'")
        built, interval = wrapper.schedule, wrapper.interval
    if isinstance(steps, UpdateCounter):
        return _values_over_counter(built, steps, interval)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int or an UpdateCounter, got {steps!r}")
    return np.array([built.get_value(step, steps) for step in range(steps)], dtype=np.float64)


def _values_over_counter(schedule: ScheduleBase, counter: UpdateCounter, interval: str) -> npt.NDArray[np.float64]:
    start, end = counter.start_iteration, counter.end_iteration
    assert start.update is not None and end.update is not None
    if end.update <= start.update:
        raise ValueError(f"steps: the counter's run is empty (start {start}, end {end})")
    upe, ebs = counter.updates_per_epoch, counter.effective_batch_size
    # A private counter, so the caller's position is untouched.
    replay = UpdateCounter(start.copy(), TrainingIteration(update=end.update), upe, ebs)
    wrapper = ScheduleWrapper(schedule, replay, interval=interval)
    values = []
    for update in range(start.update, end.update):
        replay.cur_iteration = TrainingIteration(update=update).to_fully_specified(upe, ebs)
        values.append(wrapper.get_value())
    return np.array(values, dtype=np.float64)
