"""Evaluates a schedule at the current position of an :class:`UpdateCounter`."""

from __future__ import annotations

import math
from typing import Literal

from noether.core.schedules.base import ScheduleBase
from noether.core.schedules.constant import ConstantSchedule
from noether.core.utils.training.counter import UpdateCounter

__all__ = ["ScheduleWrapper"]

_INTERVALS = ("update", "epoch")


class ScheduleWrapper:
    """A schedule bound to a run: :meth:`get_value` gives the value at the counter's current position.

    With ``interval="update"`` the schedule advances every update: ``schedule.get_value(update, end_update)``. With
    ``interval="epoch"`` it advances once per epoch and is constant within an epoch; the run is still measured in
    updates (so ``warmup_steps`` and the like count updates), and the last epoch gets the schedule's final value:
    with ``L`` the index of the last epoch the step is ``epoch * updates_per_epoch`` out of
    ``L * updates_per_epoch + 1`` steps.

    Positions are absolute, so a run resumed from a checkpoint continues the same curve.

    Args:
        schedule: The schedule.
        update_counter: The run's counter; ``None`` is allowed for a :class:`ConstantSchedule` only.
        interval: ``"update"`` or ``"epoch"``.

    Raises:
        NotImplementedError: If ``interval`` is neither ``"update"`` nor ``"epoch"``.
    """

    def __init__(
        self,
        schedule: ScheduleBase,
        update_counter: UpdateCounter | None = None,
        interval: Literal["update", "epoch"] | str = "update",
    ) -> None:
        if interval not in _INTERVALS:
            raise NotImplementedError(f"interval must be one of {list(_INTERVALS)}, got {interval!r}")
        self.schedule = schedule
        self.update_counter = update_counter
        self.interval = interval

    def get_value(self) -> float:
        """The schedule's value at the counter's current position.

        Raises:
            ValueError: Without a counter, if the schedule is not constant; with one, if the position it needs is
                not set, or lies past the end of the run.
        """
        counter = self.update_counter
        if counter is None:
            if not isinstance(self.schedule, ConstantSchedule):
                raise ValueError(
                    f"ScheduleWrapper for {self.schedule} has no update_counter; only a ConstantSchedule can be "
                    "evaluated without one"
                )
            return self.schedule.get_value(0, 1)
        current, end = counter.cur_iteration, counter.end_iteration
        if self.interval == "update":
            if current.update is None or end.update is None:
                raise ValueError(f"interval 'update' needs the current and end update, got {current!r} / {end!r}")
            return self.schedule.get_value(current.update, end.update)
        if current.epoch is None or end.update is None:
            raise ValueError(f"interval 'epoch' needs the current epoch and end update, got {current!r} / {end!r}")
        return self.schedule.get_value(*self._epoch_position(current.epoch, end.update, counter.updates_per_epoch))

    @staticmethod
    def _epoch_position(epoch: int, end_update: int, updates_per_epoch: int) -> tuple[int, int]:
        # The original used (epoch * upe, end_epoch * upe): the last epoch then never got the final value. Here the
        # last epoch L (the one containing the final update) sits on the last step of L * upe + 1 steps.
        last_epoch = max(0, math.ceil(end_update / updates_per_epoch) - 1)
        total_steps = last_epoch * updates_per_epoch + 1
        if epoch > last_epoch + 1:
            raise ValueError(f"epoch {epoch} is past the end of the run (last epoch {last_epoch})")
        # After the last epoch has completed, the counter reads last_epoch + 1: hold the final value.
        return min(epoch * updates_per_epoch, total_steps), total_steps

    def __str__(self) -> str:
        return f"ScheduleWrapper({self.schedule}, interval={self.interval})"
