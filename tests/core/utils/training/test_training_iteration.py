from pathlib import Path

import pytest

from noether.core.utils.training import TrainingIteration


def test_to_fully_specified_from_each_field() -> None:
    expected = TrainingIteration(epoch=2, update=250, sample=8000)
    assert TrainingIteration(update=250).to_fully_specified(100, 32) == expected
    assert TrainingIteration(epoch=2).to_fully_specified(100, 32) == TrainingIteration(2, 200, 6400)
    assert TrainingIteration(sample=8010).to_fully_specified(100, 32) == expected
    full = TrainingIteration(1, 2, 3)
    copy = full.to_fully_specified(100, 32)
    assert copy == full and copy is not full


def test_to_fully_specified_needs_exactly_one_field() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TrainingIteration(epoch=1, update=2).to_fully_specified(10, 1)
    with pytest.raises(ValueError, match="exactly one"):
        TrainingIteration().to_fully_specified(10, 1)


def test_arithmetic_and_comparison_need_the_same_fields() -> None:
    a, b = TrainingIteration(1, 10, 100), TrainingIteration(2, 5, 50)
    assert a + b == TrainingIteration(3, 15, 150)
    assert a - b == TrainingIteration(-1, 5, 50)
    assert not a >= b and not b >= a  # >= needs every field to be >=
    assert TrainingIteration(2, 10, 100) >= a and a <= TrainingIteration(2, 10, 100)
    with pytest.raises(RuntimeError, match="same fields"):
        _ = a + TrainingIteration(epoch=1)
    with pytest.raises(RuntimeError, match="same fields"):
        _ = a >= TrainingIteration(epoch=1)


def test_equality_hash_iteration_and_str() -> None:
    assert TrainingIteration(epoch=5) == TrainingIteration(epoch=5)
    assert TrainingIteration(epoch=5) != TrainingIteration(update=5)
    assert len({TrainingIteration(1, 2, 3), TrainingIteration(1, 2, 3)}) == 1
    assert dict(TrainingIteration(epoch=5, sample=7)) == {"epoch": 5, "sample": 7}
    assert str(TrainingIteration(epoch=5)) == "Epoch: 5"
    assert str(TrainingIteration(update=3)) == "Update: 3"
    assert str(TrainingIteration(1, 2, 3)) == "E1_U2_S3"
    assert TrainingIteration(1, 2, 3).get_n_equal_properties(TrainingIteration(1, 0, 3)) == 2


def test_to_target_specification() -> None:
    assert TrainingIteration(6, 12, 123).to_target_specification(TrainingIteration(epoch=5)) == TrainingIteration(
        epoch=6
    )
    with pytest.raises(ValueError, match="more than"):
        TrainingIteration(epoch=1).to_target_specification(TrainingIteration(1, 2, 3))


def test_string_parsing() -> None:
    assert TrainingIteration.from_string("E5_U500_S16000_model.th") == TrainingIteration(5, 500, 16000)
    with pytest.raises(ValueError, match="does not start"):
        TrainingIteration.from_string("model_E5_U500_S16000")
    assert TrainingIteration.contains_string("model_E5_U500_S16000.th")
    assert not TrainingIteration.contains_string("model_E5_U500.th")
    assert TrainingIteration.find_string("cp=E5_U500_S16000.th") == "E5_U500_S16000"
    assert TrainingIteration.from_filename("cp=E5_U500_S16000.th") == TrainingIteration(5, 500, 16000)
    assert TrainingIteration.from_dict({"epoch": 3}) == TrainingIteration(epoch=3)
    with pytest.raises(ValueError, match="epochs"):
        TrainingIteration.from_dict({"epochs": 3})


def test_to_fully_specified_from_filenames(tmp_path: Path) -> None:
    for name in ("model_E4_U400_S6400.th", "model_E5_U500_S8000.th", "optim_E5_U500_S8000.th", "notes.txt"):
        (tmp_path / name).touch()
    found = TrainingIteration.to_fully_specified_from_filenames(tmp_path, TrainingIteration(epoch=5), prefix="model")
    assert found == TrainingIteration(5, 500, 8000)
    with pytest.raises(FileNotFoundError, match="Epoch: 6"):
        TrainingIteration.to_fully_specified_from_filenames(tmp_path, TrainingIteration(epoch=6))
    with pytest.raises(ValueError, match="exactly one"):
        TrainingIteration.to_fully_specified_from_filenames(tmp_path, TrainingIteration(1, 2, 3))
