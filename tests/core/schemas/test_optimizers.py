import math
import warnings

import pytest
from pydantic import ValidationError

from noether.core.schemas import OptimizerConfig, ParamGroupModifierConfig

LR_SCALE = "noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier"
WD_BY_NAME = "noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier"
LAYERWISE = "noether.core.optimizer.param_group_modifiers.LayerwiseLrDecayModifier"


def test_original_boilerplate_config_validates_unchanged() -> None:
    config = OptimizerConfig.model_validate(
        {
            "kind": "torch.optim.AdamW",
            "lr": 1.0e-3,
            "weight_decay": 0.05,
            "clip_grad_norm": 1.0,
            "param_group_modifiers_config": [
                {"kind": LR_SCALE, "name": "backbone.cls_token", "scale": 0.1},
                {"kind": WD_BY_NAME, "name": "backbone.pos_embed", "value": 0.0},
            ],
            "exclude_bias_from_weight_decay": True,
        }
    )
    assert config.lr == 1e-3 and config.param_group_modifiers_config is not None
    assert config.optimizer_kwargs() == {"lr": 1e-3, "weight_decay": 0.05}


def test_wrapper_args_hold_the_seven_keys_with_nones() -> None:
    args = OptimizerConfig(kind="torch.optim.SGD", lr=0.1).return_optim_wrapper_args()
    assert set(args) == {
        "clip_grad_value",
        "clip_grad_norm",
        "param_group_modifiers_config",
        "exclude_bias_from_weight_decay",
        "exclude_normalization_params_from_weight_decay",
        "weight_decay_schedule",
        "schedule_config",
    }
    assert args["clip_grad_norm"] is None


def test_optimizer_kwargs_pass_through() -> None:
    config = OptimizerConfig(kind="torch.optim.AdamW", lr=1e-3, betas=[0.9, 0.95], eps=1e-6, foreach=False)  # type: ignore[call-arg]
    assert config.optimizer_kwargs() == {
        "lr": 1e-3,
        "weight_decay": 0.0,
        "betas": (0.9, 0.95),
        "eps": 1e-6,
        "foreach": False,
    }
    assert "betas" not in config.return_optim_wrapper_args()


def test_lr_required_with_kind() -> None:
    with pytest.raises(ValidationError, match="'lr' is required"):
        OptimizerConfig(kind="torch.optim.AdamW")
    assert OptimizerConfig().lr is None  # a wrapper-only config needs no lr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", 0.0),
        ("lr", -1.0),
        ("lr", math.inf),
        ("weight_decay", -0.1),
        ("weight_decay", math.nan),
        ("clip_grad_norm", 0.0),
        ("clip_grad_norm", -1.0),
        ("clip_grad_norm", math.inf),
        ("clip_grad_value", 0.0),
        ("clip_grad_value", math.nan),
    ],
)
def test_bad_numbers_name_the_field(field: str, value: float) -> None:
    kwargs = {"kind": "torch.optim.SGD", "lr": 0.1, field: value}
    with pytest.raises(ValidationError) as info:
        OptimizerConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.errors()[0]["loc"] == (field,)


def test_bad_flag_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        OptimizerConfig(exclude_bias_from_weight_decay="maybe")  # type: ignore[arg-type]
    assert info.value.errors()[0]["loc"] == ("exclude_bias_from_weight_decay",)


def test_modifier_kind_is_optional_as_in_the_original() -> None:
    config = ParamGroupModifierConfig(name="cls_token", value=0.0)
    assert config.kind is None
    assert ParamGroupModifierConfig(name="x", scale=0.1).scale == 0.1


@pytest.mark.parametrize("fields", [{}, {"scale": 0.1, "value": 0.0}])
def test_modifier_without_kind_needs_exactly_one_of_scale_and_value(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="exactly one of 'scale'"):
        ParamGroupModifierConfig(name="x", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [LR_SCALE, WD_BY_NAME, None, "my_project.MyModifier"])
def test_modifier_name_required_except_for_layerwise_decay(kind: str | None) -> None:
    fields = {"value": 0.0} if kind == WD_BY_NAME else {"scale": 0.1}
    with pytest.raises(ValidationError, match="'name' is required"):
        ParamGroupModifierConfig(kind=kind, **fields)  # type: ignore[arg-type]
    assert ParamGroupModifierConfig(kind=LAYERWISE, decay=0.5).name is None  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layers": []}, "non-empty list"),
        ({"layers": "blocks.*"}, "non-empty list"),
        ({"layers": ["blocks.*", []]}, "non-empty list"),
        ({"layers": ["blocks.*", ""]}, "non-empty list"),
        ({"layers": ["blocks.*", 3]}, "non-empty list"),
        ({"layers": ["blocks.*"], "name": "blocks"}, "not both"),
        ({"num_layers": 3}, "give 'name'"),
        ({"min_scale": 1.5}, "'min_scale'"),
    ],
)
def test_layerwise_layer_specs_are_checked(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ParamGroupModifierConfig(kind=LAYERWISE, decay=0.5, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        (LR_SCALE, {}, "'scale' is required"),
        (LR_SCALE, {"scale": 0.1, "value": 0.0}, "'value' is not a field of LrScaleByNameModifier"),
        (LR_SCALE, {"value": 0.0}, "'scale' is required"),
        (WD_BY_NAME, {}, "'value' is required"),
        (WD_BY_NAME, {"scale": 0.1}, "'value' is required"),
        (WD_BY_NAME, {"value": 0.0, "scale": 0.1}, "'scale' is not a field of WeightDecayByNameModifier"),
        ("noether.core.optimizer.LrScaleByNameModifier", {}, "'scale' is required"),
        (LAYERWISE, {}, "'decay'"),
        (LAYERWISE, {"decay": 1.5}, "'decay'"),
        (LAYERWISE, {"decay": 0.5, "num_layers": 0}, "'num_layers'"),
        (LAYERWISE, {"decay": 0.5, "scale": 0.1}, "not 'scale'"),
    ],
)
def test_modifier_fields_checked_against_kind(kind: str, fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ParamGroupModifierConfig(kind=kind, name="p", **fields)  # type: ignore[arg-type]


def test_negative_scale_and_value_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        ParamGroupModifierConfig(kind=LR_SCALE, name="p", scale=-0.1)
    assert info.value.errors()[0]["loc"] == ("scale",)
    with pytest.raises(ValidationError) as info:
        ParamGroupModifierConfig(kind=WD_BY_NAME, name="p", value=-1.0)
    assert info.value.errors()[0]["loc"] == ("value",)


def test_unknown_keys_warn_for_builtin_kinds_and_reach_custom_kinds() -> None:
    with pytest.warns(UserWarning, match="scael"):
        ParamGroupModifierConfig(kind=LR_SCALE, name="p", scale=0.1, scael=0.2)  # type: ignore[call-arg]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        custom = ParamGroupModifierConfig(kind="my_project.MyModifier", name="p", factor=3)  # type: ignore[call-arg]
    assert custom.model_extra == {"factor": 3}


def test_modifier_list_error_names_the_entry() -> None:
    with pytest.raises(ValidationError) as info:
        OptimizerConfig(param_group_modifiers_config=[{"kind": LR_SCALE, "name": "p"}])  # type: ignore[list-item]
    assert info.value.errors()[0]["loc"] == ("param_group_modifiers_config", 0)


@pytest.mark.parametrize("field", ["schedule_config", "weight_decay_schedule"])
def test_bad_schedule_names_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        OptimizerConfig(**{field: {"kind": "noether.core.schedules.NoSuchSchedule"}})  # type: ignore[arg-type]
    assert info.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("kind", [b"torch.optim.SGD", bytearray(b"torch.optim.SGD"), 3])
def test_kind_must_be_a_str(kind: object) -> None:
    # Lax validation used to turn b"torch.optim.SGD" into a str and build the optimizer.
    with pytest.raises(ValidationError, match=rf"kind must be a str naming the optimizer class.*{type(kind).__name__}"):
        OptimizerConfig(kind=kind, lr=0.1)  # type: ignore[arg-type]
