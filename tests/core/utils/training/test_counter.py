import pytest

from noether.core.utils.training import TrainingIteration, UpdateCounter


def test_fresh_run_end_is_fully_specified() -> None:
    counter = UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(epoch=10), 100, 32)
    assert counter.end_iteration == TrainingIteration(10, 1000, 32000)
    assert counter.cur_iteration == TrainingIteration(0, 0, 0)
    assert counter.cur_iteration is not counter.start_iteration


def test_resumed_run_keeps_the_absolute_end() -> None:
    counter = UpdateCounter(TrainingIteration(5, 500, 16000), TrainingIteration(epoch=10), 100, 32)
    assert counter.end_iteration.update == 1000
    by_update = UpdateCounter(TrainingIteration(5, 500, 16000), TrainingIteration(update=1200), 100, 32)
    assert by_update.end_iteration == TrainingIteration(12, 1200, 38400)


def test_progress_properties() -> None:
    counter = UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(update=8), 4, 2)
    for _ in range(6):
        counter.next_update()
        counter.add_samples(2)
    assert (counter.update, counter.sample, counter.epoch) == (6, 12, 0)
    assert counter.epoch_as_float == 1.5 and not counter.is_full_epoch
    counter.next_epoch()
    assert counter.epoch == 1 and not counter.is_finished
    for _ in range(2):
        counter.next_update()
        counter.add_samples(2)
    counter.next_epoch()
    assert counter.is_full_epoch and counter.is_finished


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (TrainingIteration(update=0), TrainingIteration(epoch=1), "start_iteration must have"),
        (TrainingIteration(1, 0, 0), TrainingIteration(epoch=1), "inconsistent"),
        (TrainingIteration(0, 0, 0), TrainingIteration(epoch=1, update=2), "end_iteration must have exactly one"),
    ],
)
def test_invalid_iterations(start: TrainingIteration, end: TrainingIteration, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UpdateCounter(start, end, 10, 2)


@pytest.mark.parametrize(("upe", "ebs", "field"), [(0, 2, "updates_per_epoch"), (4, 0, "effective_batch_size")])
def test_invalid_counts(upe: int, ebs: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(epoch=1), upe, ebs)


def test_end_before_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="lies before start_iteration"):
        UpdateCounter(TrainingIteration(5, 500, 16000), TrainingIteration(epoch=4), 100, 32)
    resumed_at_end = UpdateCounter(TrainingIteration(5, 500, 16000), TrainingIteration(epoch=5), 100, 32)
    assert resumed_at_end.is_finished
