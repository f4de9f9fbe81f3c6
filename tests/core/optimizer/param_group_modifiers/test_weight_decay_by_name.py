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


def test_one_config_builds_the_same_groups_for_the_plain_and_the_ddp_wrapped_model() -> None:
    import functools

    from noether.core.optimizer import OptimizerWrapper
    from noether.core.schemas import OptimizerConfig

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = torch.nn.Parameter(torch.zeros(1, 4))
            self.head = torch.nn.Linear(4, 2)

    class DDPLike(torch.nn.Module):  # what DistributedDataParallel's named_parameters() look like
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    config = OptimizerConfig(
        param_group_modifiers_config=[
            {"kind": KIND, "name": "pos_embed", "value": 0.0},  # type: ignore[list-item]
            {"kind": "noether.core.optimizer.LrScaleByNameModifier", "name": "head.weight", "scale": 0.1},  # type: ignore[list-item]
        ],
    )
    tables = []
    for model in (Net(), DDPLike(Net())):
        wrapper = OptimizerWrapper(model, functools.partial(torch.optim.SGD, lr=1.0, weight_decay=0.05), config)
        names = {id(p): n.removeprefix("module.") for n, p in model.named_parameters()}
        tables.append(
            sorted(
                (names[id(p)], g["lr"], g["weight_decay"])
                for g in wrapper.torch_optim.param_groups
                for p in g["params"]
            )
        )
    assert tables[0] == tables[1]
    assert ("pos_embed", 1.0, 0.0) in tables[0] and ("head.weight", pytest.approx(0.1), 0.05) in tables[0]


def test_built_directly_from_a_config_without_kind_as_in_the_original() -> None:
    modifier = WeightDecayByNameModifier(ParamGroupModifierConfig(name="cls_token", value=0.0))
    token = torch.nn.Parameter(torch.zeros(1, 1, 4))
    assert modifier.get_properties(torch.nn.Module(), "cls_token", token) == {"weight_decay": 0.0}
    assert modifier.was_applied_successfully()
    assert str(modifier) == "WeightDecayByNameModifier(name=cls_token), value=0.0)"
