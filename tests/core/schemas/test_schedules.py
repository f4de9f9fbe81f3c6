from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from noether.core import schemas
from noether.core.schedules import LinearWarmupCosineDecaySchedule
from noether.core.schemas import (
    AnyScheduleConfig,
    ConstantScheduleConfig,
    CustomScheduleConfig,
    DecreasingProgressScheduleConfig,
    IncreasingProgressScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
    PeriodicBoolScheduleConfig,
    PolynomialDecreasingScheduleConfig,
    ScheduleBaseConfig,
    SchedulerConfig,
    StepDecreasingScheduleConfig,
    StepFixedScheduleConfig,
    StepIntervalScheduleConfig,
)
from noether.core.schemas.schedules import (
    CosineDecreasingScheduleConfig,
    CosineIncreasingScheduleConfig,
    LinearDecreasingScheduleConfig,
    LinearIncreasingScheduleConfig,
    validate_schedule_config,
)


class Holder(BaseModel):
    schedule_config: AnyScheduleConfig | None = None


def _error(data: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Holder(schedule_config=data)
    return str(info.value)


# ---- the original's configs -------------------------------------------------------------------------------------

ORIGINAL_YAML = """
kind: torch.optim.AdamW
lr: 1.0e-3
weight_decay: 0.05
clip_grad_norm: 1.0
schedule_config:
  kind: noether.core.schedules.LinearWarmupCosineDecaySchedule
  warmup_percent: 0.10
  end_value: 1.0e-6
"""


def test_original_yaml_schedule_validates_and_gives_the_original_values() -> None:
    data = yaml.safe_load(ORIGINAL_YAML)["schedule_config"]
    config = Holder(schedule_config=data).schedule_config
    assert isinstance(config, LinearWarmupCosineDecayScheduleConfig)
    assert (config.warmup_percent, config.end_value, config.max_value) == (0.1, 1e-6, None)
    # The original defaulted max_value to 1.0; with it set explicitly the values are the original's.
    schedule = LinearWarmupCosineDecaySchedule(config.model_copy(update={"max_value": 1.0}))
    total = 21
    warmup = 2  # int(20 * 0.1)
    for step in range(total):
        if step < warmup:
            expected = (step + 1) / (warmup + 1)
        else:
            x = (step - warmup) / (total - warmup - 1)
            expected = 1e-6 + (1 - 1e-6) * (1 + math.cos(math.pi * x)) / 2
        assert schedule.get_value(step, total) == pytest.approx(expected)


def test_tutorial_yaml_with_explicit_max_value() -> None:
    data = yaml.safe_load(
        "kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\nwarmup_percent: 0.05\nmax_value: 5.0e-5\n"
    )
    config = validate_schedule_config(data)
    assert isinstance(config, LinearWarmupCosineDecayScheduleConfig) and config.max_value == 5e-5


# ---- kinds ------------------------------------------------------------------------------------------------------

KIND_TO_CLASS = {
    "ConstantSchedule": (ConstantScheduleConfig, {"value": 1.0}, "constant"),
    "CustomSchedule": (CustomScheduleConfig, {"values": [1.0]}, "custom"),
    "LinearWarmupCosineDecaySchedule": (
        LinearWarmupCosineDecayScheduleConfig,
        {"warmup_steps": 1},
        "linear_warmup_cosine_decay",
    ),
    "LinearIncreasingSchedule": (LinearIncreasingScheduleConfig, {}, "linear"),
    "LinearDecreasingSchedule": (LinearDecreasingScheduleConfig, {}, "linear"),
    "CosineIncreasingSchedule": (CosineIncreasingScheduleConfig, {}, "cosine"),
    "CosineDecreasingSchedule": (CosineDecreasingScheduleConfig, {}, "cosine"),
    "PolynomialDecreasingSchedule": (PolynomialDecreasingScheduleConfig, {}, "polynomial"),
    "PolynomialIncreasingSchedule": (schemas.PolynomialIncreasingScheduleConfig, {}, "polynomial"),
    "StepDecreasingSchedule": (StepDecreasingScheduleConfig, {"factor": 0.5, "decreases_interval": 0.5}, "step"),
    "StepFixedSchedule": (StepFixedScheduleConfig, {"factor": 0.5, "steps": [0.5]}, "step"),
    "StepIntervalSchedule": (StepIntervalScheduleConfig, {"factor": 0.5, "update_interval": 0.5}, "step"),
    "PeriodicBoolSchedule": (PeriodicBoolScheduleConfig, {"initial_state": False}, "periodic_bool"),
}


@pytest.mark.parametrize("name", sorted(KIND_TO_CLASS))
def test_short_and_full_kind_select_the_config_class(name: str) -> None:
    config_class, fields, module = KIND_TO_CLASS[name]
    for kind in (f"noether.core.schedules.{name}", f"noether.core.schedules.{module}.{name}"):
        config = Holder(schedule_config={"kind": kind, **fields}).schedule_config
        assert type(config) is config_class and config.kind == kind
    assert config_class.model_fields["kind"].default == f"noether.core.schedules.{name}"


def test_config_instances_pass_through_the_union() -> None:
    config = CosineDecreasingScheduleConfig(max_value=1.0)
    assert Holder(schedule_config=config).schedule_config is config


def test_round_trip_through_dump() -> None:
    holder = Holder(schedule_config={"kind": "noether.core.schedules.StepFixedSchedule", "factor": 0.1, "steps": [0.5]})
    assert Holder.model_validate(holder.model_dump()) == holder
    assert Holder.model_validate_json(holder.model_dump_json()) == holder


@pytest.mark.parametrize(
    "kind",
    [
        "noether.core.schedules.ProgressSchedule",
        "noether.core.schedules.DecreasingProgressSchedule",
        "noether.core.schedules.IncreasingProgressSchedule",
        "noether.core.schedules.scheduler.SchedulerConfig",
    ],
)
def test_kinds_that_never_built_a_schedule_are_refused_with_a_reason(kind: str) -> None:
    message = _error({"kind": kind})
    assert "cannot be used as a schedule" in message and kind in message


def test_non_union_config_instances_are_refused() -> None:
    assert "cannot be used as a schedule config" in _error(DecreasingProgressScheduleConfig(max_value=1.0))
    assert "cannot be used as a schedule config" in _error(ScheduleBaseConfig())


@pytest.mark.parametrize("kind", ["os.system", "noether.core.utils.bidict.Bidict", "torch.optim.AdamW", 3])
def test_untrusted_kinds_are_refused_by_validation(kind: Any) -> None:
    message = _error({"kind": kind})
    assert "kind" in message and str(kind) in message


def test_typo_in_kind_suggests_the_right_one() -> None:
    message = _error({"kind": "noether.core.schedules.CosineDecreasingSchedul"})
    assert "Did you mean 'noether.core.schedules.CosineDecreasingSchedule'" in message


def test_missing_kind_and_non_mapping() -> None:
    assert "needs a 'kind'" in _error({"value": 1.0})
    assert "must be a mapping" in _error(3.0)


# ---- unknown keys ----------------------------------------------------------------------------------------------------


def test_unknown_key_is_named_with_a_suggestion() -> None:
    message = _error({"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_percnt": 0.1})
    assert "'warmup_percnt' (did you mean 'warmup_percent'?)" in message


def test_unknown_key_is_rejected_by_the_config_classes_directly() -> None:
    with pytest.raises(ValidationError, match="max_valeu"):
        CosineDecreasingScheduleConfig(max_valeu=1.0)  # type: ignore[call-arg]


# ---- fields, defaults and constraints ---------------------------------------------------------------------------


def test_defaults() -> None:
    base = ScheduleBaseConfig()
    assert (base.kind, base.start_value, base.end_value, base.interval) == (
        "noether.core.schedules.base.ScheduleBase",
        0.0,
        1e-6,
        "update",
    )
    assert (base.weight_decay, base.overhang_percent, base.start_step) == (0.0, None, None)
    decreasing = LinearDecreasingScheduleConfig()
    assert (decreasing.max_value, decreasing.end_value, decreasing.exclude_first, decreasing.exclude_last) == (
        None,
        0.0,
        False,
        False,
    )
    lwcd = LinearWarmupCosineDecayScheduleConfig(warmup_steps=3)
    assert (lwcd.start_value, lwcd.end_value, lwcd.max_value) == (0.0, 1e-6, None)
    assert PolynomialDecreasingScheduleConfig().power == 1.0
    assert StepFixedScheduleConfig(factor=0.5, steps=[0.5]).start_value == 1.0
    assert StepIntervalScheduleConfig(factor=0.5, update_interval=0.5).start_value == 1.0
    periodic = PeriodicBoolScheduleConfig(initial_state=True)
    assert (periodic.off_value, periodic.on_value, periodic.off_duration, periodic.on_duration, periodic.invert) == (
        0.0,
        1.0,
        1,
        1,
        False,
    )
    with pytest.raises(ValidationError, match=r"start_value must be a finite number in \[0, 1e\+06\], got -1.0"):
        IncreasingProgressScheduleConfig(start_value=-1.0)  # a negative start trains on a negative lr


def test_scheduler_config_validates_standalone() -> None:
    config = SchedulerConfig(warmup_percent=0.1, end_value=0.0)
    assert config.kind == "noether.core.schedules.scheduler.SchedulerConfig"
    with pytest.raises(ValidationError, match="warmup_percent"):
        SchedulerConfig(warmup_percent=1.5, end_value=0.0)


ERRORS: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (ScheduleBaseConfig, {"overhang_percent": 0.1, "overhang_steps": 2}, "overhang_percent.*overhang_steps"),
    (ScheduleBaseConfig, {"start_step": 1}, "start_step.*end_step"),
    (ScheduleBaseConfig, {"start_step": 5, "end_step": 5}, r"start_step \(5\) must be smaller than end_step"),
    (ScheduleBaseConfig, {"start_step": 0, "end_step": 0}, "start_step"),  # 0 is checked, not skipped
    (ScheduleBaseConfig, {"start_percent": 0.5, "end_percent": 0.2}, "start_percent"),
    (
        ScheduleBaseConfig,
        {"start_step": 0, "end_step": 2, "start_percent": 0.0, "end_percent": 0.5},
        "start_step/end_step or start_percent",
    ),
    (ScheduleBaseConfig, {"start_value": -1.0}, "start_value"),
    (ScheduleBaseConfig, {"end_value": -1.0}, "end_value"),
    (ScheduleBaseConfig, {"interval": "step"}, "interval"),
    (LinearWarmupCosineDecayScheduleConfig, {}, "exactly one of warmup_steps or warmup_percent"),
    (LinearWarmupCosineDecayScheduleConfig, {"warmup_steps": 1, "warmup_percent": 0.1}, "exactly one of warmup_steps"),
    (LinearWarmupCosineDecayScheduleConfig, {"warmup_percent": 1.1}, "warmup_percent"),
    (LinearWarmupCosineDecayScheduleConfig, {"warmup_steps": -1}, "warmup_steps"),
    (LinearWarmupCosineDecayScheduleConfig, {"warmup_steps": 1, "max_value": 1e-7}, r"end_value \(1e-06\).*max_value"),
    (LinearDecreasingScheduleConfig, {"max_value": 0.1, "end_value": 0.2}, r"end_value \(0.2\).*max_value \(0.1\)"),
    (CosineIncreasingScheduleConfig, {"max_value": 0.1, "start_value": 0.2}, r"start_value \(0.2\).*max_value"),
    (LinearDecreasingScheduleConfig, {"max_value": -1.0}, "max_value"),
    (PolynomialDecreasingScheduleConfig, {"power": 0.0}, "power"),
    (ConstantScheduleConfig, {}, "value"),
    (CustomScheduleConfig, {"values": []}, "values"),
    (StepFixedScheduleConfig, {"factor": 0.5, "steps": []}, "steps"),
    (StepFixedScheduleConfig, {"factor": 0.5, "steps": [0.5, 1.0]}, r"steps\.1"),
    (StepFixedScheduleConfig, {"factor": -0.5, "steps": [0.5]}, "factor"),
    (StepDecreasingScheduleConfig, {"factor": 0.5, "decreases_interval": 1.0}, "decreases_interval"),
    (StepDecreasingScheduleConfig, {"factor": 0.5, "decreases_interval": 0.0}, "decreases_interval"),
    (StepIntervalScheduleConfig, {"factor": 0.5, "update_interval": 0.0}, "update_interval"),
    (PeriodicBoolScheduleConfig, {}, "initial_state"),
    (PeriodicBoolScheduleConfig, {"initial_state": True, "on_duration": 0, "off_duration": 0}, "on_duration"),
]


@pytest.mark.parametrize(("config_class", "data", "match"), ERRORS, ids=[f"{c.__name__}-{m}" for c, _, m in ERRORS])
def test_errors_name_the_field(config_class: type[BaseModel], data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        config_class(**data)


def test_package_exports() -> None:
    names = {
        "AnyScheduleConfig",
        "ScheduleBaseConfig",
        "ProgressScheduleConfig",
        "SchedulerConfig",
        "DecreasingProgressScheduleConfig",
        "IncreasingProgressScheduleConfig",
        "ConstantScheduleConfig",
        "CustomScheduleConfig",
        "LinearWarmupCosineDecayScheduleConfig",
        "PeriodicBoolScheduleConfig",
        "PolynomialDecreasingScheduleConfig",
        "PolynomialIncreasingScheduleConfig",
        "StepDecreasingScheduleConfig",
        "StepFixedScheduleConfig",
        "StepIntervalScheduleConfig",
    }
    assert names <= set(schemas.__all__)
    for excluded in (
        "LinearIncreasingScheduleConfig",
        "LinearDecreasingScheduleConfig",
        "CosineIncreasingScheduleConfig",
        "CosineDecreasingScheduleConfig",
    ):
        assert excluded not in schemas.__all__
