import pytest
import torch

from noether.core.optimizer import WeightDecayByNameModifier
from noether.core.schemas import ParamGroupModifierConfig

KIND = "noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier"


def make(name: str, value: float = 0.0) -> WeightDecayByNameModifier:
    return WeightDecayByNameModifier(ParamGroupModifierConfig(kind=KIND, name=name, value=value))


def test_exact_match_and_second_match_is_runtime_error() -> None:
    token = torch.nn.Parameter(torch.zeros(1, 1, 4))
    modifier = make("cls_token", 1e-5)
    assert modifier.get_properties(torch.nn.Module(), "pos_embed", token) == {}
    assert modifier.get_properties(torch.nn.Module(), "cls_token", token) == {"weight_decay": 1e-5}
    assert modifier.was_applied_successfully()
    with pytest.raises(RuntimeError, match="found two parameters matching name 'cls_token'"):
        modifier.get_properties(torch.nn.Module(), "cls_token", token)


def test_glob() -> None:
    token = torch.nn.Parameter(torch.zeros(1))
    modifier = make("*_token")
    assert modifier.get_properties(torch.nn.Module(), "cls_token", token) == {"weight_decay": 0.0}
    assert modifier.get_properties(torch.nn.Module(), "reg_token", token) == {"weight_decay": 0.0}
    assert modifier.get_properties(torch.nn.Module(), "token.weight", token) == {}


def test_str_keeps_the_original_rendering() -> None:
    assert str(make("cls_token")) == "WeightDecayByNameModifier(name=cls_token), value=0.0)"
