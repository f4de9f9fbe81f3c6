"""The custom modifier of docs/param_groups.md, end to end through the factory."""

import pytest
import torch

from noether.core.factory import KindResolutionError, OptimizerFactory, registered_module_prefixes
from noether.core.optimizer import ParamGroupModifierBase
from noether.core.schemas import OptimizerConfig, ParamGroupModifierConfig


class FreezeEmbeddingsLrModifier(ParamGroupModifierBase):
    """Scales the lr of every embedding table (torch.nn.Embedding weights) by `scale`."""

    def __init__(self, config: ParamGroupModifierConfig) -> None:
        self.scale = config.scale if config.scale is not None else 0.0
        self.max_rows = int((config.model_extra or {}).get("max_rows", 10**9))
        self.matched: list[str] = []

    def get_properties(self, model: torch.nn.Module, name: str, param: torch.Tensor) -> dict[str, float]:
        module_name = name.rpartition(".")[0]
        module = model.get_submodule(module_name) if module_name else model
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings <= self.max_rows:
            self.matched.append(name)
            return {"lr_scale": self.scale}
        return {}

    def was_applied_successfully(self) -> bool:
        return bool(self.matched)

    def __str__(self) -> str:
        return f"FreezeEmbeddingsLrModifier(scale={self.scale}, max_rows={self.max_rows})"


class TextModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.small = torch.nn.Embedding(10, 4)
        self.large = torch.nn.Embedding(100, 4)
        self.out = torch.nn.Linear(4, 2)


def config(max_rows: int) -> OptimizerConfig:
    return OptimizerConfig.model_validate(
        {
            "kind": "torch.optim.AdamW",
            "lr": 1e-3,
            "param_group_modifiers_config": [
                {
                    "kind": f"{__name__}.FreezeEmbeddingsLrModifier",
                    "name": "embeddings",
                    "scale": 0.1,
                    "max_rows": max_rows,
                }
            ],
        }
    )


def test_custom_modifier_end_to_end() -> None:
    with registered_module_prefixes(__name__):
        wrapper = OptimizerFactory().create(config(max_rows=50))(TextModel())
    lrs = {g["name"]: g["lr"] for g in wrapper.torch_optim.param_groups}
    assert lrs == {"lr_scale=1.0e-01": pytest.approx(1e-4), "default": 1e-3, "weight_decay=0": 1e-3}
    names = {id(p): n for n, p in wrapper.model.named_parameters()}
    scaled = next(g for g in wrapper.torch_optim.param_groups if g["name"] == "lr_scale=1.0e-01")
    assert [names[id(p)] for p in scaled["params"]] == ["small.weight"]


def test_unapplied_custom_modifier_and_unregistered_prefix() -> None:
    with registered_module_prefixes(__name__), pytest.raises(ValueError, match="max_rows=5"):
        OptimizerFactory().create(config(max_rows=5))(TextModel())
    with pytest.raises(KindResolutionError, match="not allowed"):
        OptimizerFactory().create(config(max_rows=50))(TextModel())
