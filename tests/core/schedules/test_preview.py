import math

import numpy as np
import pytest

from noether.core.schedules import LinearIncreasingSchedule
from noether.core.schedules.preview import schedule_values
from noether.core.schemas import LinearWarmupCosineDecayScheduleConfig
from noether.core.schemas.schedules import LinearIncreasingScheduleConfig
from noether.core.utils.training import TrainingIteration, UpdateCounter

LWCD = {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 2}


def test_values_of_a_mapping_with_default_max_value() -> None:
    values = schedule_values(LWCD, 6, max_value=2.0)
    assert values.dtype == np.float64 and values.shape == (6,)
    end = 1e-6  # the config's default end_value
    expected = [2 / 3, 4 / 3, 2.0] + [end + (2.0 - end) * (1 + math.cos(math.pi * k / 3)) / 2 for k in (1, 2, 3)]
    assert values.tolist() == pytest.approx(expected)


def test_values_of_a_config_and_of_a_built_schedule_agree() -> None:
    config = LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.2, max_value=1.0)
    built = LinearIncreasingSchedule(LinearIncreasingScheduleConfig(max_value=1.0))
    assert schedule_values(config, 11)[2] == pytest.approx(1.0)
    assert schedule_values(built, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_values_over_an_update_counter_follow_the_interval() -> None:
    counter = UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(epoch=3), 2, 4)
    per_update = {"kind": "noether.core.schedules.LinearIncreasingSchedule"}
    per_epoch = {**per_update, "interval": "epoch"}
    assert schedule_values(per_update, counter, max_value=1.0).tolist() == pytest.approx([s / 5 for s in range(6)])
    assert schedule_values(per_epoch, counter, max_value=1.0).tolist() == pytest.approx([0, 0, 0.5, 0.5, 1, 1])
    assert counter.cur_iteration == TrainingIteration(0, 0, 0)


def test_resumed_counter_gives_the_rest_of_the_curve() -> None:
    counter = UpdateCounter(TrainingIteration(1, 2, 8), TrainingIteration(epoch=3), 2, 4)
    assert schedule_values(LWCD, counter, max_value=1.0).tolist() == pytest.approx(schedule_values(LWCD, 6, 1.0)[2:])


def test_errors() -> None:
    with pytest.raises(ValueError, match="steps must be"):
        schedule_values(LWCD, 0, max_value=1.0)
    with pytest.raises(ValueError, match="max_value only applies"):
        schedule_values(LinearIncreasingSchedule(LinearIncreasingScheduleConfig(max_value=1.0)), 3, max_value=2.0)
    with pytest.raises(ValueError, match="max_value is not set"):
        schedule_values(LWCD, 5)
    with pytest.raises(ValueError, match="empty"):
        schedule_values({}, 5)
