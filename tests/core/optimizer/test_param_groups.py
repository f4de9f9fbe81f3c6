import functools
import logging

import pytest
import torch

from noether.core.optimizer import OptimizerWrapper
from noether.core.optimizer.param_groups import group_name
from noether.core.schemas import OptimizerConfig

LR_SCALE = "noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier"
WD_BY_NAME = "noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier"


class ConvBnFc(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 3)


def wrap(model: torch.nn.Module, **config: object) -> OptimizerWrapper:
    return OptimizerWrapper(
        model,
        functools.partial(torch.optim.SGD, lr=0.1, weight_decay=0.01),
        OptimizerConfig(**config),  # type: ignore[arg-type]
    )


def groups(wrapper: OptimizerWrapper) -> list[tuple[str, list[str]]]:
    names = {id(p): n for n, p in wrapper.model.named_parameters()}
    return [(g["name"], [names[id(p)] for p in g["params"]]) for g in wrapper.torch_optim.param_groups]


def test_worked_example_of_the_spec() -> None:
    wrapper = wrap(ConvBnFc())
    assert groups(wrapper) == [
        ("default", ["conv.weight", "fc.weight"]),
        ("weight_decay=0", ["conv.bias", "bn.weight", "bn.bias", "fc.bias"]),
    ]
    assert wrapper.param_idx_to_name.to_forward() == {
        0: "conv.weight",
        1: "fc.weight",
        2: "conv.bias",
        3: "bn.weight",
        4: "bn.bias",
        5: "fc.bias",
    }
    assert [g["weight_decay"] for g in wrapper.torch_optim.param_groups] == [0.01, 0.0]


def test_index_map_matches_torch_state_dict_numbering() -> None:
    wrapper = wrap(ConvBnFc())
    by_id = {id(p): i for i, p in enumerate(p for g in wrapper.torch_optim.param_groups for p in g["params"])}
    params = dict(wrapper.model.named_parameters())
    sd_params = [i for g in wrapper.torch_optim.state_dict()["param_groups"] for i in g["params"]]
    for index, name in wrapper.param_idx_to_name.items():
        assert by_id[id(params[name])] == index
    assert sd_params == list(range(6))


@pytest.mark.parametrize(
    ("modifiers", "param", "expected"),
    [
        ([(LR_SCALE, "fc.weight", {"scale": 0.1})], "fc.weight", "lr_scale=1.0e-01"),
        ([(LR_SCALE, "fc.bias", {"scale": 0.1})], "fc.bias", "weight_decay=0&lr_scale=1.0e-01"),
        (
            [(LR_SCALE, "fc.weight", {"scale": 0.5}), (LR_SCALE, "fc.weight", {"scale": 0.5})],
            "fc.weight",
            "lr_scale=2.5e-01",
        ),
        ([(WD_BY_NAME, "fc.weight", {"value": 1e-5})], "fc.weight", "weight_decay=1e-05"),
        ([(WD_BY_NAME, "fc.weight", {"value": 0.0})], "fc.weight", "weight_decay=0"),
        ([(LR_SCALE, "conv.weight", {"scale": 2.0})], "conv.weight", "lr_scale=2.0e00"),
    ],
)
def test_naming_table(modifiers: list[tuple[str, str, dict[str, float]]], param: str, expected: str) -> None:
    config = [{"kind": kind, "name": name, **fields} for kind, name, fields in modifiers]
    wrapper = wrap(ConvBnFc(), param_group_modifiers_config=config)
    found = [g for g, names in groups(wrapper) if param in names]
    assert found == [expected]


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({}, "default"),
        ({"weight_decay": 0.0}, "weight_decay=0"),
        ({"lr_scale": 0.05, "weight_decay": 0.0}, "lr_scale=5.0e-02&weight_decay=0"),
        ({"lr_scale": 0.123}, "lr_scale=1.2e-01"),
        ({"flag": True, "layer": 3}, "flag=True&layer=3"),
        ({"weight_decay": 0.0, "params": []}, "weight_decay=0"),
    ],
)
def test_group_name_rendering(properties: dict[str, object], expected: str) -> None:
    assert group_name(properties) == expected


def test_group_name_rejects_other_types() -> None:
    with pytest.raises(NotImplementedError, match="betas"):
        group_name({"betas": (0.9, 0.99)})


def test_merge_keeps_first_position_and_first_key_order() -> None:
    # Flag-derived keys come first, so conv.bias renders as weight_decay=0&lr_scale=..., and fc.weight joins
    # the group that conv.weight opened.
    wrapper = wrap(
        ConvBnFc(),
        param_group_modifiers_config=[
            {"kind": LR_SCALE, "name": "conv.*", "scale": 0.5},
            {"kind": LR_SCALE, "name": "fc.weight", "scale": 0.5},
        ],
    )
    assert groups(wrapper) == [
        ("lr_scale=5.0e-01", ["conv.weight", "fc.weight"]),
        ("weight_decay=0&lr_scale=5.0e-01", ["conv.bias"]),
        ("weight_decay=0", ["bn.weight", "bn.bias", "fc.bias"]),
    ]
    assert [g["lr"] for g in wrapper.torch_optim.param_groups] == [0.05, 0.05, 0.1]
    assert [g.get("original_lr") for g in wrapper.torch_optim.param_groups] == [0.1, 0.1, None]


def test_flags_off_give_one_group() -> None:
    wrapper = wrap(
        ConvBnFc(), exclude_bias_from_weight_decay=False, exclude_normalization_params_from_weight_decay=False
    )
    assert [name for name, _ in groups(wrapper)] == ["default"]


def test_bias_flag_off_keeps_decay_on_biases_even_though_they_are_1d() -> None:
    wrapper = wrap(ConvBnFc(), exclude_bias_from_weight_decay=False)
    assert groups(wrapper) == [
        ("default", ["conv.weight", "conv.bias", "bn.bias", "fc.weight", "fc.bias"]),
        ("weight_decay=0", ["bn.weight"]),
    ]


def test_frozen_parameters_are_included() -> None:
    model = ConvBnFc()
    model.conv.weight.requires_grad_(False)
    assert "conv.weight" in wrap(model).param_idx_to_name.to_backward()


def test_explicit_modifier_overrides_flags() -> None:
    wrapper = wrap(ConvBnFc(), param_group_modifiers_config=[{"kind": WD_BY_NAME, "name": "fc.bias", "value": 0.05}])
    assert ("weight_decay=5.0e-02", ["fc.bias"]) in groups(wrapper)
    assert [g["weight_decay"] for g in wrapper.torch_optim.param_groups if g["name"] == "weight_decay=5.0e-02"] == [
        0.05
    ]


def test_two_modifiers_setting_weight_decay_raise() -> None:
    config = [
        {"kind": WD_BY_NAME, "name": "fc.weight", "value": 0.1},
        {"kind": WD_BY_NAME, "name": "fc.*", "value": 0.2},
    ]
    with pytest.raises(ValueError, match=r"fc.weight.*weight_decay"):
        wrap(ConvBnFc(), param_group_modifiers_config=config)


def test_unapplied_modifier_raises_with_its_str() -> None:
    with pytest.raises(ValueError, match=r"LrScaleByNameModifier\(name=nope,scale=0.1\)"):
        wrap(ConvBnFc(), param_group_modifiers_config=[{"kind": LR_SCALE, "name": "nope", "scale": 0.1}])


class ViTish(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, 3, 4))
        self.proj = torch.nn.Linear(4, 4)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "pos_*"}


def test_no_weight_decay_method_excludes_names() -> None:
    wrapper = wrap(ViTish())
    assert groups(wrapper) == [
        ("weight_decay=0", ["cls_token", "pos_embed", "proj.bias"]),
        ("default", ["proj.weight"]),
    ]


def test_no_weight_decay_seen_through_ddp_like_wrapper_and_overridable() -> None:
    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = ViTish()

    config = [{"kind": WD_BY_NAME, "name": "module.pos_embed", "value": 0.3}]
    wrapper = wrap(Wrapped(), param_group_modifiers_config=config)
    assert groups(wrapper) == [
        ("weight_decay=0", ["module.cls_token", "module.proj.bias"]),
        ("weight_decay=3.0e-01", ["module.pos_embed"]),
        ("default", ["module.proj.weight"]),
    ]


def test_group_table_is_logged_and_available(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        wrapper = wrap(ConvBnFc())
    table = wrapper.param_group_table()
    assert table == [
        {"name": "default", "tensors": 2, "elements": 4 * 2 * 9 + 3 * 4, "lr": 0.1, "weight_decay": 0.01},
        {"name": "weight_decay=0", "tensors": 4, "elements": 4 + 4 + 4 + 3, "lr": 0.1, "weight_decay": 0.0},
    ]
    assert "weight_decay=0" in caplog.text and "elements" in caplog.text


class _Holder(torch.nn.Module):
    """Stands in for DDP / torch.compile: the real model sits under an attribute that prefixes every name."""

    def __init__(self, attribute: str, inner: torch.nn.Module) -> None:
        super().__init__()
        self.add_module(attribute, inner)


@pytest.mark.parametrize("attribute", ["module", "_orig_mod"])
def test_saved_names_drop_the_prefixes_that_model_wrappers_add(attribute: str) -> None:
    plain = wrap(ConvBnFc())
    wrapped = wrap(_Holder(attribute, ConvBnFc()))
    assert wrapped.param_idx_to_name.to_forward() == plain.param_idx_to_name.to_forward()
    assert wrapped.state_dict()["param_idx_to_name"] == plain.state_dict()["param_idx_to_name"]
    assert all(not name.startswith(attribute) for name in wrapped.param_idx_to_name.to_backward())


def test_names_stay_raw_when_dropping_prefixes_would_merge_two_parameters() -> None:
    model = torch.nn.Module()
    model.module = torch.nn.Linear(2, 2)
    model.weight = torch.nn.Parameter(torch.ones(2, 2))  # 'weight' and 'module.weight' would both become 'weight'
    names = set(wrap(model).param_idx_to_name.to_backward())
    assert names == {"module.weight", "module.bias", "weight"}


def test_colliding_group_names_get_more_digits_and_the_others_stay_identical() -> None:
    from noether.core.optimizer.param_groups import distinct_group_names, group_name

    groups = [{"lr_scale": 0.98**k} for k in range(48)] + [{"weight_decay": 1e-5}, {}]
    names = distinct_group_names(groups)
    assert len(set(names)) == len(names) == 50
    assert names[-2:] == ["weight_decay=1e-05", "default"]  # no collision: byte-identical to the original
    one_digit = [group_name(group) for group in groups]
    unique = [name for name in one_digit if one_digit.count(name) == 1]
    for name in unique:
        assert name in names
    collided = [index for index, name in enumerate(one_digit) if one_digit.count(name) > 1]
    assert collided  # the one-digit rendering alone gives fewer names than groups
    for index in collided:
        assert names[index] != one_digit[index]
        assert float(names[index].split("=")[1]) == pytest.approx(groups[index]["lr_scale"], rel=0.05)
