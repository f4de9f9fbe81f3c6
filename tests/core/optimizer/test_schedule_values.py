"""The wrapper never applies a scheduled lr or weight decay that is NaN, infinite or negative."""

import math

import pytest
import torch

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import OptimizerWrapper
from noether.core.optimizer.schedule_values import checked_schedule_value
from noether.core.schedules import ScheduleBase
from noether.core.utils.training import ScheduleWrapper, TrainingIteration, UpdateCounter


class _Fixed(ScheduleBase):
    """A user-defined schedule that returns whatever it was given (validated configs cannot produce these)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def _get_value(self, step: int, total_steps: int) -> float:
        return self.value


def _counter() -> UpdateCounter:
    counter = UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(update=10), 5, 1)
    counter.cur_iteration.update = 3
    return counter


def _wrapper() -> OptimizerWrapper:
    config = {
        "kind": "torch.optim.AdamW",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "schedule_config": {"kind": "noether.core.schedules.ConstantSchedule", "value": 1e-3},
        "weight_decay_schedule": {"kind": "noether.core.schedules.ConstantSchedule", "value": 0.05},
    }
    wrapper: OptimizerWrapper = OptimizerFactory().create(config)(torch.nn.Linear(3, 2), update_counter=_counter())
    return wrapper


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1e-3])
@pytest.mark.parametrize("which", ["schedule", "weight_decay_schedule"])
def test_schedule_step_refuses_a_bad_value_and_changes_nothing(which: str, bad: float) -> None:
    wrapper = _wrapper()
    before = [(group["lr"], group["weight_decay"]) for group in wrapper.torch_optim.param_groups]
    setattr(wrapper, which, ScheduleWrapper(_Fixed(bad), update_counter=_counter()))
    hyperparameter = "lr" if which == "schedule" else "weight_decay"
    with pytest.raises(ValueError, match=rf"the {hyperparameter} schedule .* gave {bad!r} at update 3"):
        wrapper.schedule_step()
    after = [(group["lr"], group["weight_decay"]) for group in wrapper.torch_optim.param_groups]
    assert after == before


def test_good_values_pass_through() -> None:
    assert checked_schedule_value(ScheduleWrapper(_Fixed(0.0), update_counter=_counter()), "lr") == 0.0
    assert checked_schedule_value(ScheduleWrapper(_Fixed(2.5), update_counter=_counter()), "lr") == 2.5
