"""Layer-wise lr decay from a model's group_matcher equals timm's ``create_optimizer_v2(model, layer_decay=...)``.

timm itself is the reference: for tiny models of four families (built from configs, no downloads) every parameter
must get exactly the lr scale and the weight decay of timm's param groups.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import OptimizerWrapper
from noether.core.schemas import OptimizerConfig
from tests.core.optimizer.param_group_modifiers.timm_loader import import_timm

LAYERWISE = "noether.core.optimizer.param_group_modifiers.LayerwiseLrDecayModifier"

# Tiny members of four families: a plain ViT, ConvNeXt (stages of blocks), ResNet (layer1..layer4) and Swin
# (nested stages, a norm that joins the previous group, no_weight_decay() names inside the blocks).
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "vit": (
        "vit_tiny_patch16_224",
        {"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 3, "num_heads": 2, "num_classes": 5},
    ),
    "convnext": ("convnext_atto", {"depths": (1, 1, 2, 1), "dims": (8, 16, 24, 32), "num_classes": 5}),
    "resnet": ("resnet18", {"layers": (1, 1, 1, 1), "num_classes": 5}),
    "swin": (
        "swin_tiny_patch4_window7_224",
        {
            "img_size": 32,
            "patch_size": 4,
            "window_size": 2,
            "embed_dim": 8,
            "depths": (1, 1, 2, 1),
            "num_heads": (1, 1, 2, 2),
            "num_classes": 5,
        },
    ),
}


def timm_model(family: str) -> torch.nn.Module:
    timm = import_timm()
    name, kwargs = FAMILIES[family]
    model: torch.nn.Module = timm.create_model(name, pretrained=False, **kwargs)
    return model


def timm_settings(model: torch.nn.Module, decay: float, weight_decay: float, **kwargs: Any) -> dict[str, tuple]:
    timm = import_timm()
    optimizer = timm.optim.create_optimizer_v2(
        model, opt="sgd", lr=1.0, weight_decay=weight_decay, layer_decay=decay, **kwargs
    )
    names = {id(param): name for name, param in model.named_parameters()}
    return {
        names[id(param)]: (group["lr_scale"], group["weight_decay"])
        for group in optimizer.param_groups
        for param in group["params"]
    }


def our_settings(wrapper: OptimizerWrapper, model: torch.nn.Module) -> dict[str, tuple]:
    names = {id(param): name for name, param in model.named_parameters()}
    settings = {}
    for group in wrapper.torch_optim.param_groups:
        scale = group.get("lr_scale", 1.0)
        assert group["lr"] == pytest.approx(scale)  # lr 1.0 times the scale, applied at construction
        for param in group["params"]:
            settings[names[id(param)]] = (scale, group["weight_decay"])
    return settings


def build(model: torch.nn.Module, decay: float, weight_decay: float, **modifier: Any) -> OptimizerWrapper:
    config = OptimizerConfig(
        kind="torch.optim.SGD",
        lr=1.0,
        weight_decay=weight_decay,
        param_group_modifiers_config=[{"kind": LAYERWISE, "decay": decay, **modifier}],  # type: ignore[list-item]
    )
    wrapper: OptimizerWrapper = OptimizerFactory().create(config)(model)
    return wrapper


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_parameter_gets_timms_lr_scale_and_weight_decay(family: str, caplog: pytest.LogCaptureFixture) -> None:
    model = timm_model(family)
    expected = timm_settings(model, decay=0.75, weight_decay=0.05)
    with caplog.at_level(logging.INFO, logger="noether"):
        actual = our_settings(build(model, decay=0.75, weight_decay=0.05), model)
    assert actual == expected  # exact: the same float operations give the same scales
    assert len({scale for scale, _ in expected.values()}) >= 5  # the model really has several layers
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
    if family == "vit":  # timm's ViT lists dist_token and reg_token, which this variant lacks: info, not warning
        assert any("dist_token" in record.getMessage() for record in caplog.records)


def test_min_scale_and_another_decay_match_timm() -> None:
    model = timm_model("convnext")
    expected = timm_settings(model, decay=0.5, weight_decay=0.1, layer_decay_min_scale=0.05)
    assert our_settings(build(model, decay=0.5, weight_decay=0.1, min_scale=0.05), model) == expected
    assert min(scale for scale, _ in expected.values()) == 0.05


def test_group_matcher_is_found_inside_a_ddp_like_wrapper() -> None:
    class DDPLike(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    inner = timm_model("vit")
    expected = {f"module.{name}": value for name, value in timm_settings(inner, 0.75, 0.05).items()}
    wrapped = DDPLike(inner)
    assert our_settings(build(wrapped, decay=0.75, weight_decay=0.05), wrapped) == expected
