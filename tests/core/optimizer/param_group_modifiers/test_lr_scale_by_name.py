import pytest
import torch

from noether.core.optimizer import LrScaleByNameModifier, ParamGroupModifierBase
from noether.core.schemas import ParamGroupModifierConfig

KIND = "noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier"


def make(name: str, scale: float = 0.1) -> LrScaleByNameModifier:
    return LrScaleByNameModifier(ParamGroupModifierConfig(kind=KIND, name=name, scale=scale))


def test_exact_name_matches_once() -> None:
    model = torch.nn.Linear(2, 2)
    modifier = make("weight")
    assert not modifier.was_applied_successfully()
    assert modifier.get_properties(model, "bias", model.bias) == {}
    assert modifier.get_properties(model, "weight", model.weight) == {"lr_scale": 0.1}
    assert modifier.was_applied_successfully()
    with pytest.raises(ValueError, match="found two parameters matching name 'weight'"):
        modifier.get_properties(model, "weight", model.weight)


def test_exact_name_is_not_a_prefix_or_suffix_match() -> None:
    model = torch.nn.Linear(2, 2)
    modifier = make("fc.weight")
    assert modifier.get_properties(model, "fc.weight2", model.weight) == {}
    assert modifier.get_properties(model, "head.fc.weight", model.weight) == {}
    assert not modifier.was_applied_successfully()


def test_names_match_with_or_without_the_ddp_and_compile_prefixes() -> None:
    # One config for the plain and the wrapped model: `head.weight` matches `module.head.weight` (DDP) and
    # `_orig_mod.head.weight` (torch.compile); the raw prefixed name still matches too.
    model = torch.nn.Linear(2, 2)
    for pattern, name in [
        ("head.weight", "module.head.weight"),
        ("head.weight", "_orig_mod.head.weight"),
        ("head.weight", "module._orig_mod.head.weight"),
        ("module.head.weight", "module.head.weight"),
        ("blocks.*.bias", "module.blocks.3.bias"),
    ]:
        assert make(pattern).get_properties(model, name, model.weight) == {"lr_scale": 0.1}, (pattern, name)
    for pattern, name in [("head.weight", "module.x.head.weight"), ("module.head.weight", "head.weight")]:
        assert make(pattern).get_properties(model, name, model.weight) == {}, (pattern, name)
    modifier = make("head.weight")
    modifier.get_properties(model, "module.head.weight", model.weight)
    with pytest.raises(ValueError, match=r"found two parameters matching name 'head\.weight'"):
        modifier.get_properties(model, "head.weight", model.weight)  # a model holding both is ambiguous


def test_glob_matches_many() -> None:
    model = torch.nn.Linear(2, 2)
    modifier = make("blocks.*.bias", scale=0.5)
    for name in ["blocks.0.bias", "blocks.1.attn.bias"]:
        assert modifier.get_properties(model, name, model.bias) == {"lr_scale": 0.5}
    assert modifier.get_properties(model, "blocks.0.weight", model.weight) == {}
    assert modifier.matched_names == ["blocks.0.bias", "blocks.1.attn.bias"]


def test_str_and_repr_and_base() -> None:
    modifier = make("some_param")
    assert str(modifier) == "LrScaleByNameModifier(name=some_param,scale=0.1)"
    assert repr(modifier) == str(modifier)
    assert isinstance(modifier, ParamGroupModifierBase)


def test_missing_scale_raises() -> None:
    config = ParamGroupModifierConfig.model_construct(kind=KIND, name="p", scale=None, value=None)
    with pytest.raises(ValueError, match="scale"):
        LrScaleByNameModifier(config)


def test_base_is_a_real_abc() -> None:
    class Incomplete(ParamGroupModifierBase):
        def __str__(self) -> str:
            return "Incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


def test_built_directly_from_a_config_without_kind_as_in_the_original() -> None:
    model = torch.nn.Linear(2, 2)
    modifier = LrScaleByNameModifier(ParamGroupModifierConfig(name="weight", scale=0.5))
    assert modifier.get_properties(model, "weight", model.weight) == {"lr_scale": 0.5}
    assert str(modifier) == "LrScaleByNameModifier(name=weight,scale=0.5)"
