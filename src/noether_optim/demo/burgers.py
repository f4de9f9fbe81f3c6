"""Training data for the demo: the 1-D viscous Burgers' equation, solved with numpy at start-up.

The equation ``u_t + u u_x = nu u_xx`` on the periodic domain ``[0, 2 pi)`` is integrated pseudo-spectrally: the
diffusion term exactly through an integrating factor ``exp(-nu k^2 t)``, the advection term ``-(u^2 / 2)_x`` with
Heun's method (second-order Runge-Kutta) and the 2/3 de-aliasing rule. Each sample starts from a random smooth field
(a Fourier series with a spectrum decaying like ``1 / k^2``); the surrogate learns the map ``u(., 0) -> u(., t_end)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BurgersData", "make_burgers_data", "random_initial_conditions", "solve_burgers"]


def random_initial_conditions(num_samples: int, grid_size: int, rng: np.random.Generator, modes: int = 6) -> np.ndarray:
    """Random smooth periodic fields ``sum_k (a_k sin kx + b_k cos kx) / k^2``, scaled to a peak of 1.

    Returns:
        Array of shape ``(num_samples, grid_size)``.
    """
    x = np.linspace(0.0, 2.0 * np.pi, grid_size, endpoint=False)
    k = np.arange(1, modes + 1)
    a = rng.standard_normal((num_samples, modes)) / k**2
    b = rng.standard_normal((num_samples, modes)) / k**2
    u0 = a @ np.sin(np.outer(k, x)) + b @ np.cos(np.outer(k, x))
    peak: np.ndarray = np.abs(u0).max(axis=1, keepdims=True)
    scaled: np.ndarray = u0 / peak
    return scaled


def solve_burgers(u0: np.ndarray, *, viscosity: float, t_end: float, dt: float) -> np.ndarray:
    """Integrate Burgers' equation from each row of ``u0`` to time ``t_end``.

    Args:
        u0: Initial fields, shape ``(num_samples, grid_size)``, sampled on ``2 pi * j / grid_size``.
        viscosity: ``nu`` > 0.
        t_end: Final time.
        dt: Time step; must satisfy the advective CFL condition ``dt * max|u| < dx``.

    Returns:
        The fields at ``t_end``, same shape as ``u0``.
    """
    if viscosity <= 0 or t_end < 0 or dt <= 0:
        raise ValueError(f"need viscosity > 0, t_end >= 0, dt > 0; got {viscosity}, {t_end}, {dt}")
    grid_size = u0.shape[-1]
    k = np.fft.rfftfreq(grid_size, d=1.0 / grid_size)
    dealias = k < grid_size / 3.0
    decay = np.exp(-viscosity * k**2 * dt)

    def advection(u_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(u_hat, n=grid_size)
        tendency: np.ndarray = -0.5j * k * np.fft.rfft(u * u) * dealias
        return tendency

    u_hat = np.fft.rfft(u0)
    steps = round(t_end / dt)
    for _ in range(steps):
        # Heun's method in the integrating-factor frame: diffusion is exact, advection second order.
        n0 = advection(u_hat)
        predictor = decay * (u_hat + dt * n0)
        u_hat = decay * u_hat + 0.5 * dt * (decay * n0 + advection(predictor))
    result: np.ndarray = np.fft.irfft(u_hat, n=grid_size)
    return result


@dataclass(frozen=True)
class BurgersData:
    """Inputs ``u(., 0)`` and targets ``u(., t_end)``, float32, split into train and validation."""

    train_inputs: np.ndarray
    train_targets: np.ndarray
    val_inputs: np.ndarray
    val_targets: np.ndarray


def make_burgers_data(
    num_train: int = 1024,
    num_val: int = 256,
    grid_size: int = 64,
    viscosity: float = 0.05,
    t_end: float = 1.0,
    dt: float = 0.005,
    seed: int = 0,
) -> BurgersData:
    """Generate a deterministic train/validation set (a fraction of a second for the defaults)."""
    rng = np.random.default_rng(seed)
    u0 = random_initial_conditions(num_train + num_val, grid_size, rng)
    u1 = solve_burgers(u0, viscosity=viscosity, t_end=t_end, dt=dt)
    u0, u1 = u0.astype(np.float32), u1.astype(np.float32)
    return BurgersData(u0[:num_train], u1[:num_train], u0[num_train:], u1[num_train:])
