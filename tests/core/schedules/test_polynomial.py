import pytest

from noether.core import schedules
from noether.core.schedules import PolynomialDecreasingSchedule
from noether.core.schedules.polynomial import PolynomialIncreasingSchedule
from noether.core.schemas import PolynomialDecreasingScheduleConfig, PolynomialIncreasingScheduleConfig


@pytest.mark.parametrize("power", [0.5, 1.0, 3.0])
def test_polynomial_schedules_match_formula(power: float) -> None:
    decreasing = PolynomialDecreasingSchedule(PolynomialDecreasingScheduleConfig(max_value=1.0, power=power))
    increasing = PolynomialIncreasingSchedule(PolynomialIncreasingScheduleConfig(max_value=2.0, power=power))
    for step in range(6):
        progress = 1 - (1 - step / 5) ** power
        assert decreasing.get_value(step, 6) == pytest.approx(1 - progress)
        assert increasing.get_value(step, 6) == pytest.approx(2 * progress)
    assert decreasing.get_value(6, 6) == pytest.approx(0.0)


def test_polynomial_increasing_is_importable_but_not_in_all() -> None:
    assert schedules.PolynomialIncreasingSchedule is PolynomialIncreasingSchedule
    assert "PolynomialIncreasingSchedule" not in schedules.__all__
