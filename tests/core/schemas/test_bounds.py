"""Every numeric config field is finite and bounded at validation; the error names field, value and range."""

import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from noether.core.schemas import OptimizerConfig, ParamGroupModifierConfig
from noether.core.schemas.schedules import validate_schedule_config

S = "noether.core.schedules."
LR_SCALE = "noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier"
WD_BY_NAME = "noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier"

# (config, the field reported, the range the message gives). Each one validated before and then trained on NaN,
# raised OverflowError when built, or a float-overflow RuntimeError at the first step.
SCHEDULE_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"kind": S + "ConstantSchedule", "value": math.nan}, "value", "[0, 1e+06]"),
    ({"kind": S + "ConstantSchedule", "value": math.inf}, "value", "[0, 1e+06]"),
    ({"kind": S + "ConstantSchedule", "value": -1.0}, "value", "[0, 1e+06]"),
    ({"kind": S + "ConstantSchedule", "value": 1e308}, "value", "[0, 1e+06]"),
    ({"kind": S + "CustomSchedule", "values": [1.0, math.nan]}, "values", "[0, 1e+06]"),
    ({"kind": S + "CustomSchedule", "values": [-math.inf]}, "values", "[0, 1e+06]"),
    ({"kind": S + "CustomSchedule", "values": [0.1, -0.1]}, "values", "[0, 1e+06]"),
    ({"kind": S + "PeriodicBoolSchedule", "initial_state": True, "on_value": math.nan}, "on_value", "[0, 1e+06]"),
    ({"kind": S + "PeriodicBoolSchedule", "initial_state": True, "off_value": -1.0}, "off_value", "[0, 1e+06]"),
    ({"kind": S + "PeriodicBoolSchedule", "initial_state": True, "on_value": 1e308}, "on_value", "[0, 1e+06]"),
    ({"kind": S + "PeriodicBoolSchedule", "initial_state": True, "on_duration": 10**13}, "on_duration", "[0, 1e+12]"),
    ({"kind": S + "LinearIncreasingSchedule", "start_value": math.nan}, "start_value", "[0, 1e+06]"),
    ({"kind": S + "LinearIncreasingSchedule", "start_value": -0.5}, "start_value", "[0, 1e+06]"),
    ({"kind": S + "LinearDecreasingSchedule", "max_value": math.inf}, "max_value", "[0, 1e+06]"),
    ({"kind": S + "CosineDecreasingSchedule", "max_value": 1e308}, "max_value", "[0, 1e+06]"),
    ({"kind": S + "CosineDecreasingSchedule", "end_value": math.nan}, "end_value", "[0, 1e+06]"),
    (
        {"kind": S + "LinearWarmupCosineDecaySchedule", "warmup_steps": 2, "start_value": math.nan},
        "start_value",
        "[0, 1e+06]",
    ),
    ({"kind": S + "LinearWarmupCosineDecaySchedule", "warmup_steps": 10**13}, "warmup_steps", "[0, 1e+12]"),
    ({"kind": S + "LinearDecreasingSchedule", "overhang_percent": 1e308}, "overhang_percent", "[0, 1000]"),
    ({"kind": S + "LinearDecreasingSchedule", "overhang_percent": math.nan}, "overhang_percent", "[0, 1000]"),
    ({"kind": S + "LinearDecreasingSchedule", "overhang_percent": math.inf}, "overhang_percent", "[0, 1000]"),
    ({"kind": S + "LinearDecreasingSchedule", "overhang_steps": 10**13}, "overhang_steps", "[0, 1e+12]"),
    ({"kind": S + "PolynomialDecreasingSchedule", "power": math.nan}, "power", "(0, 1000]"),
    ({"kind": S + "PolynomialIncreasingSchedule", "power": 1e308}, "power", "(0, 1000]"),
    (
        {"kind": S + "StepDecreasingSchedule", "factor": 0.5, "decreases_interval": 1e-320},
        "decreases_interval",
        "[1e-09, 1)",
    ),
    ({"kind": S + "StepDecreasingSchedule", "factor": math.nan, "decreases_interval": 0.1}, "factor", "[0, 1]"),
    ({"kind": S + "StepDecreasingSchedule", "factor": 1e308, "decreases_interval": 0.1}, "factor", "[0, 1]"),
    ({"kind": S + "StepFixedSchedule", "factor": 1e308, "steps": [0.5]}, "factor", "[0, 1000]"),
    ({"kind": S + "StepFixedSchedule", "factor": 0.5, "steps": [math.nan]}, "steps", "(0, 1)"),
    (
        {"kind": S + "StepFixedSchedule", "factor": 0.5, "steps": [0.5], "start_value": -1.0},
        "start_value",
        "[0, 1e+06]",
    ),
    ({"kind": S + "StepIntervalSchedule", "factor": -1.0, "update_interval": 0.5}, "factor", "[0, 1000]"),
    (
        {"kind": S + "StepIntervalSchedule", "factor": 0.5, "update_interval": 1e-320},
        "update_interval",
        "[1e-09, 1)",
    ),
]


@pytest.mark.parametrize(("data", "field", "allowed"), SCHEDULE_CASES)
def test_schedule_field_out_of_range_is_refused(data: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_schedule_config(data)
    bad = data[field][-1] if isinstance(data[field], list) else data[field]  # a list's last entry is the bad one
    assert f"{field} must be a finite number in {allowed}, got {bad!r}" in str(info.value)


@pytest.mark.parametrize(
    ("data", "k"),
    [
        ({"kind": S + "StepIntervalSchedule", "factor": 2.0, "update_interval": 0.01}, 100),
        ({"kind": S + "StepFixedSchedule", "factor": 1000.0, "steps": [0.2, 0.4, 0.6]}, 3),
    ],
)
def test_staircase_whose_peak_exceeds_the_limit_is_refused(data: dict[str, Any], k: int) -> None:
    with pytest.raises(ValidationError, match=rf"start_value \* factor\^k reaches .*k up to {k}\), above the largest"):
        validate_schedule_config(data)


def test_staircase_with_a_reachable_peak_builds() -> None:
    from noether.core.factory import ScheduleFactory
    from noether.core.utils.training import TrainingIteration, UpdateCounter

    counter = UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(update=100), 5, 1)
    counter.cur_iteration.update = 100
    config = {"kind": S + "StepIntervalSchedule", "factor": 1.1, "update_interval": 0.1}
    wrapper = ScheduleFactory().create(config, update_counter=counter)
    assert wrapper is not None and wrapper.get_value() == pytest.approx(1.1**10)


@pytest.mark.parametrize(
    ("data", "field", "allowed"),
    [
        ({"lr": 1e308}, "lr", "(0, 1000]"),
        ({"lr": math.nan}, "lr", "(0, 1000]"),
        ({"lr": -1e-3}, "lr", "(0, 1000]"),
        ({"weight_decay": 1e308}, "weight_decay", "[0, 1000]"),
        ({"weight_decay": math.inf}, "weight_decay", "[0, 1000]"),
        ({"clip_grad_value": 1e308}, "clip_grad_value", "(0, 65504]"),
        ({"clip_grad_value": 1e5}, "clip_grad_value", "(0, 65504]"),  # overflowed float16 gradients
        ({"clip_grad_norm": 1e308}, "clip_grad_norm", "(0, 1e+09]"),
        ({"clip_grad_norm": 0.0}, "clip_grad_norm", "(0, 1e+09]"),
    ],
)
def test_optimizer_field_out_of_range_is_refused(data: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ValidationError) as info:
        OptimizerConfig.model_validate({"kind": "torch.optim.AdamW", "lr": 1e-3, **data})
    assert f"{field} must be a finite number in {allowed}, got {data[field]!r}" in str(info.value)


@pytest.mark.parametrize(
    ("data", "field", "allowed"),
    [
        ({"kind": LR_SCALE, "scale": 1e308}, "scale", "[0, 1000]"),
        ({"kind": LR_SCALE, "scale": math.nan}, "scale", "[0, 1000]"),
        ({"kind": WD_BY_NAME, "value": 1e308}, "value", "[0, 1000]"),
        ({"kind": WD_BY_NAME, "value": -1.0}, "value", "[0, 1000]"),
    ],
)
def test_modifier_field_out_of_range_is_refused(data: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ValidationError) as info:
        ParamGroupModifierConfig.model_validate({"name": "w", **data})
    assert f"{field} must be a finite number in {allowed}, got {data[field]!r}" in str(info.value)


def test_limits_themselves_are_accepted() -> None:
    class Holder(BaseModel):
        config: OptimizerConfig

    config = OptimizerConfig(
        kind="torch.optim.SGD", lr=1e3, weight_decay=1e3, clip_grad_value=65504, clip_grad_norm=1e9
    )
    assert Holder(config=config).config.lr == 1e3
    assert validate_schedule_config({"kind": S + "ConstantSchedule", "value": 1e6}).value == 1e6  # type: ignore[attr-defined]
    assert (
        validate_schedule_config(
            {"kind": S + "StepDecreasingSchedule", "max_value": 1.0, "factor": 1.0, "decreases_interval": 1e-9}
        ).factor
        == 1.0
    )  # type: ignore[attr-defined]
