"""Pydantic configs for learning-rate and weight-decay schedules.

Every config names the schedule class to build in its ``kind`` field. ``kind`` accepts the short path of the original
framework (``noether.core.schedules.CosineDecreasingSchedule``) and the class's full module path
(``noether.core.schedules.cosine.CosineDecreasingSchedule``). Unknown keys are rejected with a message that names them
(a typo must not silently fall back to a default).

:data:`AnyScheduleConfig` is the type to use for a schedule field of another config: it picks the config class from
``kind``, and also accepts configs of user-defined schedules registered with :func:`register_schedule_config`.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    WrapSerializer,
    WrapValidator,
    field_validator,
    model_validator,
)

from noether.core.schemas.bounds import (
    MAX_SCHEDULE_VALUE,
    MIN_INTERVAL,
    Factor,
    Fraction,
    OverhangPercent,
    Power,
    ScheduleValue,
    StepCount,
    bounded,
)

__all__ = [
    "AnyScheduleConfig",
    "ConstantScheduleConfig",
    "CosineDecreasingScheduleConfig",
    "CosineIncreasingScheduleConfig",
    "CustomScheduleConfig",
    "DecreasingProgressScheduleConfig",
    "IncreasingProgressScheduleConfig",
    "LinearDecreasingScheduleConfig",
    "LinearIncreasingScheduleConfig",
    "LinearWarmupCosineDecayScheduleConfig",
    "PeriodicBoolScheduleConfig",
    "PolynomialDecreasingScheduleConfig",
    "PolynomialIncreasingScheduleConfig",
    "ProgressScheduleConfig",
    "ScheduleBaseConfig",
    "SchedulerConfig",
    "StepDecreasingScheduleConfig",
    "StepFixedScheduleConfig",
    "StepIntervalScheduleConfig",
    "kinds_of",
    "register_schedule_config",
    "registered_schedule_configs",
    "schedule_config_class_for_kind",
    "unregister_schedule_config",
    "unusable_kind_reason",
    "validate_schedule_config",
]

logger = logging.getLogger(__name__)

_CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
"""A dotted class path with at least a module and a class name."""

_SHORT = "noether.core.schedules."
"""Prefix of the short ``kind`` strings of the original framework."""


def kind_text_or_none(value: Any, what: str, example: str) -> Any:
    """A ``mode="before"`` check of a config's ``kind``: ``None`` or a str, else a ValueError naming what it names.

    Lax validation would turn ``b"pkg.Class"`` into a str; a kind is a class path written as text, nothing else.
    Shared by the schedule and the optimizer configs.

    Args:
        value: The raw ``kind`` value.
        what: What the kind names, for the message (e.g. ``"the schedule class"``).
        example: A valid kind, for the message.
    """
    if value is not None and not isinstance(value, str):
        raise ValueError(f"kind must be a str naming {what}, e.g. {example!r}, got {type(value).__name__} {value!r}")
    return value


# The kinds each config accepts: the short path of the original, and the class's full module path.
_ProgressScheduleKind = Literal[
    "noether.core.schedules.ProgressSchedule", "noether.core.schedules.base.ProgressSchedule"
]
_SchedulerKind = Literal["noether.core.schedules.scheduler.SchedulerConfig"]
_DecreasingProgressScheduleKind = Literal[
    "noether.core.schedules.DecreasingProgressSchedule", "noether.core.schedules.base.DecreasingProgressSchedule"
]
_IncreasingProgressScheduleKind = Literal[
    "noether.core.schedules.IncreasingProgressSchedule", "noether.core.schedules.base.IncreasingProgressSchedule"
]
_ConstantScheduleKind = Literal[
    "noether.core.schedules.ConstantSchedule", "noether.core.schedules.constant.ConstantSchedule"
]
_CustomScheduleKind = Literal["noether.core.schedules.CustomSchedule", "noether.core.schedules.custom.CustomSchedule"]
_LinearWarmupCosineDecayScheduleKind = Literal[
    "noether.core.schedules.LinearWarmupCosineDecaySchedule",
    "noether.core.schedules.linear_warmup_cosine_decay.LinearWarmupCosineDecaySchedule",
]
_LinearIncreasingScheduleKind = Literal[
    "noether.core.schedules.LinearIncreasingSchedule", "noether.core.schedules.linear.LinearIncreasingSchedule"
]
_LinearDecreasingScheduleKind = Literal[
    "noether.core.schedules.LinearDecreasingSchedule", "noether.core.schedules.linear.LinearDecreasingSchedule"
]
_CosineIncreasingScheduleKind = Literal[
    "noether.core.schedules.CosineIncreasingSchedule", "noether.core.schedules.cosine.CosineIncreasingSchedule"
]
_CosineDecreasingScheduleKind = Literal[
    "noether.core.schedules.CosineDecreasingSchedule", "noether.core.schedules.cosine.CosineDecreasingSchedule"
]
_PolynomialDecreasingScheduleKind = Literal[
    "noether.core.schedules.PolynomialDecreasingSchedule",
    "noether.core.schedules.polynomial.PolynomialDecreasingSchedule",
]
_PolynomialIncreasingScheduleKind = Literal[
    "noether.core.schedules.PolynomialIncreasingSchedule",
    "noether.core.schedules.polynomial.PolynomialIncreasingSchedule",
]
_StepDecreasingScheduleKind = Literal[
    "noether.core.schedules.StepDecreasingSchedule", "noether.core.schedules.step.StepDecreasingSchedule"
]
_StepFixedScheduleKind = Literal[
    "noether.core.schedules.StepFixedSchedule", "noether.core.schedules.step.StepFixedSchedule"
]
_StepIntervalScheduleKind = Literal[
    "noether.core.schedules.StepIntervalSchedule", "noether.core.schedules.step.StepIntervalSchedule"
]
_PeriodicBoolScheduleKind = Literal[
    "noether.core.schedules.PeriodicBoolSchedule", "noether.core.schedules.periodic_bool.PeriodicBoolSchedule"
]


class ScheduleBaseConfig(BaseModel):
    """Fields shared by every schedule config.

    ``weight_decay``, ``start_percent``, ``end_percent``, ``start_step`` and ``end_step`` are accepted so that configs
    of the original framework validate, but no schedule reads them.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str | None = "noether.core.schedules.base.ScheduleBase"
    """Class path of the schedule to build."""
    overhang_percent: OverhangPercent | None = None
    """Stretch the run by this fraction of its length: the schedule is evaluated as if ``T + int(T * p)`` long."""
    overhang_steps: StepCount | None = None
    """Stretch the run by this many steps: the schedule is evaluated as if ``T + n`` long."""
    start_value: ScheduleValue = 0.0
    """Value at the first step (increasing and warmup schedules)."""
    end_value: ScheduleValue = 1e-6
    """Value at the last step (decreasing and decay schedules)."""
    weight_decay: ScheduleValue | None = 0.0
    """Unused; accepted for compatibility with configs of the original framework."""
    start_percent: Fraction | None = None
    """Unused; accepted for compatibility."""
    end_percent: Fraction | None = None
    """Unused; accepted for compatibility."""
    start_step: StepCount | None = None
    """Unused; accepted for compatibility."""
    end_step: StepCount | None = None
    """Unused; accepted for compatibility."""
    interval: Literal["update", "epoch"] = "update"
    """Whether the schedule advances every update or once per epoch (read by ``ScheduleFactory``)."""

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_is_a_str(cls, value: Any) -> Any:
        return kind_text_or_none(value, "the schedule class", "noether.core.schedules.ConstantSchedule")

    @model_validator(mode="after")
    def _check_base_fields(self) -> ScheduleBaseConfig:
        if self.overhang_percent is not None and self.overhang_steps is not None:
            raise ValueError(
                f"set at most one of overhang_percent ({self.overhang_percent}) and overhang_steps "
                f"({self.overhang_steps}), not both"
            )
        _check_range_pair("start_step", self.start_step, "end_step", self.end_step, "start_percent", self.start_percent)
        _check_range_pair(
            "start_percent", self.start_percent, "end_percent", self.end_percent, "start_step", self.start_step
        )
        return self


def _check_range_pair(
    start_name: str, start: float | None, end_name: str, end: float | None, other_name: str, other: float | None
) -> None:
    # The original tested truthiness, so 0 skipped these checks; None is tested explicitly here.
    if (start is None) != (end is None):
        raise ValueError(f"{start_name} ({start}) and {end_name} ({end}) must be set together or not at all")
    if start is None or end is None:
        return
    if other is not None:
        raise ValueError(f"set either {start_name}/{end_name} or {other_name} and its pair, not both")
    if start >= end:
        raise ValueError(f"{start_name} ({start}) must be smaller than {end_name} ({end})")


def _check_max_value_order(
    low_name: str, low: float, max_value: float | None, *, cls_name: str, strict: bool = False
) -> None:
    if max_value is None:
        return
    if low > max_value or (strict and low == max_value):
        raise ValueError(
            f"{cls_name}: {low_name} ({low}) must not be larger than max_value ({max_value}); the schedule runs "
            f"between max_value and {low_name}"
        )


class ProgressScheduleConfig(ScheduleBaseConfig):
    """Config of a schedule that moves from a start value to an end value along a progress function."""

    kind: _ProgressScheduleKind = "noether.core.schedules.ProgressSchedule"  # type: ignore[assignment]
    exclude_first: bool = False
    """Skip the first point of the curve: step 0 already has the value the curve has one step in."""
    exclude_last: bool = False
    """Skip the last point of the curve: the last step stops one step short of the end value."""


class SchedulerConfig(ScheduleBaseConfig):
    """A config of the original framework that no schedule class implements.

    It stays importable for compatibility, but it is not part of :data:`AnyScheduleConfig`: use
    :class:`LinearWarmupCosineDecayScheduleConfig`, which has the same fields.
    """

    kind: _SchedulerKind = "noether.core.schedules.scheduler.SchedulerConfig"  # type: ignore[assignment]
    warmup_percent: Fraction
    """Fraction of the run spent warming up."""
    end_value: ScheduleValue
    """Final value."""


class DecreasingProgressScheduleConfig(ProgressScheduleConfig):
    """A schedule that decreases from ``max_value`` to ``end_value``.

    ``max_value`` may be left unset when the schedule is built by ``ScheduleFactory`` for an optimizer: it then takes
    the optimizer's ``lr`` (or ``weight_decay`` for a weight-decay schedule).
    """

    kind: _DecreasingProgressScheduleKind = "noether.core.schedules.DecreasingProgressSchedule"  # type: ignore[assignment]
    max_value: ScheduleValue | None = None
    """Value at the first step; ``None`` takes the optimizer's configured value."""
    end_value: ScheduleValue = 0.0
    """Value at the last step."""

    @model_validator(mode="after")
    def _check_order(self) -> DecreasingProgressScheduleConfig:
        _check_max_value_order("end_value", self.end_value, self.max_value, cls_name=type(self).__name__)
        return self


class IncreasingProgressScheduleConfig(ProgressScheduleConfig):
    """A schedule that increases from ``start_value`` to ``max_value``.

    ``max_value`` may be left unset when the schedule is built by ``ScheduleFactory`` for an optimizer: it then takes
    the optimizer's ``lr`` (or ``weight_decay`` for a weight-decay schedule).
    """

    kind: _IncreasingProgressScheduleKind = "noether.core.schedules.IncreasingProgressSchedule"  # type: ignore[assignment]
    start_value: ScheduleValue = 0.0
    """Value at the first step."""
    max_value: ScheduleValue | None = None
    """Value at the last step; ``None`` takes the optimizer's configured value."""

    @model_validator(mode="after")
    def _check_order(self) -> IncreasingProgressScheduleConfig:
        _check_max_value_order("start_value", self.start_value, self.max_value, cls_name=type(self).__name__)
        return self


class ConstantScheduleConfig(ScheduleBaseConfig):
    """A schedule that always returns ``value``."""

    kind: _ConstantScheduleKind = "noether.core.schedules.ConstantSchedule"  # type: ignore[assignment]
    value: ScheduleValue
    """The value at every step."""


class CustomScheduleConfig(ScheduleBaseConfig):
    """A schedule given as an explicit list of values, one per step; past its end it holds the last value."""

    kind: _CustomScheduleKind = "noether.core.schedules.CustomSchedule"  # type: ignore[assignment]
    values: list[ScheduleValue] = Field(..., min_length=1)
    """The value of step ``i`` is ``values[i]``; steps past the end take ``values[-1]``."""


class LinearWarmupCosineDecayScheduleConfig(ScheduleBaseConfig):
    """Linear warmup from ``start_value`` to ``max_value``, then cosine decay to ``end_value``.

    Give exactly one of ``warmup_steps`` and ``warmup_percent``. ``max_value`` left unset takes the optimizer's
    configured ``lr`` (or ``weight_decay``) when built by ``ScheduleFactory``; the original defaulted it to 1.0.
    """

    kind: _LinearWarmupCosineDecayScheduleKind = "noether.core.schedules.LinearWarmupCosineDecaySchedule"  # type: ignore[assignment]
    warmup_steps: StepCount | None = None
    """Length of the warmup in steps."""
    warmup_percent: Fraction | None = None
    """Length of the warmup as a fraction of the run: ``W = floor((T - 1) * warmup_percent)``."""
    max_value: ScheduleValue | None = None
    """Peak value, reached at the end of the warmup; ``None`` takes the optimizer's configured value."""

    @model_validator(mode="after")
    def _check_warmup(self) -> LinearWarmupCosineDecayScheduleConfig:
        if (self.warmup_steps is None) == (self.warmup_percent is None):
            raise ValueError(
                "define exactly one of warmup_steps or warmup_percent, got "
                f"warmup_steps={self.warmup_steps} and warmup_percent={self.warmup_percent}"
            )
        _check_max_value_order("start_value", self.start_value, self.max_value, cls_name=type(self).__name__)
        _check_max_value_order("end_value", self.end_value, self.max_value, cls_name=type(self).__name__)
        return self


class LinearIncreasingScheduleConfig(IncreasingProgressScheduleConfig):
    """Linear increase from ``start_value`` to ``max_value``."""

    kind: _LinearIncreasingScheduleKind = "noether.core.schedules.LinearIncreasingSchedule"  # type: ignore[assignment]


class LinearDecreasingScheduleConfig(DecreasingProgressScheduleConfig):
    """Linear decrease from ``max_value`` to ``end_value``."""

    kind: _LinearDecreasingScheduleKind = "noether.core.schedules.LinearDecreasingSchedule"  # type: ignore[assignment]


class CosineIncreasingScheduleConfig(IncreasingProgressScheduleConfig):
    """Half-cosine increase from ``start_value`` to ``max_value``."""

    kind: _CosineIncreasingScheduleKind = "noether.core.schedules.CosineIncreasingSchedule"  # type: ignore[assignment]


class CosineDecreasingScheduleConfig(DecreasingProgressScheduleConfig):
    """Half-cosine decrease from ``max_value`` to ``end_value``."""

    kind: _CosineDecreasingScheduleKind = "noether.core.schedules.CosineDecreasingSchedule"  # type: ignore[assignment]


class PolynomialDecreasingScheduleConfig(DecreasingProgressScheduleConfig):
    """Polynomial decrease from ``max_value`` to ``end_value``: progress ``1 - (1 - s/d)^power``."""

    kind: _PolynomialDecreasingScheduleKind = "noether.core.schedules.PolynomialDecreasingSchedule"  # type: ignore[assignment]
    power: Power = 1.0
    """Exponent of the progress curve; 1 is linear."""


class PolynomialIncreasingScheduleConfig(IncreasingProgressScheduleConfig):
    """Polynomial increase from ``start_value`` to ``max_value``: progress ``1 - (1 - s/d)^power``."""

    kind: _PolynomialIncreasingScheduleKind = "noether.core.schedules.PolynomialIncreasingSchedule"  # type: ignore[assignment]
    power: Power = 1.0
    """Exponent of the progress curve; 1 is linear."""


class StepDecreasingScheduleConfig(DecreasingProgressScheduleConfig):
    """Staircase decay: ``end + (max - end) * factor^k`` with ``k = floor((s/T) / decreases_interval)``."""

    kind: _StepDecreasingScheduleKind = "noether.core.schedules.StepDecreasingSchedule"  # type: ignore[assignment]
    factor: Annotated[float, AfterValidator(bounded(0.0, 1.0))]
    """Multiplier in [0, 1] applied at every step of the staircase."""
    decreases_interval: Annotated[float, AfterValidator(bounded(MIN_INTERVAL, 1.0, high_open=True))]
    """Fraction of the run between two decreases."""


class StepFixedScheduleConfig(ScheduleBaseConfig):
    """``start_value * factor^k``, where ``k`` counts the entries of ``steps`` at or below the progress ``s/T``."""

    kind: _StepFixedScheduleKind = "noether.core.schedules.StepFixedSchedule"  # type: ignore[assignment]
    start_value: ScheduleValue = 1.0
    """Value before the first step."""
    factor: Factor
    """Multiplier applied at every entry of ``steps``."""
    steps: list[Annotated[float, AfterValidator(bounded(0.0, 1.0, low_open=True, high_open=True))]] = Field(
        ..., min_length=1
    )
    """Fractions of the run, each in (0, 1), at which the value is multiplied by ``factor``."""

    @model_validator(mode="after")
    def _check_peak(self) -> StepFixedScheduleConfig:
        _check_staircase_peak(self, self.start_value, self.factor, len(self.steps))
        return self


def _check_staircase_peak(config: ScheduleBaseConfig, start_value: float, factor: float, multiplications: int) -> None:
    # start_value * factor^k must stay a usable number for every k the run reaches; computed in logs, as the
    # power itself may overflow.
    if factor <= 1.0 or start_value == 0.0:
        return
    log_peak = math.log(start_value) + multiplications * math.log(factor)
    if log_peak > math.log(MAX_SCHEDULE_VALUE):
        peak = f"{math.exp(log_peak):.3g}" if log_peak < 709 else f"about 1e{log_peak / math.log(10):.0f}"
        raise ValueError(
            f"{type(config).__name__}: start_value * factor^k reaches {peak} (start_value={start_value}, "
            f"factor={factor}, k up to {multiplications}), above the largest allowed schedule value "
            f"{MAX_SCHEDULE_VALUE:g}; lower factor or start_value"
        )


class StepIntervalScheduleConfig(ScheduleBaseConfig):
    """``start_value * factor^k`` with ``k = floor((s/T) / update_interval)``."""

    kind: _StepIntervalScheduleKind = "noether.core.schedules.StepIntervalSchedule"  # type: ignore[assignment]
    start_value: ScheduleValue = 1.0
    """Value before the first step."""
    factor: Factor
    """Multiplier applied every ``update_interval`` of the run."""
    update_interval: Annotated[float, AfterValidator(bounded(MIN_INTERVAL, 1.0, high_open=True))]
    """Fraction of the run between two multiplications."""

    @model_validator(mode="after")
    def _check_peak(self) -> StepIntervalScheduleConfig:
        # The schedule multiplies int(round(progress / update_interval, 10)) times, progress at most 1.
        _check_staircase_peak(self, self.start_value, self.factor, int(round(1.0 / self.update_interval, 10)))
        return self


class PeriodicBoolScheduleConfig(ScheduleBaseConfig):
    """Alternates between an "on" and an "off" value, ``on_duration`` and ``off_duration`` steps long."""

    kind: _PeriodicBoolScheduleKind = "noether.core.schedules.PeriodicBoolSchedule"  # type: ignore[assignment]
    initial_state: bool
    """Whether the first period starts in the on state."""
    off_value: ScheduleValue = 0.0
    """Value in the off state."""
    on_value: ScheduleValue = 1.0
    """Value in the on state."""
    off_duration: StepCount = 1
    """Steps per period in the off state."""
    on_duration: StepCount = 1
    """Steps per period in the on state."""
    invert: bool = False
    """Swap the on and off values."""

    @model_validator(mode="after")
    def _check_period(self) -> PeriodicBoolScheduleConfig:
        if self.off_duration + self.on_duration < 1:
            raise ValueError(
                f"off_duration ({self.off_duration}) + on_duration ({self.on_duration}) must be at least 1 step"
            )
        return self


# --------------------------------------------------------------------------------------------------------------------
# The union of usable schedule configs, and the registry of user-defined ones.

_BUILTIN_CONFIGS: tuple[type[ScheduleBaseConfig], ...] = (
    ConstantScheduleConfig,
    CustomScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
    LinearIncreasingScheduleConfig,
    LinearDecreasingScheduleConfig,
    CosineIncreasingScheduleConfig,
    CosineDecreasingScheduleConfig,
    PolynomialDecreasingScheduleConfig,
    PolynomialIncreasingScheduleConfig,
    StepDecreasingScheduleConfig,
    StepFixedScheduleConfig,
    StepIntervalScheduleConfig,
    PeriodicBoolScheduleConfig,
)

_NOT_BUILDABLE: dict[type[ScheduleBaseConfig], str] = {
    ProgressScheduleConfig: "it is the abstract base of the progress schedules",
    DecreasingProgressScheduleConfig: "it has no progress function; use e.g. LinearDecreasingSchedule",
    IncreasingProgressScheduleConfig: "it has no progress function; use e.g. LinearIncreasingSchedule",
    SchedulerConfig: "no schedule class implements it; use LinearWarmupCosineDecaySchedule",
}
"""Kinds of the original framework that never built a working schedule; they are refused with a reason."""


def kinds_of(config_class: type[ScheduleBaseConfig]) -> tuple[str, ...]:
    """The ``kind`` strings a config class accepts (the ``Literal`` values of its ``kind`` field, or its default)."""
    field = config_class.model_fields["kind"]
    literal_values = tuple(arg for arg in get_args(field.annotation) if isinstance(arg, str))
    if literal_values:
        return literal_values
    return (field.default,) if isinstance(field.default, str) else ()


def _kind_table(classes: tuple[type[ScheduleBaseConfig], ...]) -> dict[str, type[ScheduleBaseConfig]]:
    return {kind: cls for cls in classes for kind in kinds_of(cls)}


_BUILTIN_BY_KIND = _kind_table(_BUILTIN_CONFIGS)
_NOT_BUILDABLE_BY_KIND = _kind_table(tuple(_NOT_BUILDABLE))
_user_configs: dict[str, type[ScheduleBaseConfig]] = {}


ConfigT = TypeVar("ConfigT", bound="ScheduleBaseConfig")


def register_schedule_config(config_class: type[ConfigT]) -> type[ConfigT]:
    """Make a user-defined schedule config acceptable wherever :data:`AnyScheduleConfig` is.

    The config class derives from :class:`ScheduleBaseConfig` and declares its ``kind`` as a ``Literal`` of the
    class path(s) of its schedule, a :class:`~noether.core.schedules.ScheduleBase` subclass whose constructor takes
    the config. ``ScheduleFactory`` then resolves exactly those class paths (nothing else in their modules, and
    no other factory); :func:`unregister_schedule_config` withdraws them again. Usable as a class decorator.

    Args:
        config_class: The config class.

    Returns:
        ``config_class``, unchanged.

    Raises:
        TypeError: If ``config_class`` is not a ``ScheduleBaseConfig`` subclass.
        ValueError: If it declares no ``kind``, a ``kind`` that is not a dotted class path, or a ``kind`` that a
            built-in or another registered config uses.
    """
    if not (isinstance(config_class, type) and issubclass(config_class, ScheduleBaseConfig)):
        raise TypeError(f"register_schedule_config expects a ScheduleBaseConfig subclass, got {config_class!r}")
    kinds = kinds_of(config_class)
    if not kinds or kinds == kinds_of(ScheduleBaseConfig):
        raise ValueError(
            f"{config_class.__name__} must declare its kind, e.g. "
            "kind: Literal['my_project.schedules.MySchedule'] = 'my_project.schedules.MySchedule'"
        )
    for kind in kinds:
        if _CLASS_PATH.fullmatch(kind) is None:
            raise ValueError(
                f"kind {kind!r} of {config_class.__name__} must be a dotted class path such as "
                "'my_project.schedules.MySchedule'"
            )
        owner = _BUILTIN_BY_KIND.get(kind) or _NOT_BUILDABLE_BY_KIND.get(kind) or _user_configs.get(kind)
        if owner is not None and owner is not config_class:
            raise ValueError(f"kind {kind!r} of {config_class.__name__} is already used by {owner.__name__}")
    for kind in kinds:
        _user_configs[kind] = config_class
    return config_class


def unregister_schedule_config(config_class: type[ScheduleBaseConfig]) -> None:
    """Undo :func:`register_schedule_config`: the config's kinds no longer validate nor resolve to a class."""
    for kind in [kind for kind, cls in _user_configs.items() if cls is config_class]:
        del _user_configs[kind]


def registered_schedule_configs() -> dict[str, type[ScheduleBaseConfig]]:
    """The user-defined configs by ``kind``, as registered with :func:`register_schedule_config`."""
    return dict(_user_configs)


def _known_kinds() -> list[str]:
    return sorted(set(_BUILTIN_BY_KIND) | set(_user_configs))


def _listed_kinds() -> str:
    # Messages list the short form only; the full module paths are accepted as well.
    short = sorted({kinds_of(cls)[0] for cls in _BUILTIN_CONFIGS} | set(_user_configs))
    return f"{short} (or a built-in's full module path)"


def unusable_kind_reason(kind: Any) -> str | None:
    """Why ``kind`` (a kind of the original that never built a working schedule) cannot be used, else ``None``."""
    config_class = _NOT_BUILDABLE_BY_KIND.get(kind) if isinstance(kind, str) else None
    return None if config_class is None else _NOT_BUILDABLE[config_class]


def schedule_config_class_for_kind(kind: Any) -> type[ScheduleBaseConfig]:
    """The config class that validates a schedule config with this ``kind``.

    Raises:
        ValueError: If ``kind`` is missing, is a kind of the original that never built a schedule, or is unknown.
    """
    if kind is None:
        raise ValueError(f"a schedule config needs a 'kind'; known kinds: {_listed_kinds()}")
    if not isinstance(kind, str):
        raise ValueError(f"kind must be a string naming a schedule class, got {kind!r}")
    config_class = _BUILTIN_BY_KIND.get(kind) or _user_configs.get(kind)
    if config_class is not None:
        return config_class
    reason = unusable_kind_reason(kind)
    if reason is not None:
        raise ValueError(f"kind {kind!r} cannot be used as a schedule: {reason}")
    close = difflib.get_close_matches(kind, _known_kinds(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown schedule kind {kind!r}.{hint} Known kinds: {_listed_kinds()}. A schedule of your own needs its "
        "config registered with noether.core.schemas.schedules.register_schedule_config."
    )


def _check_keys(data: Mapping[str, Any], config_class: type[ScheduleBaseConfig]) -> None:
    # pydantic would reject these too, but without saying which keys the config does know.
    unknown = [key for key in data if key not in config_class.model_fields]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), list(config_class.model_fields), n=1)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    raise ValueError(
        f"unknown key(s) {', '.join(hints)} for {config_class.__name__} (kind {data.get('kind')!r}); "
        f"allowed keys: {sorted(config_class.model_fields)}"
    )


def _builtin_tag(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, Mapping) else getattr(value, "kind", None)
    config_class = _BUILTIN_BY_KIND.get(kind) if isinstance(kind, str) else None
    return None if config_class is None else config_class.__name__


def _validate_any(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if isinstance(value, ScheduleBaseConfig):
        if type(value) in _BUILTIN_CONFIGS or type(value) in _user_configs.values():
            return value
        reason = _NOT_BUILDABLE.get(type(value), "it is not a registered schedule config")
        raise ValueError(f"{type(value).__name__} cannot be used as a schedule config: {reason}")
    if not isinstance(value, Mapping):
        raise ValueError(f"a schedule config must be a mapping with a 'kind', got {type(value).__name__}")
    config_class = schedule_config_class_for_kind(value.get("kind"))
    _check_keys(value, config_class)
    if config_class in _BUILTIN_CONFIGS:
        return handler(dict(value))
    return config_class.model_validate(dict(value))


def _serialize_any(value: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
    if type(value) in _BUILTIN_CONFIGS:
        return handler(value)
    # A registered user config is not a member of the static union; dump it with its own schema.
    return value.model_dump(mode=info.mode, exclude_none=info.exclude_none, exclude_defaults=info.exclude_defaults)


_BuiltinScheduleConfig = Annotated[
    Union[  # noqa: UP007 (Tag annotations need the explicit Union form)
        Annotated[ConstantScheduleConfig, Tag("ConstantScheduleConfig")],
        Annotated[CustomScheduleConfig, Tag("CustomScheduleConfig")],
        Annotated[LinearWarmupCosineDecayScheduleConfig, Tag("LinearWarmupCosineDecayScheduleConfig")],
        Annotated[LinearIncreasingScheduleConfig, Tag("LinearIncreasingScheduleConfig")],
        Annotated[LinearDecreasingScheduleConfig, Tag("LinearDecreasingScheduleConfig")],
        Annotated[CosineIncreasingScheduleConfig, Tag("CosineIncreasingScheduleConfig")],
        Annotated[CosineDecreasingScheduleConfig, Tag("CosineDecreasingScheduleConfig")],
        Annotated[PolynomialDecreasingScheduleConfig, Tag("PolynomialDecreasingScheduleConfig")],
        Annotated[PolynomialIncreasingScheduleConfig, Tag("PolynomialIncreasingScheduleConfig")],
        Annotated[StepDecreasingScheduleConfig, Tag("StepDecreasingScheduleConfig")],
        Annotated[StepFixedScheduleConfig, Tag("StepFixedScheduleConfig")],
        Annotated[StepIntervalScheduleConfig, Tag("StepIntervalScheduleConfig")],
        Annotated[PeriodicBoolScheduleConfig, Tag("PeriodicBoolScheduleConfig")],
    ],
    Discriminator(_builtin_tag),
]

AnyScheduleConfig = Annotated[
    _BuiltinScheduleConfig, WrapValidator(_validate_any), WrapSerializer(_serialize_any, when_used="always")
]
"""Any usable schedule config, chosen by its ``kind``; use it as the type of a schedule field.

``kind`` may be the short path (``noether.core.schedules.CosineDecreasingSchedule``), the full module path
(``noether.core.schedules.cosine.CosineDecreasingSchedule``) or the kind of a config registered with
:func:`register_schedule_config`.
"""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyScheduleConfig)


def validate_schedule_config(data: Mapping[str, Any] | ScheduleBaseConfig) -> ScheduleBaseConfig:
    """Validate a mapping (e.g. parsed YAML) into the schedule config its ``kind`` names.

    Raises:
        pydantic.ValidationError: With a message naming the bad field, unknown key or unknown kind.
    """
    config: ScheduleBaseConfig = _ADAPTER.validate_python(data)
    return config
