"""Progress functions: map step ``s`` of a run of ``T`` steps to a progress in [0, 1].

All three use the denominator ``d = max(1, T - 1)``, so step 0 has progress 0 and the last step ``T - 1`` has
progress 1. The progress is clamped to [0, 1]: step ``T`` (one past the last step, which ``ScheduleBase.get_value``
allows) also gives 1, never an extrapolation past the end value.
"""

from __future__ import annotations

import math

__all__ = ["cosine", "linear", "polynomial"]


def _fraction(step: float, total_steps: int) -> float:
    return min(max(step / max(1, total_steps - 1), 0.0), 1.0)


def linear(step: float, total_steps: int) -> float:
    """Linear progress: ``min(1, s / d)`` with ``d = max(1, T - 1)``."""
    return _fraction(step, total_steps)


def cosine(step: float, total_steps: int) -> float:
    """Half-cosine progress: ``(1 - cos(pi * min(1, s / d))) / 2`` with ``d = max(1, T - 1)``."""
    return (1.0 - math.cos(math.pi * _fraction(step, total_steps))) / 2.0


def polynomial(step: float, total_steps: int, power: float) -> float:
    """Polynomial progress: ``1 - (1 - min(1, s / d))^power`` with ``d = max(1, T - 1)``."""
    return 1.0 - float((1.0 - _fraction(step, total_steps)) ** power)
