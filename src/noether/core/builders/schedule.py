"""Builds schedules from configs and binds them to a run's :class:`UpdateCounter`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from noether.core.builders.factory import Factory
from noether.core.builders.kinds import class_constructor_from_class_path
from noether.core.schedules.base import ScheduleBase
from noether.core.schemas.schedules import (
    ScheduleBaseConfig,
    registered_schedule_configs,
    unusable_kind_reason,
    validate_schedule_config,
)
from noether.core.utils.training.counter import UpdateCounter
from noether.core.utils.training.schedule_wrapper import ScheduleWrapper

__all__ = ["ScheduleFactory"]

logger = logging.getLogger(__name__)


class ScheduleFactory(Factory):
    """Creates a :class:`ScheduleWrapper` from a schedule config.

    The config's ``kind`` resolves only to a :class:`~noether.core.schedules.ScheduleBase` subclass under the
    allowed module prefixes (``noether``, plus those registered), or to the exact class path of a schedule config
    registered with :func:`~noether.core.schemas.schedules.register_schedule_config` (for as long as it stays
    registered); anything else is refused before it is imported.
    """

    base_class = ScheduleBase

    def resolve_kind(self, kind: str) -> type[Any]:
        """Resolve ``kind`` to a ``ScheduleBase`` subclass; registered configs' kinds are allowed as exact paths."""
        return class_constructor_from_class_path(
            kind, base=ScheduleBase, exact_class_paths=registered_schedule_configs().keys()
        )

    def create(  # type: ignore[override]
        self,
        obj: ScheduleBaseConfig | Mapping[str, Any] | None,
        update_counter: UpdateCounter | None = None,
        default_max_value: float | None = None,
        **kwargs: Any,
    ) -> ScheduleWrapper | None:
        """Build the schedule ``obj`` describes and wrap it with ``update_counter``.

        Args:
            obj: A schedule config, or a mapping (e.g. parsed YAML) validated into one; ``None`` or an empty mapping
                gives ``None``.
            update_counter: The run's counter; ``None`` only works for a constant schedule.
            default_max_value: The value a config's unset ``max_value`` takes (the ``OptimizerWrapper`` passes the
                optimizer's ``lr``, or its ``weight_decay`` for a weight-decay schedule). The config itself is not
                modified.
            **kwargs: Extra keyword arguments for the schedule's constructor.

        Returns:
            The wrapper, or ``None`` without a config.

        Raises:
            pydantic.ValidationError: If a mapping is not a valid schedule config.
            KindResolutionError: If ``kind`` does not resolve to an allowed ``ScheduleBase`` subclass.
            ValueError: If ``max_value`` is needed but neither set nor defaulted, the config is inconsistent, or its
                kind is one of the original's that never built a working schedule (e.g. ``ProgressSchedule``).
        """
        if obj is None or (isinstance(obj, Mapping) and len(obj) == 0):
            return None
        config = obj if isinstance(obj, ScheduleBaseConfig) else validate_schedule_config(obj)
        reason = unusable_kind_reason(config.kind)
        if reason is not None:
            # Refused here rather than with a NotImplementedError at the first value, mid-training.
            raise ValueError(f"kind {config.kind!r} cannot be used as a schedule: {reason}")
        config = self.with_default_max_value(config, default_max_value)
        schedule = self.instantiate(config, **kwargs)
        return ScheduleWrapper(schedule=schedule, update_counter=update_counter, interval=config.interval)

    def instantiate(self, obj: Any = None, **kwargs: Any) -> ScheduleBase:
        """Resolve ``obj.kind`` (safely, to a ``ScheduleBase`` subclass) and build ``cls(obj, **kwargs)``."""
        if not isinstance(obj, ScheduleBaseConfig):
            raise TypeError(f"ScheduleFactory builds from a schedule config, got {type(obj).__name__}")
        schedule: ScheduleBase = super().instantiate(obj, **kwargs)
        return schedule

    @staticmethod
    def with_default_max_value(config: ScheduleBaseConfig, default_max_value: float | None) -> ScheduleBaseConfig:
        """A copy of ``config`` whose unset ``max_value`` is ``default_max_value`` (``config`` if nothing changes).

        The copy is validated again, so a default below the config's ``end_value`` is reported clearly.
        """
        if default_max_value is None or "max_value" not in type(config).model_fields:
            return config
        if getattr(config, "max_value", None) is not None:
            return config
        logger.info(
            "%s: max_value is not set, using the optimizer's configured value %s",
            type(config).__name__,
            default_max_value,
        )
        return type(config).model_validate({**config.model_dump(exclude_unset=True), "max_value": default_max_value})
