import pytest

from noether.core.utils.logging import float_to_scientific_notation


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        (0.5, 1, "5.0e-01"),
        (0.1, 1, "1.0e-01"),
        (0.05, 1, "5.0e-02"),
        (0.123, 1, "1.2e-01"),
        (1e-5, 1, "1e-05"),
        (2.0, 1, "2.0e00"),
        (0, 2, "0.00e00"),
        (3, 2, "3.00e00"),
        (2000, 2, "2e03"),
        (0.003251241, 2, "3.25e-03"),
        (5e123, 2, "5e123"),
        (0.25, 1, "2.5e-01"),
    ],
)
def test_renders_group_names_exactly_as_the_original_framework(value: float, precision: int, expected: str) -> None:
    # Param group names and metric keys are built from these strings, so the original's rendering is kept byte for
    # byte, including its mixed style ("5.0e-01" but "1e-05"): old logs and checkpoints keep their keys.
    assert float_to_scientific_notation(value, max_precision=precision, remove_plus=True) == expected


def test_keeps_plus_when_asked() -> None:
    assert float_to_scientific_notation(2000, max_precision=2, remove_plus=False) == "2e+03"
