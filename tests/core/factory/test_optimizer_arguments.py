"""Optimizer arguments of the wrong type are refused when the config is built, naming the optimizer and argument."""

import math
from typing import Any

import pytest
import torch

from noether.core.factory import OptimizerFactory
from noether.core.factory.optimizer import optimizer_kwargs_for
from noether.core.schemas import OptimizerConfig


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("torch.optim.AdamW", {"betas": 0.2}, "'betas' of torch.optim.adamw.AdamW must be a list of 2 finite numbers"),
        ("torch.optim.AdamW", {"betas": [0.9]}, "must be a list of 2 finite numbers (default [0.9, 0.999])"),
        ("torch.optim.AdamW", {"betas": [0.9, "x"]}, "'betas'"),
        ("torch.optim.AdamW", {"betas": [0.9, math.nan]}, "'betas'"),
        ("torch.optim.AdamW", {"eps": "1e-8"}, "'eps' of torch.optim.adamw.AdamW must be a finite number, got str"),
        ("torch.optim.AdamW", {"eps": math.inf}, "'eps' of torch.optim.adamw.AdamW must be a finite number"),
        ("torch.optim.AdamW", {"amsgrad": "yes"}, "'amsgrad' of torch.optim.adamw.AdamW must be true or false"),
        ("torch.optim.SGD", {"momentum": [0.9]}, "'momentum' of torch.optim.sgd.SGD must be a finite number"),
        ("torch.optim.SGD", {"nesterov": 1}, "'nesterov' of torch.optim.sgd.SGD must be true or false"),
        ("noether.core.optimizer.Lion", {"betas": 0.2}, "'betas' of noether.core.optimizer"),
    ],
)
def test_wrong_argument_type_names_the_optimizer_and_argument(kind: str, extra: dict[str, Any], message: str) -> None:
    config = OptimizerConfig.model_validate({"kind": kind, "lr": 1e-3, **extra})
    with pytest.raises(ValueError) as info:
        OptimizerFactory().create(config)  # refused before anything is built
    assert message in str(info.value)
    assert "not subscriptable" not in str(info.value)


def test_right_types_pass_and_build() -> None:
    config = OptimizerConfig.model_validate(
        {"kind": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.8, 0.9], "eps": 1e-6, "amsgrad": True, "foreach": None}
    )
    wrapper = OptimizerFactory().create(config)(torch.nn.Linear(2, 2))
    assert wrapper.torch_optim.defaults["betas"] == (0.8, 0.9) and wrapper.torch_optim.defaults["amsgrad"] is True
    rprop = OptimizerConfig.model_validate({"kind": "torch.optim.Rprop", "lr": 1e-3, "step_sizes": [1e-6, 50]})
    assert optimizer_kwargs_for(torch.optim.Rprop, rprop)["step_sizes"] == (1e-6, 50)
    adafactor = OptimizerConfig.model_validate({"kind": "torch.optim.Adafactor", "lr": 1e-3, "eps": [None, 1e-3]})
    assert optimizer_kwargs_for(torch.optim.Adafactor, adafactor)["eps"] == (None, 1e-3)
    tensor_lr = OptimizerConfig.model_validate({"kind": "torch.optim.SGD", "lr": 1e-3, "momentum": torch.tensor(0.9)})
    assert isinstance(optimizer_kwargs_for(torch.optim.SGD, tensor_lr)["momentum"], torch.Tensor)
