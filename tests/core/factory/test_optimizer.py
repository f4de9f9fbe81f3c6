import functools

import pytest
import torch

from noether.core.factory import DatasetFactory, Factory, KindResolutionError, OptimizerFactory
from noether.core.optimizer import OptimizerWrapper
from noether.core.schemas import OptimizerConfig, ParamGroupModifierConfig


def build(model: torch.nn.Module, **config: object) -> OptimizerWrapper:
    wrapper = OptimizerFactory().create(OptimizerConfig(**config))(model)  # type: ignore[arg-type]
    assert isinstance(wrapper, OptimizerWrapper)
    return wrapper


def test_partial_and_split_of_kwargs() -> None:
    made = OptimizerFactory().create(OptimizerConfig(kind="torch.optim.AdamW", lr=1e-3, weight_decay=0.05))
    assert isinstance(made, functools.partial) and made.func is OptimizerWrapper
    ctor = made.keywords["torch_optim_ctor"]
    assert ctor.func is torch.optim.AdamW and ctor.keywords == {"lr": 1e-3, "weight_decay": 0.05}
    wrapper_config = made.keywords["optim_wrapper_config"]
    assert wrapper_config.kind is None and wrapper_config.lr is None


def test_extra_kwargs_reach_the_optimizer_decision_2() -> None:
    wrapper = build(torch.nn.Linear(2, 2), kind="torch.optim.AdamW", lr=1e-3, betas=[0.8, 0.9], eps=1e-5)
    group = wrapper.torch_optim.param_groups[0]
    assert group["betas"] == (0.8, 0.9) and group["eps"] == 1e-5


def test_unknown_kwarg_names_it_and_lists_accepted() -> None:
    with pytest.raises(ValueError, match=r"'momentun' \(did you mean 'momentum'\?\).*accepts \[.*'nesterov'"):
        OptimizerFactory().create(OptimizerConfig(kind="torch.optim.SGD", lr=0.1, momentun=0.9))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"clip_grad_nrom.*did you mean 'clip_grad_norm'"):
        OptimizerFactory().create(OptimizerConfig(kind="torch.optim.SGD", lr=0.1, clip_grad_nrom=1.0))  # type: ignore[call-arg]


def test_zero_weight_decay_is_dropped_for_optimizers_without_it() -> None:
    wrapper = build(torch.nn.Linear(2, 2), kind="torch.optim.Rprop", lr=0.01)
    assert "weight_decay" not in wrapper.torch_optim.defaults
    with pytest.raises(ValueError, match="weight_decay"):
        OptimizerFactory().create(OptimizerConfig(kind="torch.optim.Rprop", lr=0.01, weight_decay=0.1))


def test_dict_config_is_validated() -> None:
    wrapper = OptimizerFactory().create({"kind": "torch.optim.SGD", "lr": 0.5})(torch.nn.Linear(2, 2))
    assert wrapper.torch_optim.defaults["lr"] == 0.5


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("os.system", "not allowed"),
        ("builtins.eval", "not allowed"),
        ("subprocess.Popen", "not allowed"),
        ("evil_module_that_does_not_exist.Optim", "not allowed"),
        ("torch.optim.lr_scheduler.StepLR", "subclass of torch.optim.optimizer.Optimizer"),
        ("noether.core.optimizer.OptimizerWrapper", "subclass"),
        ("AdamW", "dotted class path"),
    ],
)
def test_optimizer_kind_security(kind: str, message: str) -> None:
    with pytest.raises(KindResolutionError, match=message):
        OptimizerFactory().create(OptimizerConfig(kind=kind, lr=0.1))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("os.system", "not allowed"),
        ("torch.optim.SGD", "ParamGroupModifierBase"),
        ("noether.core.optimizer.OptimizerWrapper", "ParamGroupModifierBase"),
    ],
)
def test_modifier_kind_security(kind: str, message: str) -> None:
    config = OptimizerConfig(
        kind="torch.optim.SGD", lr=0.1, param_group_modifiers_config=[{"kind": kind, "name": "weight"}]
    )  # type: ignore[list-item]
    with pytest.raises(KindResolutionError, match=message):
        OptimizerFactory().create(config)(torch.nn.Linear(2, 2))


def test_kind_none_raises() -> None:
    with pytest.raises(ValueError, match="kind"):
        OptimizerFactory().instantiate(OptimizerConfig())


def test_str_of_the_factory_built_wrapper() -> None:
    wrapper = build(torch.nn.Linear(2, 2), kind="torch.optim.AdamW", lr=1e-3, weight_decay=0.05, clip_grad_norm=1.0)
    assert str(wrapper) == "AdamW(clip_grad_norm=1.0)"
    assert repr(wrapper).startswith("OptimizerWrapper(AdamW (")
    assert str(build(torch.nn.Linear(2, 2), kind="torch.optim.SGD", lr=0.1)) == "SGD"
    schedule = {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_percent": 0.1}
    standard = build(
        torch.nn.Linear(2, 2),
        kind="torch.optim.AdamW",
        lr=1e-3,
        weight_decay=0.05,
        clip_grad_norm=1.0,
        schedule_config={**schedule, "end_value": 1e-6},
    )
    assert str(standard) == "AdamW(clip_grad_norm=1.0, schedule_config={'warmup_percent': 0.1})"


def test_dataset_factory_is_a_plain_factory() -> None:
    assert issubclass(DatasetFactory, Factory) and DatasetFactory.base_class is torch.utils.data.Dataset


def test_modifier_without_kind_is_refused_by_the_factory_naming_the_field_and_the_kinds() -> None:
    with_kind = ParamGroupModifierConfig(
        kind="noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier", name="weight", scale=0.5
    )
    without_kind = ParamGroupModifierConfig(name="bias", value=0.0)
    config = OptimizerConfig(kind="torch.optim.SGD", lr=0.1, param_group_modifiers_config=[with_kind, without_kind])
    with pytest.raises(ValueError, match="entry 1") as info:
        OptimizerFactory().create(config)(torch.nn.Linear(2, 2))
    message = str(info.value)
    assert "'kind'" in message
    for kind in ("LrScaleByNameModifier", "WeightDecayByNameModifier", "LayerwiseLrDecayModifier"):
        assert f"noether.core.optimizer.{kind}" in message
    assert "ByNameModifierBase" not in message  # abstract helpers are not offered
