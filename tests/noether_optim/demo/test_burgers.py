import numpy as np
import pytest

from noether_optim.demo.burgers import make_burgers_data, random_initial_conditions, solve_burgers


def _grid(n: int) -> np.ndarray:
    return np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)


def test_small_amplitude_follows_the_heat_equation() -> None:
    # For u = eps * sin(x) the advection term is O(eps^2): u(t) = eps * exp(-nu t) sin(x) + O(eps^2).
    eps, nu, t = 1e-4, 0.1, 0.5
    x = _grid(32)
    u0 = eps * np.sin(x)[None] + eps * 0.5 * np.cos(3 * x)[None]
    expected = eps * np.exp(-nu * t) * np.sin(x) + eps * 0.5 * np.exp(-9 * nu * t) * np.cos(3 * x)
    u1 = solve_burgers(u0, viscosity=nu, t_end=t, dt=0.01)[0]
    assert np.abs(u1 - expected).max() < 1e-3 * eps


def test_mean_is_conserved_and_energy_decays() -> None:
    u0 = random_initial_conditions(8, 64, np.random.default_rng(3))
    u1 = solve_burgers(u0, viscosity=0.05, t_end=1.0, dt=0.005)
    np.testing.assert_allclose(u1.mean(axis=1), u0.mean(axis=1), atol=1e-10)
    assert np.all((u1**2).sum(axis=1) < (u0**2).sum(axis=1))
    assert np.abs(u1 - u0).max() > 0.05  # the nonlinear dynamics did something


def test_time_stepping_is_second_order() -> None:
    u0 = random_initial_conditions(4, 64, np.random.default_rng(1))
    coarse, mid, fine = (solve_burgers(u0, viscosity=0.05, t_end=1.0, dt=dt) for dt in (0.01, 0.005, 0.0025))
    ratio = np.abs(coarse - mid).max() / np.abs(mid - fine).max()
    assert 3.0 < ratio < 5.0


def test_data_is_deterministic_float32_and_split() -> None:
    a = make_burgers_data(num_train=16, num_val=8, seed=7)
    b = make_burgers_data(num_train=16, num_val=8, seed=7)
    assert a.train_inputs.dtype == np.float32 and a.train_inputs.shape == (16, 64) and a.val_targets.shape == (8, 64)
    np.testing.assert_array_equal(a.train_targets, b.train_targets)
    assert not np.array_equal(a.train_inputs, make_burgers_data(num_train=16, num_val=8, seed=8).train_inputs)


@pytest.mark.parametrize(("nu", "t_end", "dt"), [(0.0, 1.0, 0.1), (0.1, -1.0, 0.1), (0.1, 1.0, 0.0)])
def test_rejects_bad_arguments(nu: float, t_end: float, dt: float) -> None:
    with pytest.raises(ValueError, match="viscosity"):
        solve_burgers(np.zeros((1, 8)), viscosity=nu, t_end=t_end, dt=dt)
