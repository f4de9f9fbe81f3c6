"""The schedule contract (:class:`ScheduleBase`), progress schedules and sequential composition.

A schedule maps a position ``step`` in a run of ``total_steps`` steps to a value (a learning rate, a weight decay,
...). Positions are absolute, so a resumed run continues the same curve.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from noether.core.schemas.schedules import (
    DecreasingProgressScheduleConfig,
    IncreasingProgressScheduleConfig,
    ProgressScheduleConfig,
)

__all__ = [
    "DecreasingProgressSchedule",
    "IncreasingProgressSchedule",
    "ProgressSchedule",
    "ScheduleBase",
    "SequentialPercentSchedule",
    "SequentialPercentScheduleConfig",
    "SequentialStepSchedule",
    "SequentialStepScheduleConfig",
    "percent_to_step",
    "require_max_value",
]

_FLOAT_TOLERANCE = 1e-9
"""Relative tolerance for float error in percent boundaries: 0.29 * 100 is 28.999999999999996, which means 29."""


def percent_to_step(percent: float, total_steps: int) -> int:
    """The step at which ``percent`` of a run of ``total_steps`` steps is reached: ``floor((T - 1) * percent)``.

    The floor tolerates float error, so 0.29 of a 101-step run is step 29 (plain ``int`` gives 28).
    """
    exact = (total_steps - 1) * percent
    nearest = round(exact)
    if abs(exact - nearest) <= _FLOAT_TOLERANCE * max(1.0, abs(exact)):
        return int(nearest)
    return math.floor(exact)


def require_max_value(max_value: float | None, owner: str) -> float:
    """Return ``max_value``, or raise a clear error when it was left unset and no default was given."""
    if max_value is None:
        raise ValueError(
            f"{owner}: max_value is not set. Give max_value in the schedule config, or build the schedule with "
            "ScheduleFactory().create(config, default_max_value=...) (the OptimizerWrapper passes the optimizer's "
            "lr, or weight_decay for a weight-decay schedule)."
        )
    return max_value


class ScheduleBase:
    """Base class of all schedules.

    Subclasses implement ``_get_value(step, total_steps)``; :meth:`get_value` validates the position and applies the
    overhang before calling it, and must not be overridden.

    Args:
        overhang_percent: Evaluate the schedule as if the run were ``T + int(T * overhang_percent)`` steps long, so
            it stops before reaching its end value.
        overhang_steps: The same with ``T + overhang_steps``.

    Raises:
        ValueError: If both overhangs are set, or one is negative.
        NotImplementedError: If the subclass overrides :meth:`get_value`.
    """

    def __init__(self, overhang_percent: float | None = None, overhang_steps: int | None = None) -> None:
        if type(self).get_value is not ScheduleBase.get_value:
            raise NotImplementedError(
                f"{type(self).__name__} overrides get_value; implement _get_value(step, total_steps) instead"
            )
        if overhang_percent is not None and overhang_steps is not None:
            raise ValueError(
                f"set at most one of overhang_percent ({overhang_percent}) and overhang_steps ({overhang_steps})"
            )
        if overhang_percent is not None and not overhang_percent >= 0:
            raise ValueError(f"overhang_percent must be >= 0, got {overhang_percent}")
        if overhang_steps is not None and overhang_steps < 0:
            raise ValueError(f"overhang_steps must be >= 0, got {overhang_steps}")
        self.overhang_percent = overhang_percent
        self.overhang_steps = overhang_steps

    def get_value(self, step: int, total_steps: int) -> float:
        """The value at ``step`` of a run of ``total_steps`` steps.

        Args:
            step: The position, in ``[0, total_steps]``; ``total_steps`` itself (the position after the last
                update) gives the schedule's final value.
            total_steps: The length of the run, at least 1.

        Raises:
            ValueError: If ``total_steps < 1`` or ``step`` is outside ``[0, total_steps]``.
        """
        if total_steps < 1:
            raise ValueError(f"{self}: total_steps must be >= 1, got {total_steps}")
        if not 0 <= step <= total_steps:
            raise ValueError(f"{self}: step must be in [0, total_steps={total_steps}], got {step}")
        if self.overhang_percent is not None:
            total_steps += int(total_steps * self.overhang_percent)
        elif self.overhang_steps is not None:
            total_steps += self.overhang_steps
        return self._get_value(step, total_steps)

    def _get_value(self, step: int, total_steps: int) -> float:
        """The value at ``step`` of ``total_steps`` (overhang included); implemented by subclasses."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _get_value")

    def __str__(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return str(self)


class ProgressSchedule(ScheduleBase):
    """``start_value + progress(s, T) * delta`` for a progress function in [0, 1] given by the subclass.

    ``exclude_last`` stretches the run by one step, so the last step stops one step short of the end value;
    ``exclude_first`` shifts it by one step, so step 0 already has the value one step in.

    Args:
        config: Supplies ``exclude_first``, ``exclude_last`` and the overhangs.
        start_value: The value at progress 0.
        delta: ``end - start``.
    """

    def __init__(self, config: ProgressScheduleConfig, start_value: float, delta: float) -> None:
        super().__init__(overhang_percent=config.overhang_percent, overhang_steps=config.overhang_steps)
        self.config = config
        self.start_value = start_value
        self.delta = delta
        self.exclude_first = config.exclude_first
        self.exclude_last = config.exclude_last

    def _get_value(self, step: int, total_steps: int) -> float:
        if self.exclude_last:
            total_steps += 1
        if self.exclude_first:
            step += 1
            total_steps += 1
        return self.start_value + self._get_progress(step, total_steps) * self.delta

    def _get_progress(self, step: int, total_steps: int) -> float:
        """Progress in [0, 1] at ``step`` of ``total_steps`` (after the exclusion adjustments)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no progress function; use a concrete schedule such as "
            "LinearDecreasingSchedule or CosineIncreasingSchedule"
        )

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}(start={self.start_value}, end={self.start_value + self.delta}, "
            f"excl_first={self.exclude_first}, excl_last={self.exclude_last})"
        )


class DecreasingProgressSchedule(ProgressSchedule):
    """A progress schedule from ``config.max_value`` down to ``config.end_value``.

    Raises:
        ValueError: If ``max_value`` is unset or smaller than ``end_value``.
    """

    def __init__(self, config: DecreasingProgressScheduleConfig) -> None:
        max_value = require_max_value(config.max_value, type(self).__name__)
        if config.end_value > max_value:
            raise ValueError(
                f"{type(self).__name__}: end_value ({config.end_value}) must not be larger than max_value "
                f"({max_value}) for a decreasing schedule"
            )
        super().__init__(config, start_value=max_value, delta=config.end_value - max_value)


class IncreasingProgressSchedule(ProgressSchedule):
    """A progress schedule from ``config.start_value`` up to ``config.max_value``.

    Raises:
        ValueError: If ``max_value`` is unset or smaller than ``start_value``.
    """

    def __init__(self, config: IncreasingProgressScheduleConfig) -> None:
        max_value = require_max_value(config.max_value, type(self).__name__)
        if config.start_value > max_value:
            raise ValueError(
                f"{type(self).__name__}: start_value ({config.start_value}) must not be larger than max_value "
                f"({max_value}) for an increasing schedule"
            )
        super().__init__(config, start_value=config.start_value, delta=max_value - config.start_value)


# --------------------------------------------------------------------------------------------------------------------
# Sequential composition

BoundaryT = TypeVar("BoundaryT", int, float)


@dataclasses.dataclass(repr=False)
class SequentialStepScheduleConfig:
    """One segment of a :class:`SequentialStepSchedule`: ``schedule`` runs from ``start_step`` to ``end_step``.

    ``None`` boundaries are filled in from the neighbouring segments; the last segment's ``end_step=None`` is open.
    """

    schedule: ScheduleBase
    start_step: int | None = None
    end_step: int | None = None

    def __str__(self) -> str:
        return f"{self.start_step} - {self.end_step} {self.schedule}"

    def __repr__(self) -> str:
        return str(self)


@dataclasses.dataclass(repr=False)
class SequentialPercentScheduleConfig:
    """One segment of a :class:`SequentialPercentSchedule`, with boundaries as fractions of the run in [0, 1]."""

    schedule: ScheduleBase
    start_percent: float | None = None
    end_percent: float | None = None

    def __str__(self) -> str:
        return f"{self.start_percent} - {self.end_percent} {self.schedule}"

    def __repr__(self) -> str:
        return str(self)


class _SequentialSchedule(ScheduleBase, Generic[BoundaryT]):
    """Shared propagation, validation, selection and str of the two sequential schedules."""

    _unit = ""

    def __init__(self, segments: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(segments) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one schedule config, got none")
        self.schedule_configs = list(segments)
        self._propagate()
        self._validate()

    # Subclasses map their dataclass fields onto (start, end).
    def _bounds(self, index: int) -> tuple[BoundaryT | None, BoundaryT | None]:
        raise NotImplementedError

    def _set_bounds(self, index: int, start: BoundaryT | None, end: BoundaryT | None) -> None:
        raise NotImplementedError

    def _propagate(self) -> None:
        # A missing start takes the previous segment's end, a missing end the next segment's start; the first
        # segment starts at 0 by default and the last one may stay open-ended.
        n = len(self.schedule_configs)
        start, end = self._bounds(0)
        if start is None:
            self._set_bounds(0, 0, end)
        for i in range(1, n):
            start, end = self._bounds(i)
            if start is None:
                start = self._bounds(i - 1)[1]
                if start is None:
                    raise ValueError(
                        f"{type(self).__name__}: config {i} has no start{self._unit} and config {i - 1} no "
                        f"end{self._unit} to take it from"
                    )
                self._set_bounds(i, start, end)
        for i in range(n - 1):
            start, end = self._bounds(i)
            if end is None:
                self._set_bounds(i, start, self._bounds(i + 1)[0])

    def _validate(self) -> None:
        n = len(self.schedule_configs)
        name = type(self).__name__
        for i in range(n):
            start, end = self._bounds(i)
            field = f"{name} config {i}"
            if start is None or (end is None and i < n - 1):
                raise ValueError(f"{field}: start{self._unit} ({start}) and end{self._unit} ({end}) must be set")
            if start < 0:
                raise ValueError(f"{field}: start{self._unit} must be >= 0, got {start}")
            if end is not None and start > end:
                raise ValueError(f"{field}: start{self._unit} ({start}) must be <= end{self._unit} ({end})")
            self._validate_upper(field, start, end)
            if i < n - 1:
                next_start = self._bounds(i + 1)[0]
                if end is not None and next_start is not None and end > next_start:
                    raise ValueError(
                        f"{field}: end{self._unit} ({end}) must be <= the next config's start{self._unit} "
                        f"({next_start})"
                    )

    def _validate_upper(self, field: str, start: BoundaryT, end: BoundaryT | None) -> None:
        pass

    def _steps(self, index: int, total_steps: int) -> tuple[int, int]:
        """The segment's (start, end) in steps of a run of ``total_steps``."""
        raise NotImplementedError

    def _select(self, step: int, total_steps: int) -> int | None:
        """The index of the segment active at ``step``: the last one that has started, or None before the first."""
        for index in reversed(range(len(self.schedule_configs))):
            if self._steps(index, total_steps)[0] <= step:
                return index
        return None

    def _selected_config(self, step: int, total_steps: int) -> Any:
        index = self._select(step, total_steps)
        return None if index is None else self.schedule_configs[index]

    def _get_value(self, step: int, total_steps: int) -> float:
        index = self._select(step, total_steps)
        if index is None:
            start, end = self._steps(0, total_steps)
            return self._segment(0).get_value(0, max(1, end - start))
        start, end = self._steps(index, total_steps)
        length = end - start
        schedule = self._segment(index)
        if length <= 0:
            return schedule.get_value(0, 1)
        offset = step - start
        if offset >= length:
            # Past the segment's end (a gap before the next one, or past the run): hold its final value.
            return schedule.get_value(length - 1, length)
        return schedule.get_value(offset, length)

    def _segment(self, index: int) -> ScheduleBase:
        schedule: ScheduleBase = self.schedule_configs[index].schedule
        return schedule

    def __str__(self) -> str:
        # The original's rendering, kept line for line because logs are read by people and scripts: the class name
        # alone on the first line (no opening parenthesis), one line per segment, then a closing parenthesis.
        lines = [type(self).__name__]
        lines += [f"  ({i}): {config}" for i, config in enumerate(self.schedule_configs)]
        lines.append(")")
        return "\n".join(lines)


class SequentialStepSchedule(_SequentialSchedule[int]):
    """Runs several schedules one after another, with segment boundaries in steps.

    Each segment's schedule sees its own run ``[start_step, end_step)``; the last segment's ``end_step`` may be
    ``None`` (until the end of the run). Before the first segment the first schedule's initial value is used; in a gap
    between segments, and past the end, the previous segment holds its final value.

    Args:
        schedule_configs: The segments, in order.
        **kwargs: ``overhang_percent`` / ``overhang_steps`` for the whole composition.

    Raises:
        ValueError: If no segment is given, a boundary is missing or negative, or segments are out of order.
    """

    _unit = "_step"

    def __init__(self, schedule_configs: Sequence[SequentialStepScheduleConfig], **kwargs: Any) -> None:
        super().__init__(schedule_configs, **kwargs)

    def _bounds(self, index: int) -> tuple[int | None, int | None]:
        config = self.schedule_configs[index]
        return config.start_step, config.end_step

    def _set_bounds(self, index: int, start: int | None, end: int | None) -> None:
        self.schedule_configs[index].start_step = start
        self.schedule_configs[index].end_step = end

    def get_sequential_schedule_config(self, step: int) -> SequentialStepScheduleConfig | None:
        """The segment active at ``step``: the last one whose ``start_step <= step``, or None before the first.

        Past a segment's ``end_step`` (in a gap, or after the last segment) that segment stays selected.
        """
        # A step segment's start does not depend on the run length, so any total_steps selects the same segment.
        config: SequentialStepScheduleConfig | None = self._selected_config(step, total_steps=step)
        return config

    def _steps(self, index: int, total_steps: int) -> tuple[int, int]:
        start, end = self._bounds(index)
        assert start is not None  # guaranteed by _validate
        # An end of 0 is a zero-length segment, not an open one (the original's `end or T` conflated them).
        return start, total_steps if end is None else end


class SequentialPercentSchedule(_SequentialSchedule[float]):
    """Runs several schedules one after another, with segment boundaries as fractions of the run.

    A boundary ``p`` is step ``floor((T - 1) * p)`` (with a tolerance for float error); the last segment ends at 1.0.
    Otherwise as :class:`SequentialStepSchedule`.

    Raises:
        ValueError: If no segment is given, a boundary is missing or outside [0, 1], or segments are out of order.
    """

    _unit = "_percent"

    def __init__(self, schedule_configs: Sequence[SequentialPercentScheduleConfig]) -> None:
        super().__init__(schedule_configs)

    def _propagate(self) -> None:
        super()._propagate()
        last = self.schedule_configs[-1]
        if last.end_percent is None:
            last.end_percent = 1.0

    def _bounds(self, index: int) -> tuple[float | None, float | None]:
        config = self.schedule_configs[index]
        return config.start_percent, config.end_percent

    def _set_bounds(self, index: int, start: float | None, end: float | None) -> None:
        self.schedule_configs[index].start_percent = start
        self.schedule_configs[index].end_percent = end

    def _validate_upper(self, field: str, start: float, end: float | None) -> None:
        if start > 1 or (end is not None and end > 1):
            raise ValueError(f"{field}: start_percent ({start}) and end_percent ({end}) must be <= 1")

    def get_sequential_schedule_config(self, step: int, total_steps: int) -> SequentialPercentScheduleConfig | None:
        """The segment active at ``step`` of a run of ``total_steps``, or None before the first segment starts.

        A segment starts at step ``floor((total_steps - 1) * start_percent)`` (with a tolerance for float error);
        the last segment that has started is selected, also past its ``end_percent``.
        """
        config: SequentialPercentScheduleConfig | None = self._selected_config(step, total_steps)
        return config

    def _steps(self, index: int, total_steps: int) -> tuple[int, int]:
        start, end = self._bounds(index)
        assert start is not None  # guaranteed by _validate
        is_last = index == len(self.schedule_configs) - 1
        # Only the last segment runs to T at 1.0. The original did this for every segment, so a warmup with
        # warmup_percent 1.0 stretched over T steps while the decay already started at step T - 1.
        if end is None or (end == 1.0 and is_last):
            return percent_to_step(start, total_steps), total_steps
        return percent_to_step(start, total_steps), percent_to_step(end, total_steps)
