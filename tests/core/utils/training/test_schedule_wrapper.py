import pytest

from noether.core.schedules import ConstantSchedule, ConstantScheduleConfig, LinearIncreasingSchedule
from noether.core.schemas.schedules import LinearIncreasingScheduleConfig
from noether.core.utils.training import ScheduleWrapper, TrainingIteration, UpdateCounter


def _linear() -> LinearIncreasingSchedule:
    return LinearIncreasingSchedule(LinearIncreasingScheduleConfig(start_value=0.0, max_value=1.0))


def _counter(end: TrainingIteration, upe: int = 4) -> UpdateCounter:
    return UpdateCounter(TrainingIteration(0, 0, 0), end, upe, 1)


def test_update_interval_reference_row() -> None:
    # The original's value: LinearIncreasing 0 -> 1 through ScheduleWrapper with end update 10 gives s/9, then 1.0.
    counter = _counter(TrainingIteration(update=10))
    wrapper = ScheduleWrapper(_linear(), counter)
    values = []
    for _ in range(10):
        values.append(wrapper.get_value())
        counter.next_update()
    assert values == pytest.approx([s / 9 for s in range(10)])
    assert wrapper.get_value() == 1.0  # after the last update: progress is clamped


def test_epoch_interval_last_epoch_gets_final_value() -> None:
    # The last epoch gets the final value; the original gave 0, 4/11, 8/11 for upe=4 and 3 epochs, never reaching 1.
    counter = _counter(TrainingIteration(epoch=3))
    wrapper = ScheduleWrapper(_linear(), counter, interval="epoch")
    seen = []
    for _ in range(3):
        for _ in range(4):
            seen.append(wrapper.get_value())
            counter.next_update()
        counter.next_epoch()
    assert seen == pytest.approx([0.0] * 4 + [0.5] * 4 + [1.0] * 4)
    assert wrapper.get_value() == 1.0  # the finished run holds the final value


def test_epoch_interval_with_end_not_a_multiple_of_the_epoch() -> None:
    counter = _counter(TrainingIteration(update=10))  # epochs 0, 1 full and epoch 2 with 2 updates
    wrapper = ScheduleWrapper(_linear(), counter, interval="epoch")
    values = []
    for epoch in range(3):
        counter.cur_iteration.epoch = epoch
        values.append(wrapper.get_value())
    assert values == pytest.approx([0.0, 0.5, 1.0])


def test_past_the_end_holds_the_final_value_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    for interval, field in (("update", "update"), ("epoch", "epoch")):
        counter = _counter(TrainingIteration(update=10))
        wrapper = ScheduleWrapper(_linear(), counter, interval=interval)
        caplog.clear()
        with caplog.at_level("WARNING"):
            for position in (11, 12, 50):
                setattr(counter.cur_iteration, field, position)
                assert wrapper.get_value() == 1.0, (interval, position)
        assert len([r for r in caplog.records if "final value" in r.getMessage()]) == 1, interval


def test_resume_continues_the_same_curve() -> None:
    fresh = _counter(TrainingIteration(update=20))
    resumed = UpdateCounter(TrainingIteration(2, 8, 8), TrainingIteration(update=20), 4, 1)
    for _ in range(8):
        fresh.next_update()
    assert ScheduleWrapper(_linear(), resumed).get_value() == ScheduleWrapper(_linear(), fresh).get_value()


def test_without_counter_only_constant() -> None:
    assert ScheduleWrapper(ConstantSchedule(ConstantScheduleConfig(value=0.3))).get_value() == 0.3
    with pytest.raises(ValueError, match="update_counter"):
        ScheduleWrapper(_linear()).get_value()


def test_unknown_interval_raises() -> None:
    with pytest.raises(NotImplementedError, match="'step'"):
        ScheduleWrapper(_linear(), interval="step")


def test_missing_positions_raise() -> None:
    counter = _counter(TrainingIteration(update=10))
    counter.cur_iteration.update = None
    with pytest.raises(ValueError, match="current and end update"):
        ScheduleWrapper(_linear(), counter).get_value()
    counter.cur_iteration.epoch = None
    with pytest.raises(ValueError, match="current epoch"):
        ScheduleWrapper(_linear(), counter, interval="epoch").get_value()
