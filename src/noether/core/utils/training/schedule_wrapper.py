"""Evaluates a schedule at the current position of an :class:`UpdateCounter`."""

from __future__ import annotations

import logging
import math
from typing import Literal

from noether.core.schedules.base import ScheduleBase
from noether.core.schedules.constant import ConstantSchedule
from noether.core.utils.training.counter import UpdateCounter

__all__ = ["ScheduleWrapper"]

_INTERVALS = ("update", "epoch")

logger = logging.getLogger(__name__)


class ScheduleWrapper:
    """A schedule bound to a run: :meth:`get_value` gives the value at the counter's current position.

    With ``interval="update"`` the schedule advances every update: ``schedule.get_value(update, end_update)``. With
    ``interval="epoch"`` it advances once per epoch and is constant within an epoch; the run is still measured in
    updates (so ``warmup_steps`` and the like count updates), and the last epoch gets the schedule's final value:
    with ``L`` the index of the last epoch the step is ``epoch * updates_per_epoch`` out of
    ``L * updates_per_epoch + 1`` steps.

    Positions are absolute, so a run resumed from a checkpoint continues the same curve. Past the end of the run
    (a framework that steps once more, a loop that runs longer than its counter says) the schedule holds its final
    value, with one warning per wrapper, rather than stopping the run.

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
        self._warned_past_end = False

    def get_value(self) -> float:
        """The schedule's value at the counter's current position.

        Raises:
            ValueError: Without a counter, if the schedule is not constant; with one, if the position it needs is
                not set.
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
            update = current.update
            if update > end.update:
                self._warn_past_end(f"update {update}", f"the last update is {end.update}")
                update = end.update
            return self.schedule.get_value(update, end.update)
        if current.epoch is None or end.update is None:
            raise ValueError(f"interval 'epoch' needs the current epoch and end update, got {current!r} / {end!r}")
        epoch = current.epoch
        last_epoch = self._last_epoch(end.update, counter.updates_per_epoch)
        if epoch > last_epoch + 1:
            self._warn_past_end(f"epoch {epoch}", f"the last epoch is {last_epoch}")
            epoch = last_epoch + 1
        return self.schedule.get_value(*self._epoch_position(epoch, end.update, counter.updates_per_epoch))

    def _warn_past_end(self, position: str, end: str) -> None:
        if not self._warned_past_end:
            self._warned_past_end = True
            logger.warning(
                "%s: the run is at %s but %s; holding the schedule's final value from here on (is the run longer "
                "than its UpdateCounter, or does the loop advance the counter twice?)",
                self,
                position,
                end,
            )

    @staticmethod
    def _last_epoch(end_update: int, updates_per_epoch: int) -> int:
        return max(0, math.ceil(end_update / updates_per_epoch) - 1)

    @staticmethod
    def _epoch_position(epoch: int, end_update: int, updates_per_epoch: int) -> tuple[int, int]:
        # The original used (epoch * upe, end_epoch * upe): the last epoch then never got the final value. Here the
        # last epoch L (the one containing the final update) sits on the last step of L * upe + 1 steps.
        last_epoch = ScheduleWrapper._last_epoch(end_update, updates_per_epoch)
        total_steps = last_epoch * updates_per_epoch + 1
        # After the last epoch has completed, the counter reads last_epoch + 1: hold the final value.
        return min(epoch * updates_per_epoch, total_steps), total_steps

    def __str__(self) -> str:
        return f"ScheduleWrapper({self.schedule}, interval={self.interval})"
