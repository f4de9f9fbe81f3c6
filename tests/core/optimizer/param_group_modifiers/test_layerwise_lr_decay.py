import functools

import pytest
import torch

from noether.core.optimizer import LayerwiseLrDecayModifier, OptimizerWrapper
from noether.core.schemas import OptimizerConfig, ParamGroupModifierConfig

KIND = "noether.core.optimizer.param_group_modifiers.LayerwiseLrDecayModifier"


class TinyViT(torch.nn.Module):
    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
        self.patch_embed = torch.nn.Linear(4, 4)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2)


def expected_scales(model: torch.nn.Module, decay: float, num_layers: int) -> dict[str, float]:
    # Independent reference: timm's layer ids (stem 0, blocks.i -> i+1, rest num_layers+1).
    scales = {}
    for name, _ in model.named_parameters():
        if name.startswith("blocks."):
            layer_id = int(name.split(".")[1]) + 1
        elif name.startswith(("cls_token", "patch_embed")):
            layer_id = 0
        else:
            layer_id = num_layers + 1
        scales[name] = decay ** (num_layers + 1 - layer_id)
    return scales


def scales_of(modifier: LayerwiseLrDecayModifier, model: torch.nn.Module) -> dict[str, float]:
    return {n: modifier.get_properties(model, n, p).get("lr_scale", 1.0) for n, p in model.named_parameters()}


@pytest.mark.parametrize("decay", [0.75, 0.5])
def test_scales_follow_layer_ids(decay: float) -> None:
    model = TinyViT()
    modifier = LayerwiseLrDecayModifier(ParamGroupModifierConfig(kind=KIND, name="blocks", decay=decay))  # type: ignore[call-arg]
    assert scales_of(modifier, model) == pytest.approx(expected_scales(model, decay, 3))
    assert modifier.was_applied_successfully()


def test_num_layers_override_and_too_small() -> None:
    model = TinyViT()
    config = ParamGroupModifierConfig(kind=KIND, name="blocks", decay=0.5, num_layers=5)  # type: ignore[call-arg]
    assert scales_of(LayerwiseLrDecayModifier(config), model) == pytest.approx(expected_scales(model, 0.5, 5))
    small = ParamGroupModifierConfig(kind=KIND, name="blocks", decay=0.5, num_layers=2)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="num_layers=2"):
        scales_of(LayerwiseLrDecayModifier(small), model)


def test_unknown_container_is_not_applied() -> None:
    model = TinyViT()
    modifier = LayerwiseLrDecayModifier(ParamGroupModifierConfig(kind=KIND, name="layers", decay=0.5))  # type: ignore[call-arg]
    scales_of(modifier, model)
    assert not modifier.was_applied_successfully()


def test_through_the_wrapper_with_ddp_prefix_and_an_extra_lr_scale() -> None:
    class DDPLike(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = TinyViT(depth=2)

    model = DDPLike()
    config = OptimizerConfig(
        param_group_modifiers_config=[
            {"kind": KIND, "name": "blocks", "decay": 0.5},  # type: ignore[list-item]
            {"kind": "noether.core.optimizer.LrScaleByNameModifier", "name": "module.head.weight", "scale": 0.1},  # type: ignore[list-item]
        ]
    )
    wrapper = OptimizerWrapper(model, functools.partial(torch.optim.SGD, lr=1.0), config)
    lr_of = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.torch_optim.param_groups:
        for p in group["params"]:
            lr_of[names[id(p)]] = group["lr"]
    assert lr_of["module.cls_token"] == pytest.approx(0.125)
    assert lr_of["module.blocks.0.weight"] == pytest.approx(0.25)
    assert lr_of["module.blocks.1.weight"] == pytest.approx(0.5)
    assert lr_of["module.norm.weight"] == 1.0
    assert lr_of["module.head.weight"] == pytest.approx(0.1)
