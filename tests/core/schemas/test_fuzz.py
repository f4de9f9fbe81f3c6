"""Fuzzing the configs: validation either raises ValidationError or gives a config that builds and trains.

Every generated config is validated; one that validates is built into an ``OptimizerWrapper`` over a small float64
model and stepped a few times with its schedules applied, and every parameter and hyperparameter must stay finite.
The loss is linear in the parameters, so only the config (not a diverging loss) can make a value blow up.
"""

import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from noether.core.factory import OptimizerFactory
from noether.core.schemas import OptimizerConfig
from noether.core.schemas.schedules import _BUILTIN_CONFIGS, ScheduleBaseConfig, kinds_of
from noether.core.utils.training import TrainingIteration, UpdateCounter

SCHEDULE_FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Per schedule config class (13 of them)."""
OPTIMIZER_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEPS = 4

nasty_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-320, 1e-9, 0.5, 1.0, 2.0, 1e3, 65504.0, 65505.0, 1e6, 1e9, 1e12, 1e308]),
    st.integers(min_value=-(10**14), max_value=10**14),
    st.sampled_from(["nan", "1e308", "-1", None, True]),
)
sane_numbers = st.one_of(
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    st.floats(min_value=0.0, max_value=0.01),
    st.floats(min_value=0.0, max_value=3.0),
    st.integers(min_value=0, max_value=9),
)
numbers = st.one_of(sane_numbers, sane_numbers, sane_numbers, nasty_numbers)


def _value_strategy(name: str, annotation: Any) -> st.SearchStrategy[Any]:
    text = str(annotation)
    if name == "interval":
        return st.sampled_from(["update", "epoch", "step"])
    if "bool" in text and "float" not in text and "int" not in text:
        return st.one_of(st.booleans(), nasty_numbers)
    if name in ("values", "steps"):
        return st.lists(st.one_of(st.floats(min_value=0.01, max_value=0.99), numbers), max_size=4)
    return numbers


@st.composite
def _schedule_config_dicts(draw: st.DrawFn, config_class: type[ScheduleBaseConfig]) -> dict[str, Any]:
    # Every required field and a few optional ones: with all of them, nearly every example would be invalid.
    fields = {name: field for name, field in config_class.model_fields.items() if name != "kind"}
    optional = sorted(name for name, field in fields.items() if not field.is_required())
    chosen = [name for name, field in fields.items() if field.is_required()]
    chosen += draw(st.lists(st.sampled_from(optional), max_size=3, unique=True))
    data = {"kind": draw(st.sampled_from(kinds_of(config_class)))}
    for name in chosen:
        data[name] = draw(_value_strategy(name, fields[name].annotation))
    return data


def _schedule_configs(config_class: type[ScheduleBaseConfig]) -> st.SearchStrategy[dict[str, Any]]:
    return _schedule_config_dicts(config_class)


def _counter() -> UpdateCounter:
    return UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(update=STEPS), 2, 1)


def _run_too_short(config: OptimizerConfig) -> bool:
    # The one setting checked against the run's length, which no config knows: the first schedule_step refuses a
    # warmup as long as the run, with an error that says so.
    schedules = (config.schedule_config, config.weight_decay_schedule)
    return any((getattr(schedule, "warmup_steps", None) or 0) >= STEPS for schedule in schedules)


def _train(config: OptimizerConfig) -> None:
    """Build the wrapper, run ``STEPS`` updates, and check that everything stays finite."""
    if _run_too_short(config):
        with pytest.raises(ValueError, match=r"warmup_steps \(\d+\) must be smaller than the run's total_steps"):
            _train_unchecked(config)
        return
    _train_unchecked(config)


def _train_unchecked(config: OptimizerConfig) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)).double()
    counter = _counter()
    wrapper = OptimizerFactory().create(config)(model, update_counter=counter)
    x = torch.randn(5, 3, dtype=torch.float64)
    direction = torch.randn(5, 2, dtype=torch.float64)
    for update in range(STEPS):
        counter.cur_iteration.update = update
        counter.cur_iteration.epoch = update // 2
        wrapper.schedule_step()
        for group in wrapper.torch_optim.param_groups:
            for key in ("lr", "weight_decay"):
                value = float(group[key])
                assert math.isfinite(value) and value >= 0, (key, value)
        wrapper.zero_grad()
        (model(x) * direction).sum().backward()  # linear in the output: gradients stay bounded
        wrapper.step()
    for name, param in model.named_parameters():
        assert torch.isfinite(param).all(), f"{name} is not finite after {STEPS} steps with {config}"


@pytest.mark.parametrize("config_class", _BUILTIN_CONFIGS, ids=lambda cls: cls.__name__)
@SCHEDULE_FUZZ
@given(data=st.data())
def test_schedule_config_validates_or_builds_and_trains(config_class: type[ScheduleBaseConfig], data: Any) -> None:
    schedule = data.draw(_schedule_configs(config_class), label="schedule")
    field = data.draw(st.sampled_from(["schedule_config", "weight_decay_schedule"]), label="field")
    kind = data.draw(st.sampled_from(["torch.optim.SGD", "torch.optim.AdamW"]), label="kind")
    try:
        config = OptimizerConfig.model_validate({"kind": kind, "lr": 0.01, "weight_decay": 0.01, field: schedule})
    except ValidationError:
        return
    _train(config)


LR_SCALE = "noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier"
WD_BY_NAME = "noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier"

# At most one weight-decay modifier: two that match the same parameter are refused when the wrapper is built, and
# whether they overlap depends on the model, which the config does not know.
modifiers = st.tuples(
    st.lists(
        st.fixed_dictionaries(
            {"kind": st.just(LR_SCALE), "name": st.sampled_from(["0.weight", "2.*"]), "scale": numbers}
        ),
        max_size=2,
    ),
    st.lists(
        st.fixed_dictionaries(
            {"kind": st.just(WD_BY_NAME), "name": st.sampled_from(["0.bias", "2.weight"]), "value": numbers}
        ),
        max_size=1,
    ),
).map(lambda pair: pair[0] + pair[1])


@OPTIMIZER_FUZZ
@given(
    kind=st.sampled_from(["torch.optim.SGD", "torch.optim.AdamW"]),
    fields=st.fixed_dictionaries(
        {"lr": numbers},
        optional={
            "weight_decay": numbers,
            "clip_grad_value": numbers,
            "clip_grad_norm": numbers,
            "exclude_bias_from_weight_decay": st.booleans(),
            "exclude_normalization_params_from_weight_decay": st.booleans(),
            "param_group_modifiers_config": modifiers,
            "schedule_config": st.one_of(*(_schedule_configs(cls) for cls in _BUILTIN_CONFIGS[:4])),
        },
    ),
)
def test_optimizer_config_validates_or_builds_and_trains(kind: str, fields: dict[str, Any]) -> None:
    try:
        config = OptimizerConfig.model_validate({"kind": kind, **fields})
    except ValidationError:
        return
    _train(config)
